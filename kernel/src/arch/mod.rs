//! x86-64 specifics: port I/O, control registers, the descriptor tables, and
//! the interrupt controllers.

pub mod gdt;
pub mod idt;
pub mod pic;

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// The kernel's CR3 (0 until the kernel's page tables are live). Interrupt
/// entry and the domain gates load it whenever they leave a domain's tables.
pub static KERNEL_CR3: AtomicU64 = AtomicU64::new(0);
/// OR-ed into CR3 loads: bit 63 (keep this PCID's TLB entries) once PCIDs are
/// on, 0 otherwise (every load flushes).
pub static CR3_NOFLUSH: AtomicU64 = AtomicU64::new(0);

/// Whether PCIDs are on (CR3 loads need not flush).
pub fn pcid_enabled() -> bool {
    CR3_NOFLUSH.load(Ordering::Relaxed) != 0
}

/// Turns PCIDs on where the CPU has them; the kernel's tables use PCID 0.
/// Must run while CR3 holds PCID 0 (the SDM requires it to set CR4.PCIDE).
pub fn enable_pcid() -> bool {
    if !has_pcid() {
        return false;
    }
    // SAFETY: the CPU has PCIDs and CR3's PCID field is 0 (the kernel's tables).
    unsafe { write_cr4(cr4() | CR4_PCIDE) };
    CR3_NOFLUSH.store(1 << 63, Ordering::SeqCst);
    true
}

/// CR4.PKS: protection keys for supervisor pages.
const CR4_PKS: u64 = 1 << 24;
/// IA32_PKRS: the supervisor protection-key rights (two bits per key:
/// access disable, write disable).
pub const MSR_PKRS: u32 = 0x6e1;

/// Whether the CPU has protection keys for supervisor pages
/// (CPUID.(EAX=7,ECX=0):ECX[31]).
pub fn has_pks() -> bool {
    cpuid(0).0 >= 7 && cpuid(7).2 & (1 << 31) != 0
}

/// Turns protection keys for supervisor pages on (with IA32_PKRS 0: every
/// key allows everything, so nothing changes until a domain's rights are
/// loaded); false if the CPU has none.
pub fn enable_pks() -> bool {
    if !has_pks() {
        return false;
    }
    // SAFETY: PKRS 0 grants every access, so the kernel's own accesses are
    // unaffected by turning the feature on.
    unsafe {
        wrmsr(MSR_PKRS, 0);
        write_cr4(cr4() | CR4_PKS);
    }
    true
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` exists and `value` is valid for it; what it changes is the
/// caller's to vouch for.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: per the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// The port must belong to a device this code is entitled to drive.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Reads a 16-bit word from an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a 16-bit word to an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn outw(port: u16, v: u16) {
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a dword from an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a dword to an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}

/// Whether RFLAGS.IF is set.
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS has no side effects.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Clears RFLAGS.IF.
pub fn interrupts_disable() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Sets RFLAGS.IF.
pub fn interrupts_enable() {
    // SAFETY: the IDT is loaded before anyone calls this (see kernel_main).
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Enables interrupts and halts until the next one, atomically (no lost wake-up).
pub fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` only waits; the IDT is loaded.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads a counter.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// CR2: the linear address of the last page fault.
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR3: the physical address of the active top-level page table (and PCID).
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Loads CR3.
///
/// # Safety
/// `value` must name a page table that maps the running code, its stack and
/// everything the kernel touches next.
pub unsafe fn write_cr3(value: u64) {
    // SAFETY: the caller guarantees the new address space is consistent.
    unsafe { asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Flushes one page's TLB entry.
pub fn invlpg(addr: u64) {
    // SAFETY: dropping a TLB entry is always safe.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// CR4.
pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Loads CR4.
///
/// # Safety
/// Every feature bit set must be supported, and the change must keep the
/// running code's assumptions (SSE on, paging mode) intact.
pub unsafe fn write_cr4(value: u64) {
    // SAFETY: per the caller's contract.
    unsafe { asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// CR4.PGE: global pages (toggling it flushes every TLB entry of every PCID).
pub const CR4_PGE: u64 = 1 << 7;
/// CR4.PCIDE: process-context identifiers.
pub const CR4_PCIDE: u64 = 1 << 17;

/// `cpuid` leaf `leaf`, subleaf 0: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Whether the CPU has PCIDs (CPUID.1:ECX bit 17).
pub fn has_pcid() -> bool {
    cpuid(1).2 & (1 << 17) != 0
}

/// Flushes every TLB entry of every PCID, global ones included, by toggling
/// CR4.PGE (the SDM's architectural way to do it without INVPCID).
pub fn flush_tlb_everywhere() {
    let cr4 = cr4();
    // SAFETY: PGE is supported on every x86-64 CPU; toggling it and restoring
    // the old value changes nothing but the TLB.
    unsafe {
        write_cr4(cr4 ^ CR4_PGE);
        write_cr4(cr4);
    }
}

/// CR0.
pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller vouches the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Ends the QEMU run through `isa-debug-exit`: 0x10 → exit status 33 (success),
/// 0x11 → 35 (failure). Halts forever if the device is absent.
pub fn exit_qemu(success: bool) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device the runner always attaches.
    unsafe { outl(0xf4, if success { 0x10 } else { 0x11 }) };
    loop {
        interrupts_disable();
        // SAFETY: halting with interrupts off stops this CPU for good.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}
