//! Four-level x86-64 page tables: an [`AddressSpace`] type that maps, unmaps,
//! protects and translates, and the kernel's own address space built at boot
//! (direct map, kernel image with per-section permissions). Protection domains
//! build their address spaces from the same type.

use super::{DIRECT_MAP, IOREMAP_BASE, KERNEL_BASE, PAGE_SIZE, frames, phys_to_virt};
use crate::bootinfo::Region;
use crate::sync::IrqMutex;
use core::sync::atomic::{AtomicU64, Ordering};

/// Page-table entry bits.
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// User-accessible (never used: drivers run in ring 0).
    pub const USER: u64 = 1 << 2;
    /// Write-through caching.
    pub const WRITE_THROUGH: u64 = 1 << 3;
    /// Caching disabled.
    pub const NO_CACHE: u64 = 1 << 4;
    /// A 2 MiB (level 2) or 1 GiB (level 3) page.
    pub const HUGE: u64 = 1 << 7;
    /// Global (survives CR3 writes): never set, so domains' permissions can differ.
    pub const GLOBAL: u64 = 1 << 8;
    /// No execute.
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// Kernel code: present, executable, read-only.
    pub const CODE: u64 = PRESENT;
    /// Read-only data.
    pub const RODATA: u64 = PRESENT | NO_EXECUTE;
    /// Writable data.
    pub const DATA: u64 = PRESENT | WRITABLE | NO_EXECUTE;
    /// Device memory.
    pub const MMIO: u64 = PRESENT | WRITABLE | NO_CACHE | WRITE_THROUGH | NO_EXECUTE;
    /// The protection key of a leaf (bits 62:59; with CR4.PKS, what IA32_PKRS
    /// allows for supervisor pages).
    pub const KEY: u64 = 0xf << 59;

    /// The key bits for protection key `key` (0-15).
    pub const fn key(key: u64) -> u64 {
        (key & 0xf) << 59
    }
}

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const TABLE_FLAGS: u64 = flags::PRESENT | flags::WRITABLE;

/// Why a mapping operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame left for a page table.
    OutOfFrames,
    /// The page is already mapped.
    AlreadyMapped(u64),
    /// The page is not mapped.
    NotMapped(u64),
    /// A huge page covers the address.
    HugePage(u64),
    /// An address is not page-aligned.
    Misaligned(u64),
    /// The request exhausts the area it is carved from.
    NoVirtualSpace,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::OutOfFrames => write!(f, "out of physical frames"),
            MapError::AlreadyMapped(v) => write!(f, "{v:#x} is already mapped"),
            MapError::NotMapped(v) => write!(f, "{v:#x} is not mapped"),
            MapError::HugePage(v) => write!(f, "{v:#x} lies in a huge page"),
            MapError::Misaligned(v) => write!(f, "{v:#x} is not page-aligned"),
            MapError::NoVirtualSpace => write!(f, "virtual area exhausted"),
        }
    }
}

/// An address space: the physical address of its PML4.
#[derive(Debug)]
pub struct AddressSpace {
    root: u64,
}

fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: page-table frames are only reached through their AddressSpace,
    // whose owner is serialised by a lock; frames are mapped by phys_to_virt.
    unsafe { &mut *(phys_to_virt(phys) as *mut [u64; 512]) }
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

impl AddressSpace {
    /// An empty address space.
    pub fn new() -> Result<Self, MapError> {
        Ok(AddressSpace {
            root: frames::alloc_frame().ok_or(MapError::OutOfFrames)?,
        })
    }

    /// The PML4's physical address (what CR3 holds).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The entry slot for `virt` at `level` (1 = PT), creating tables on the way
    /// when `create`.
    fn walk(&mut self, virt: u64, level: u32, create: bool) -> Result<&'static mut u64, MapError> {
        let mut t = table(self.root);
        for l in (level + 1..=4).rev() {
            let e = &mut t[index(virt, l)];
            if *e & flags::PRESENT == 0 {
                if !create {
                    return Err(MapError::NotMapped(virt));
                }
                *e = frames::alloc_frame().ok_or(MapError::OutOfFrames)? | TABLE_FLAGS;
            } else if *e & flags::HUGE != 0 {
                return Err(MapError::HugePage(virt));
            }
            t = table(*e & ADDR_MASK);
        }
        Ok(&mut t[index(virt, level)])
    }

    /// Maps the 4 KiB page at `virt` to `phys`.
    pub fn map(&mut self, virt: u64, phys: u64, flags: u64) -> Result<(), MapError> {
        if virt % PAGE_SIZE != 0 || phys % PAGE_SIZE != 0 {
            return Err(MapError::Misaligned(virt | phys));
        }
        let e = self.walk(virt, 1, true)?;
        if *e & flags::PRESENT != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        *e = phys | flags | flags::PRESENT;
        Ok(())
    }

    /// Maps the 2 MiB page at `virt` to `phys`.
    pub fn map_2m(&mut self, virt: u64, phys: u64, flags: u64) -> Result<(), MapError> {
        if virt % (2 << 20) != 0 || phys % (2 << 20) != 0 {
            return Err(MapError::Misaligned(virt | phys));
        }
        let e = self.walk(virt, 2, true)?;
        if *e & flags::PRESENT != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        *e = phys | flags | flags::PRESENT | flags::HUGE;
        Ok(())
    }

    /// Unmaps the 4 KiB page at `virt`; returns the frame it mapped.
    /// The caller flushes the TLB.
    pub fn unmap(&mut self, virt: u64) -> Result<u64, MapError> {
        let e = self.walk(virt, 1, false)?;
        if *e & flags::PRESENT == 0 {
            return Err(MapError::NotMapped(virt));
        }
        let phys = *e & ADDR_MASK;
        *e = 0;
        Ok(phys)
    }

    /// Changes the flags of the 4 KiB page at `virt`. The caller flushes the TLB.
    pub fn protect(&mut self, virt: u64, flags: u64) -> Result<(), MapError> {
        let e = self.walk(virt, 1, false)?;
        if *e & flags::PRESENT == 0 {
            return Err(MapError::NotMapped(virt));
        }
        *e = (*e & (ADDR_MASK | flags::KEY)) | flags | flags::PRESENT;
        Ok(())
    }

    /// Gives every 4 KiB page mapped in [lo, hi) protection key `key`. The
    /// caller flushes the TLB.
    pub fn set_key(&mut self, lo: u64, hi: u64, key: u64) {
        let mut v = lo & !(PAGE_SIZE - 1);
        while v < hi {
            match self.walk(v, 1, false) {
                Ok(e) => {
                    if *e & flags::PRESENT != 0 {
                        *e = (*e & !flags::KEY) | flags::key(key);
                    }
                    v += PAGE_SIZE;
                }
                // No table here: skip what the missing table would cover.
                Err(_) => v = (v | ((2 << 20) - 1)) + 1,
            }
        }
    }

    /// The physical address and leaf flags behind `virt`.
    pub fn translate(&self, virt: u64) -> Option<(u64, u64)> {
        let mut t = table(self.root);
        for level in (1..=4).rev() {
            let e = t[index(virt, level)];
            if e & flags::PRESENT == 0 {
                return None;
            }
            if level == 1 || e & flags::HUGE != 0 {
                let page = 1u64 << (12 + 9 * (level - 1));
                return Some((
                    (e & ADDR_MASK & !(page - 1)) | (virt & (page - 1)),
                    e & !ADDR_MASK,
                ));
            }
            t = table(e & ADDR_MASK);
        }
        None
    }

    /// Creates the last-level tables covering [lo, hi), so that address spaces
    /// built from this one (which share those tables) see later mappings there.
    pub fn prepare(&mut self, lo: u64, hi: u64) -> Result<(), MapError> {
        let mut v = lo & !((2 << 20) - 1);
        while v < hi {
            self.walk(v, 1, true)?;
            v += 2 << 20;
        }
        Ok(())
    }

    /// A protection domain's view of this (the kernel's) address space: every
    /// mapping read-only (the writable bit cleared at the top level, which
    /// overrides everything below it) and kernel text not executable outside
    /// the `__domain_text` pages, except the top-level slot of `shared`,
    /// kept as it is, and the window [lo, hi), writable as the kernel maps it.
    /// Other mappings in the window's 1 GiB (other domains' windows) are absent.
    ///
    /// The window must lie in one 1 GiB region and its last-level tables must
    /// exist ([`Self::prepare`]); the view shares them, so mappings made in the
    /// window later appear in both.
    pub fn domain_view(&self, lo: u64, hi: u64, shared: u64) -> Result<AddressSpace, MapError> {
        if lo % (2 << 20) != 0 || hi % (2 << 20) != 0 || index(lo, 3) != index(hi - 1, 3) {
            return Err(MapError::Misaligned(lo | hi));
        }
        let kernel = table(self.root);
        let (i4, i3) = (index(lo, 4), index(lo, 3));
        let pdpt = table(kernel[i4] & ADDR_MASK);
        let pd = table(pdpt[i3] & ADDR_MASK);
        let view = AddressSpace::new()?;
        let new_pdpt = frames::alloc_frame().ok_or(MapError::OutOfFrames)?;
        let new_pd = frames::alloc_frame().ok_or(MapError::OutOfFrames)?;
        for i in index(lo, 2)..=index(hi - 1, 2) {
            if pd[i] & flags::PRESENT == 0 || pd[i] & flags::HUGE != 0 {
                return Err(MapError::NotMapped(lo));
            }
            table(new_pd)[i] = pd[i];
        }
        for i in 0..512 {
            if pdpt[i] & flags::PRESENT != 0 {
                table(new_pdpt)[i] = pdpt[i] & !flags::WRITABLE;
            }
        }
        table(new_pdpt)[i3] = new_pd | TABLE_FLAGS;
        // Kernel text: executable only where interrupt entry, the gates and
        // the shared memory functions live; a jump anywhere else faults.
        let (t0, t1) = (&raw const __text_start as u64, &raw const __text_end as u64);
        let keep = (
            &raw const __domain_text_start as u64,
            &raw const __domain_text_end as u64,
        );
        if index(t0, 4) == i4 && index(t0, 3) == index(t1 - 1, 3) && index(t0, 3) != i3 {
            let k3 = index(t0, 3);
            let kpd = table(pdpt[k3] & ADDR_MASK);
            let new_kpd = frames::alloc_frame().ok_or(MapError::OutOfFrames)?;
            table(new_kpd).copy_from_slice(kpd);
            for i2 in index(t0, 2)..=index(t1 - 1, 2) {
                if kpd[i2] & flags::PRESENT == 0 || kpd[i2] & flags::HUGE != 0 {
                    continue;
                }
                let kpt = table(kpd[i2] & ADDR_MASK);
                let new_pt = frames::alloc_frame().ok_or(MapError::OutOfFrames)?;
                let base = (t0 & !((1u64 << 30) - 1)) + ((i2 as u64) << 21);
                for (i1, e) in kpt.iter().enumerate() {
                    let va = base + ((i1 as u64) << 12);
                    let text = va >= t0 && va < t1;
                    let shared = va >= keep.0 && va < keep.1;
                    table(new_pt)[i1] = if text && !shared {
                        e | flags::NO_EXECUTE
                    } else {
                        *e
                    };
                }
                table(new_kpd)[i2] = new_pt | (kpd[i2] & !ADDR_MASK);
            }
            table(new_pdpt)[k3] = new_kpd | flags::PRESENT;
        }
        let root = table(view.root);
        for i in 0..512 {
            if kernel[i] & flags::PRESENT != 0 {
                root[i] = kernel[i] & !flags::WRITABLE;
            }
        }
        root[index(shared, 4)] = kernel[index(shared, 4)];
        root[i4] = new_pdpt | TABLE_FLAGS;
        Ok(view)
    }

    /// The effective access to `virt` through every level: (writable,
    /// executable), or None when unmapped.
    pub fn access(&self, virt: u64) -> Option<(bool, bool)> {
        let mut t = table(self.root);
        let (mut write, mut exec) = (true, true);
        for level in (1..=4).rev() {
            let e = t[index(virt, level)];
            if e & flags::PRESENT == 0 {
                return None;
            }
            write &= e & flags::WRITABLE != 0;
            exec &= e & flags::NO_EXECUTE == 0;
            if level == 1 || e & flags::HUGE != 0 {
                return Some((write, exec));
            }
            t = table(e & ADDR_MASK);
        }
        None
    }

    /// Shares the top-level entry covering `virt` with `other` (same lower tables).
    pub fn share_top_level(&mut self, other: &AddressSpace, virt: u64) {
        table(self.root)[index(virt, 4)] = table(other.root)[index(virt, 4)];
    }
}

static KERNEL_SPACE: IrqMutex<Option<AddressSpace>> = IrqMutex::new(None);
static IOREMAP_NEXT: AtomicU64 = AtomicU64::new(IOREMAP_BASE);

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __domain_text_start: u8;
    static __domain_text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

fn must(r: Result<(), MapError>) {
    if let Err(e) = r {
        panic!("building the kernel page tables: {e}");
    }
}

/// Builds the kernel's page tables and switches to them.
pub fn init(regions: &[Region]) {
    let mut space = AddressSpace::new().unwrap_or_else(|e| panic!("kernel page table: {e}"));
    // The direct map: every RAM region, in 2 MiB pages.
    let huge = 2u64 << 20;
    for r in regions.iter().filter(|r| r.kind == 1) {
        let mut p = r.start & !(huge - 1);
        while p < r.start + r.len {
            match space.map_2m(DIRECT_MAP + p, p, flags::DATA) {
                Ok(()) | Err(MapError::AlreadyMapped(_)) => {}
                Err(e) => panic!("direct map: {e}"),
            }
            p += huge;
        }
    }
    // The kernel image, section by section.
    let sections = [
        (
            &raw const __text_start as u64,
            &raw const __text_end as u64,
            flags::CODE,
        ),
        (
            &raw const __rodata_start as u64,
            &raw const __rodata_end as u64,
            flags::RODATA,
        ),
        (
            &raw const __data_start as u64,
            &raw const __data_end as u64,
            flags::DATA,
        ),
    ];
    for (start, end, f) in sections {
        let mut v = start;
        while v < end {
            must(space.map(v, v - KERNEL_BASE, f));
            v += PAGE_SIZE;
        }
    }
    // SAFETY: the new tables map the kernel image (code, stacks, statics) at the
    // addresses it runs at, and the direct map covers every frame handed out.
    unsafe { crate::arch::write_cr3(space.root()) };
    crate::arch::KERNEL_CR3.store(space.root(), Ordering::SeqCst);
    *KERNEL_SPACE.lock() = Some(space);
}

/// Runs `f` on the kernel address space.
pub fn with_kernel<R>(f: impl FnOnce(&mut AddressSpace) -> R) -> R {
    let mut guard = KERNEL_SPACE.lock();
    f(guard.as_mut().expect("paging::init ran at boot"))
}

/// Maps a page in the kernel address space.
pub fn kernel_map(virt: u64, phys: u64, flags: u64) -> Result<(), MapError> {
    with_kernel(|s| s.map(virt, phys, flags))
}

/// Unmaps a page of the kernel address space and flushes it from the TLB.
pub fn kernel_unmap(virt: u64) -> Result<u64, MapError> {
    let phys = with_kernel(|s| s.unmap(virt))?;
    flush(virt);
    Ok(phys)
}

/// Changes a kernel page's permissions and flushes it from the TLB.
pub fn kernel_protect(virt: u64, flags: u64) -> Result<(), MapError> {
    with_kernel(|s| s.protect(virt, flags))?;
    flush(virt);
    Ok(())
}

/// Drops stale TLB entries for `virt`: `invlpg` covers the current PCID only,
/// and domains' tables share the kernel's lower-level tables, so with PCIDs on
/// every PCID is flushed.
fn flush(virt: u64) {
    if crate::arch::pcid_enabled() {
        crate::arch::flush_tlb_everywhere();
        crate::domain::mmu::FULL_FLUSHES.fetch_add(1, Ordering::Relaxed);
    } else {
        crate::arch::invlpg(virt);
    }
}

/// Gives the kernel's pages in [lo, hi) protection key `key` and flushes
/// the TLB.
pub fn kernel_set_key(lo: u64, hi: u64, key: u64) {
    with_kernel(|s| s.set_key(lo, hi, key));
    crate::arch::flush_tlb_everywhere();
}

/// Translates through the kernel address space.
pub fn kernel_translate(virt: u64) -> Option<(u64, u64)> {
    with_kernel(|s| s.translate(virt))
}

/// Maps device memory [phys, phys+len) uncached; returns its virtual address.
pub fn ioremap(phys: u64, len: u64) -> Result<u64, MapError> {
    let first = phys & !(PAGE_SIZE - 1);
    let last = (phys + len.max(1) + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let size = last - first;
    let base = IOREMAP_NEXT.fetch_add(size + PAGE_SIZE, Ordering::SeqCst); // + guard page
    let mut off = 0;
    while off < size {
        kernel_map(base + off, first + off, flags::MMIO)?;
        off += PAGE_SIZE;
    }
    Ok(base + (phys - first))
}
