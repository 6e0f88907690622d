//! The skb pool: packet buffers from the kernel heap (physically contiguous,
//! so a buffer is one DMA segment), every live one tracked so a bad free is
//! refused and leaks can be counted.

use crate::driver_api::abi::{NetDevice, SkBuff};
use crate::driver_api::mem;
use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Live skbs → the domain holding each (None: the kernel). The object tracker
/// of recovery: a failed domain's skbs are reclaimed from here.
static LIVE: IrqMutex<BTreeMap<usize, Option<usize>>> = IrqMutex::new(BTreeMap::new());

/// Allocates an skb with `size` bytes of buffer.
pub fn alloc(dev: *mut NetDevice, size: u32) -> *mut SkBuff {
    if size == 0 || size > 16384 {
        return core::ptr::null_mut();
    }
    let head = mem::alloc(size as usize);
    if head.is_null() {
        return core::ptr::null_mut();
    }
    let skb = mem::alloc(core::mem::size_of::<SkBuff>()) as *mut SkBuff;
    if skb.is_null() {
        mem::free(head);
        return core::ptr::null_mut();
    }
    // SAFETY: freshly allocated, sized and aligned for SkBuff.
    unsafe {
        skb.write(SkBuff {
            data: head,
            len: 0,
            size,
            head,
            dev,
            protocol: 0,
            pad0: 0,
            pad1: 0,
            nooks_private: 0,
        });
    }
    LIVE.lock().insert(skb as usize, crate::domain::current());
    skb
}

/// Records that `domain` (None: the kernel) now holds `skb`.
pub fn hand_to(skb: *const SkBuff, domain: Option<usize>) {
    if let Some(owner) = LIVE.lock().get_mut(&(skb as usize)) {
        *owner = domain;
    }
}

/// Whether `skb` is live and held by the kernel (not by a driver).
pub fn held_by_kernel(skb: *const SkBuff) -> bool {
    LIVE.lock().get(&(skb as usize)) == Some(&None)
}

/// Frees every skb domain `id` holds (after it failed); returns how many.
pub fn reclaim(id: usize) -> usize {
    let held: Vec<usize> = LIVE
        .lock()
        .iter()
        .filter(|(_, owner)| **owner == Some(id))
        .map(|(s, _)| *s)
        .collect();
    for s in &held {
        free(*s as *mut SkBuff);
    }
    held.len()
}

/// Whether `skb` is a live skb.
pub fn is_live(skb: *const SkBuff) -> bool {
    LIVE.lock().contains_key(&(skb as usize))
}

/// Frees a live skb; refuses (and reports) anything else.
pub fn free(skb: *mut SkBuff) -> bool {
    if LIVE.lock().remove(&(skb as usize)).is_none() {
        crate::warn!("bad skb free of {skb:p}: not a live skb");
        return false;
    }
    // SAFETY: live skbs were built by `alloc`; head came from mem::alloc.
    let head = unsafe { (*skb).head };
    mem::free(head);
    mem::free(skb as *const u8);
    true
}

/// Live skbs.
pub fn live() -> usize {
    LIVE.lock().len()
}
