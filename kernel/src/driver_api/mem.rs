//! `kmalloc`/`kzalloc`/`kfree` on the kernel heap. Every live block is tracked,
//! so a bad free (a pointer the driver never got, or a double free) is refused
//! and reported instead of corrupting the heap.

use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;
use core::alloc::Layout;

/// Live blocks: address → size.
static LIVE: IrqMutex<BTreeMap<usize, usize>> = IrqMutex::new(BTreeMap::new());

const ALIGN: usize = 64;
const MAX: usize = 16 << 20;

/// Allocates `size` bytes (zeroed: the heap never hands out stale kernel data).
pub fn alloc(size: usize) -> *mut u8 {
    if size == 0 || size > MAX {
        return core::ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(size, ALIGN) else {
        return core::ptr::null_mut();
    };
    // SAFETY: non-zero size.
    let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if !p.is_null() {
        LIVE.lock().insert(p as usize, size);
    }
    p
}

/// Frees a block from [`alloc`]; returns false (and frees nothing) for anything else.
pub fn free(p: *const u8) -> bool {
    if p.is_null() {
        return true;
    }
    let Some(size) = LIVE.lock().remove(&(p as usize)) else {
        crate::warn!("bad free of {:p}: not a live allocation", p);
        return false;
    };
    // SAFETY: allocated by `alloc` with this size and alignment, removed from LIVE once.
    unsafe { alloc::alloc::dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, ALIGN)) };
    true
}

/// (blocks, bytes) live.
pub fn live() -> (usize, usize) {
    let l = LIVE.lock();
    (l.len(), l.values().sum())
}

pub extern "C" fn kmalloc(size: usize, _flags: u32) -> *mut u8 {
    alloc(size)
}

pub extern "C" fn kzalloc(size: usize, _flags: u32) -> *mut u8 {
    alloc(size)
}

pub extern "C" fn kfree(p: *const u8) {
    free(p);
}
