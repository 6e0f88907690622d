//! The GDT and TSS. The TSS exists for its Interrupt Stack Table: every interrupt
//! and exception runs on an IST stack, because the prebuilt `core` assumes a red
//! zone below RSP that an interrupt pushing onto the same stack would destroy.

use core::arch::asm;
use core::mem::size_of;

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
const TSS_SEL: u16 = 0x18;

/// IST slots (1-based, as the IDT encodes them).
pub mod ist {
    /// Double fault.
    pub const DOUBLE_FAULT: u8 = 1;
    /// NMI and machine check.
    pub const NMI: u8 = 2;
    /// Page fault.
    pub const PAGE_FAULT: u8 = 3;
    /// Every other exception.
    pub const EXCEPTION: u8 = 4;
    /// Hardware interrupts.
    pub const IRQ: u8 = 5;
}

#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_SIZE as usize]; 5]);

static mut IST_STACKS: IstStacks = IstStacks([[0; IST_STACK_SIZE as usize]; 5]);

#[repr(C, packed)]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

static mut TSS: Tss = Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

// The accessed bits are set up front: the CPU would otherwise write them when it
// loads a selector, and inside an MMU domain the GDT is read-only.
static mut GDT: [u64; 5] = [
    0,
    0x00af_9b00_0000_ffff, // 0x08 kernel code, 64-bit (accessed bit preset: see below)
    0x00cf_9300_0000_ffff, // 0x10 kernel data (accessed)
    0,                     // 0x18 TSS low (filled at init)
    0,                     // TSS high
];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// The GDT and TSS as bytes, for integrity checks.
pub fn tables() -> (&'static [u8], &'static [u8]) {
    // SAFETY: read-only views of statics written only at boot (the TSS's IST
    // slots are written again before interrupts are enabled).
    unsafe {
        (
            core::slice::from_raw_parts((&raw const GDT).cast::<u8>(), size_of::<[u64; 5]>()),
            core::slice::from_raw_parts((&raw const TSS).cast::<u8>(), size_of::<Tss>()),
        )
    }
}

/// Size of one IST stack.
pub const IST_STACK_SIZE: u64 = 32 * 1024;

/// The top of boot IST stack `slot` (1-based).
fn boot_ist_top(slot: u8) -> u64 {
    let base = &raw const IST_STACKS as u64;
    base + (slot as u64) * IST_STACK_SIZE
}

/// The top of the IST stack `slot` (1-based) the CPU uses now.
pub fn ist_top(slot: u8) -> u64 {
    // SAFETY: a plain read of the TSS, which only this module writes.
    unsafe { core::ptr::read_unaligned(&raw const (*(&raw const TSS)).ist[slot as usize - 1]) }
}

/// Where the interrupt entry path runs a handler: this far from the IST
/// stack the CPU pushed the frame on (0 while the boot stacks are in use;
/// see `idt`'s entry path and `memory::move_interrupt_stacks`).
#[unsafe(no_mangle)]
pub static IST_FRAME_DELTA: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The IST slot (1-based) whose handler stack (where the entry path runs
/// handlers) holds `addr`, if any.
pub fn ist_slot_of(addr: u64) -> Option<u8> {
    let delta = IST_FRAME_DELTA.load(core::sync::atomic::Ordering::Relaxed);
    (1..=5).find(|&slot| {
        let top = ist_top(slot).wrapping_add(delta);
        addr < top && addr >= top.wrapping_sub(IST_STACK_SIZE)
    })
}

/// Moves IST stack `slot` (1-based) to the stack whose top is `top`.
///
/// # Safety
/// `top` must be the 16-byte aligned top of at least [`IST_STACK_SIZE`] bytes
/// mapped writable in every address space the CPU may take an interrupt in,
/// and no interrupt may be running on the old stack.
pub unsafe fn set_ist(slot: u8, top: u64) {
    // SAFETY: per the caller's contract; the CPU reads the IST slot only when
    // an interrupt arrives.
    unsafe { core::ptr::write_unaligned(&raw mut (*(&raw mut TSS)).ist[slot as usize - 1], top) };
}

/// Loads the GDT, reloads the segment registers and loads the TSS.
pub fn init() {
    // SAFETY: runs once at boot, before interrupts are enabled and before anything
    // else touches GDT or TSS.
    unsafe {
        let tss = &raw mut TSS;
        for slot in 1..=5u8 {
            (*tss).ist[slot as usize - 1] = boot_ist_top(slot);
        }
        let base = tss as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let low = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        let gdt = &raw mut GDT;
        (*gdt)[3] = low;
        (*gdt)[4] = base >> 32;
        let ptr = DescriptorPointer {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: gdt as u64,
        };
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) u64::from(KERNEL_CS),
            ds = in(reg) KERNEL_DS,
            tss = in(reg) TSS_SEL,
            tmp = lateout(reg) _,
        );
    }
}
