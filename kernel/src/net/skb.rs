//! The skb pool: packet buffers from the kernel heap (physically contiguous,
//! so a buffer is one DMA segment), every live one tracked so a bad free is
//! refused and leaks can be counted.

use crate::driver_api::abi::{NetDevice, SkBuff};
use crate::driver_api::mem;
use crate::sync::IrqMutex;
use alloc::collections::BTreeSet;

static LIVE: IrqMutex<BTreeSet<usize>> = IrqMutex::new(BTreeSet::new());

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
    LIVE.lock().insert(skb as usize);
    skb
}

/// Whether `skb` is a live skb.
pub fn is_live(skb: *const SkBuff) -> bool {
    LIVE.lock().contains(&(skb as usize))
}

/// Frees a live skb; refuses (and reports) anything else.
pub fn free(skb: *mut SkBuff) -> bool {
    if !LIVE.lock().remove(&(skb as usize)) {
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
