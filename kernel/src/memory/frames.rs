//! The physical frame allocator: free RAM from the boot memory map, handed out
//! a 4 KiB frame at a time (freed frames go on a free list threaded through the
//! direct map) or as physically contiguous runs (DMA rings, the heap).

use super::{PAGE_SIZE, phys_to_virt};
use crate::bootinfo::Region;
use crate::sync::IrqMutex;

const MAX_RANGES: usize = 32;

struct Frames {
    /// Untouched free RAM: [next, end) per range, bump-allocated.
    ranges: [(u64, u64); MAX_RANGES],
    nr: usize,
    /// Head of the list of freed frames (physical; 0 = empty).
    free_head: u64,
    free_count: u64,
    total: u64,
    allocated: u64,
}

static FRAMES: IrqMutex<Frames> = IrqMutex::new(Frames {
    ranges: [(0, 0); MAX_RANGES],
    nr: 0,
    free_head: 0,
    free_count: 0,
    total: 0,
    allocated: 0,
});

/// Records usable RAM (E820 type 1) minus the `reserved` ranges.
pub fn init(regions: &[Region], reserved: &[(u64, u64)]) {
    let mut f = FRAMES.lock();
    for r in regions.iter().filter(|r| r.kind == 1) {
        let start = (r.start + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = (r.start + r.len) & !(PAGE_SIZE - 1);
        // Cut the region around every reserved range.
        let mut pieces: [(u64, u64); 16] = [(0, 0); 16];
        let mut np = 1;
        pieces[0] = (start, end);
        for &(rs, re) in reserved {
            let mut next: [(u64, u64); 16] = [(0, 0); 16];
            let mut nn = 0;
            for &(s, e) in &pieces[..np] {
                for (a, b) in [(s, e.min(rs)), (s.max(re), e)] {
                    if a < b && nn < next.len() {
                        next[nn] = (a, b);
                        nn += 1;
                    }
                }
            }
            pieces = next;
            np = nn;
        }
        for &(s, e) in &pieces[..np] {
            if f.nr < MAX_RANGES {
                let i = f.nr;
                f.ranges[i] = (s, e);
                f.nr += 1;
                f.total += (e - s) / PAGE_SIZE;
            }
        }
    }
}

/// Allocates one zeroed 4 KiB frame; returns its physical address.
pub fn alloc_frame() -> Option<u64> {
    let phys = {
        let mut f = FRAMES.lock();
        let phys = if f.free_head != 0 {
            let head = f.free_head;
            // SAFETY: a freed frame holds the next pointer in its first word.
            f.free_head = unsafe { *(phys_to_virt(head) as *const u64) };
            f.free_count -= 1;
            head
        } else {
            let nr = f.nr;
            let range = f.ranges[..nr].iter_mut().find(|(next, end)| next < end)?;
            let phys = range.0;
            range.0 += PAGE_SIZE;
            phys
        };
        f.allocated += 1;
        phys
    };
    // SAFETY: the frame was free, so nothing else refers to it.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, PAGE_SIZE as usize) };
    Some(phys)
}

/// Returns a frame to the allocator.
///
/// # Safety
/// `phys` came from this allocator and nothing uses it any more.
pub unsafe fn free_frame(phys: u64) {
    let mut f = FRAMES.lock();
    // SAFETY: the caller hands the frame over; we store the list link in it.
    unsafe { *(phys_to_virt(phys) as *mut u64) = f.free_head };
    f.free_head = phys;
    f.free_count += 1;
    f.allocated -= 1;
}

/// Allocates `pages` physically contiguous zeroed frames aligned to `align`
/// bytes (a power of two ≥ 4096); returns the first one's physical address.
pub fn alloc_contiguous(pages: u64, align: u64) -> Option<u64> {
    let phys = {
        let mut f = FRAMES.lock();
        let nr = f.nr;
        let mut found = None;
        for range in f.ranges[..nr].iter_mut() {
            let start = (range.0 + align - 1) & !(align - 1);
            let end = start.checked_add(pages * PAGE_SIZE)?;
            if end <= range.1 {
                // Frames skipped for alignment are lost; runs are rare and large.
                range.0 = end;
                found = Some(start);
                break;
            }
        }
        let phys = found?;
        f.allocated += pages;
        phys
    };
    // SAFETY: the run was free.
    unsafe {
        core::ptr::write_bytes(
            phys_to_virt(phys) as *mut u8,
            0,
            (pages * PAGE_SIZE) as usize,
        )
    };
    Some(phys)
}

/// (total frames, frames allocated) for reports.
pub fn stats() -> (u64, u64) {
    let f = FRAMES.lock();
    (f.total, f.allocated)
}
