//! Memory: the physical frame allocator, the kernel's page tables, the heap.
//!
//! Virtual layout (all in the upper half):
//!
//! | range | what |
//! |---|---|
//! | `0xffff_8000_0000_0000 + phys` | the direct map of RAM (2 MiB pages, RW, NX) |
//! | `0xffff_c000_0000_0000 ..` | `ioremap` (4 KiB pages, uncached, NX) |
//! | `0xffff_fe80_0000_0000 ..` | the interrupt handlers' stacks, with guard pages |
//! | `0xffff_ff00_0000_0000 ..` | the interrupt (IST) landing pads, with guard pages |
//! | `0xffff_ffff_8000_0000 + phys` | the kernel image (text RX, rodata R, data/bss RW+NX) |
//! | `0xffff_ffff_a000_0000 .. 0xffff_ffff_c000_0000` | loaded driver objects without a domain |
//! | `0xffff_ffff_c000_0000 .. 0xffff_ffff_f000_0000` | protection-domain windows |
//!
//! Driver objects are built with `-mcmodel=kernel`: they reach the kernel (and
//! the kernel reaches them) with 32-bit signed displacements, so everything a
//! driver runs in lives in the top 2 GiB beside the kernel image.

pub mod frames;
pub mod heap;
pub mod paging;

use core::sync::atomic::{AtomicU64, Ordering};

/// Where the kernel image is linked: virtual = KERNEL_BASE + physical.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// Base of the direct map of physical memory.
pub const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
/// Base of the `ioremap` area.
pub const IOREMAP_BASE: u64 = 0xffff_c000_0000_0000;
/// The interrupt stacks: the one kernel area every MMU domain maps writable,
/// because the CPU pushes an interrupt's frame before the handler can switch
/// CR3 back to the kernel. It has a top-level page-table entry of its own.
pub const INTERRUPT_STACKS: u64 = 0xffff_ff00_0000_0000;
/// The stacks interrupt handlers run on: each IST slot's landing pad in
/// [`INTERRUPT_STACKS`] has its handler stack at the same offset here, in a
/// top-level slot every MMU domain maps read-only.
pub const INTERRUPT_FRAMES: u64 = 0xffff_fe80_0000_0000;
/// Area for driver objects loaded without isolation.
pub const MODULE_AREA: (u64, u64) = (0xffff_ffff_a000_0000, 0xffff_ffff_c000_0000);
/// Area for protection-domain windows.
pub const DOMAIN_AREA: (u64, u64) = (0xffff_ffff_c000_0000, 0xffff_ffff_f000_0000);
/// Size of a page.
pub const PAGE_SIZE: u64 = 4096;

/// Power-of-two size classes from `2^min` to `2^max` bytes, the front of
/// both heaps (the kernel's and each domain's): blocks of a class are its
/// size and aligned to it, so one class serves any request its size and
/// alignment fit.
#[derive(Clone, Copy)]
pub struct SizeClasses {
    /// log2 of the smallest class.
    pub min: u32,
    /// log2 of the largest class.
    pub max: u32,
}

impl SizeClasses {
    /// How many classes there are.
    pub const fn count(self) -> usize {
        (self.max - self.min + 1) as usize
    }

    /// The class (0 = smallest) of a `size`-byte request aligned to `align`,
    /// if one is large enough.
    pub fn of(self, size: u64, align: u64) -> Option<usize> {
        let c = size
            .max(align)
            .max(1 << self.min)
            .next_power_of_two()
            .trailing_zeros();
        (c <= self.max).then(|| (c - self.min) as usize)
    }

    /// The size (and alignment) of class `c`'s blocks.
    pub fn bytes(self, c: usize) -> u64 {
        1 << (c as u32 + self.min)
    }
}

/// Offset of the mapping through which physical memory is reached: 0 while the
/// boot identity map is live, [`DIRECT_MAP`] once the kernel's tables are loaded.
static PHYS_WINDOW: AtomicU64 = AtomicU64::new(0);

/// The virtual address at which physical address `phys` can be accessed.
pub fn phys_to_virt(phys: u64) -> u64 {
    phys + PHYS_WINDOW.load(Ordering::Relaxed)
}

/// The physical address behind `virt` in the kernel's address space.
pub fn virt_to_phys(virt: u64) -> Option<u64> {
    paging::kernel_translate(virt).map(|(phys, _)| phys)
}

unsafe extern "C" {
    static __boot_start: u8;
    static __kernel_end: u8;
}

/// Physical range [start, end) of the loaded kernel image (boot stub included).
pub fn kernel_image_phys() -> (u64, u64) {
    let start = &raw const __boot_start as u64;
    let end = &raw const __kernel_end as u64 - KERNEL_BASE;
    (start, end)
}

/// Brings memory up: frames from the memory map (minus the kernel, the boot
/// info and the modules), the kernel's own page tables, then the heap.
pub fn init(boot: &crate::bootinfo::BootInfo) {
    let mut reserved: [(u64, u64); 12] = [(0, 0); 12];
    let mut n = 0;
    let mut reserve = |start: u64, len: u64| {
        if len > 0 && n < reserved.len() {
            reserved[n] = (
                start & !(PAGE_SIZE - 1),
                (start + len + PAGE_SIZE - 1) & !(PAGE_SIZE - 1),
            );
            n += 1;
        }
    };
    reserve(0, 0x10_0000); // real-mode area, BIOS, VGA
    let (k0, k1) = kernel_image_phys();
    reserve(k0, k1 - k0);
    reserve(boot.start_info, PAGE_SIZE);
    reserve(boot.memmap, PAGE_SIZE);
    reserve(boot.modlist, PAGE_SIZE);
    reserve(boot.cmdline.0, boot.cmdline.1 as u64 + 1);
    for m in &boot.modules[..boot.nr_modules] {
        reserve(m.paddr, m.size);
    }
    frames::init(boot.regions(), &reserved[..n]);
    paging::init(boot.regions());
    PHYS_WINDOW.store(DIRECT_MAP, Ordering::SeqCst);
    move_interrupt_stacks();
    heap::init();
}

/// Gives every IST slot a landing pad in [`INTERRUPT_STACKS`] (where the
/// CPU pushes the interrupt frame, writable in every MMU domain) and a
/// handler stack at the same offset in [`INTERRUPT_FRAMES`] (kernel-only),
/// each below an unmapped guard page, in place of the boot stacks in the
/// kernel's `.bss`.
fn move_interrupt_stacks() {
    use crate::arch::gdt::{IST_FRAME_DELTA, IST_STACK_SIZE, set_ist};
    let pages = IST_STACK_SIZE / PAGE_SIZE;
    for slot in 1..=5u8 {
        let offset = u64::from(slot) * (IST_STACK_SIZE + PAGE_SIZE);
        for base in [INTERRUPT_STACKS, INTERRUPT_FRAMES] {
            let phys = frames::alloc_contiguous(pages, PAGE_SIZE)
                .unwrap_or_else(|| panic!("no frames for interrupt stack {slot}"));
            for p in 0..pages {
                paging::kernel_map(
                    base + offset + p * PAGE_SIZE,
                    phys + p * PAGE_SIZE,
                    paging::flags::DATA,
                )
                .unwrap_or_else(|e| panic!("mapping interrupt stack {slot}: {e}"));
            }
        }
    }
    // SAFETY: both regions were just mapped RW in the kernel's tables (every
    // domain's tables share the pads' top-level slot; the handler stacks'
    // slot they map read-only); interrupts are still off, so nothing runs on
    // the old stacks, and the entry path reads the delta and the TSS afresh
    // at each interrupt.
    unsafe {
        for slot in 1..=5u8 {
            let offset = u64::from(slot) * (IST_STACK_SIZE + PAGE_SIZE);
            set_ist(slot, INTERRUPT_STACKS + offset + IST_STACK_SIZE);
        }
    }
    IST_FRAME_DELTA.store(
        INTERRUPT_FRAMES.wrapping_sub(INTERRUPT_STACKS),
        Ordering::SeqCst,
    );
}
