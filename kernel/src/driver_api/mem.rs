//! `kmalloc`/`kzalloc`/`kfree` on the kernel heap. Every live block is tracked,
//! so a bad free (a pointer the driver never got, or a double free) is refused
//! and reported instead of corrupting the heap.

use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;
use core::alloc::Layout;

/// Live blocks: address → (size, owning domain).
static LIVE: IrqMutex<BTreeMap<usize, (usize, Option<usize>, usize)>> =
    IrqMutex::new(BTreeMap::new());

const ALIGN: usize = 64;
const MAX: usize = 16 << 20;

/// Allocates `size` bytes (zeroed: the heap never hands out stale kernel data),
/// in the current domain's window when a driver asks, else on the kernel heap.
pub fn alloc(size: usize) -> *mut u8 {
    alloc_aligned(size, ALIGN)
}

/// As [`alloc`], with an alignment (a power of two; at least 64 is used).
pub fn alloc_aligned(size: usize, align: usize) -> *mut u8 {
    if size == 0 || size > MAX {
        return core::ptr::null_mut();
    }
    let align = align.max(ALIGN);
    let domain = crate::domain::current();
    let p = match domain {
        Some(id) => crate::domain::alloc(id, size, align),
        None => {
            let Ok(layout) = Layout::from_size_align(size, align) else {
                return core::ptr::null_mut();
            };
            // SAFETY: non-zero size.
            unsafe { alloc::alloc::alloc_zeroed(layout) }
        }
    };
    if !p.is_null() {
        LIVE.lock().insert(p as usize, (size, domain, align));
    }
    p
}

/// Frees a block from [`alloc`]; returns false (and frees nothing) for anything else.
pub fn free(p: *const u8) -> bool {
    if p.is_null() {
        return true;
    }
    let Some((size, domain, align)) = LIVE.lock().remove(&(p as usize)) else {
        crate::warn!("bad free of {:p}: not a live allocation", p);
        return false;
    };
    match domain {
        // SAFETY: allocated by `alloc` in that domain with this size and alignment, removed from LIVE once.
        Some(id) => unsafe { crate::domain::free(id, p as *mut u8, size, align) },
        // SAFETY: allocated by `alloc` with this size and alignment, removed from LIVE once.
        None => unsafe {
            alloc::alloc::dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, align))
        },
    }
    true
}

/// Forgets every block of domain `id` (its window is abandoned with it);
/// returns how many there were.
pub fn forget_domain(id: usize) -> usize {
    let mut l = LIVE.lock();
    let before = l.len();
    l.retain(|_, v| v.1 != Some(id));
    before - l.len()
}

/// (blocks, bytes) live.
pub fn live() -> (usize, usize) {
    let l = LIVE.lock();
    (l.len(), l.values().map(|v| v.0).sum())
}

pub extern "C" fn kmalloc(size: usize, _flags: u32) -> *mut u8 {
    alloc(size)
}

pub extern "C" fn kzalloc(size: usize, _flags: u32) -> *mut u8 {
    alloc(size)
}

pub extern "C" fn kfree(p: *const u8) {
    if !free(p) {
        crate::domain::abort(
            "api: bad free (kfree of a pointer that is not a live allocation)",
            p as u64,
        );
    }
}
