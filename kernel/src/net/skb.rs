//! The skb pool: packet buffers (physically contiguous, so a buffer is one DMA
//! segment), every live one tracked by the kernel: who holds it, and where
//! its buffer is. An `sk_buff` a driver allocates lives in its window, where
//! it may write any field; so the kernel never takes `head` or `size` from
//! the struct, checks `data` and `len` against its own record when the driver
//! hands the skb up (`netif_rx`), and reads a received frame through the
//! snapshot it took then ([`payload`]). Holding an skb grants its buffer to
//! the holder (it may have the device DMA to or from it), and only the holder
//! may free it or hand it on.

use crate::driver_api::abi::{NetDevice, SkBuff};
use crate::driver_api::mem::{self, Kind};
use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// What the kernel knows of a live skb.
#[derive(Clone, Copy)]
struct Record {
    /// The domain holding it (None: the kernel).
    holder: Option<usize>,
    head: u64,
    size: u32,
    /// (data, len) as checked when the driver handed it up.
    frame: (u64, u32),
}

struct Pool {
    /// skb → record.
    live: BTreeMap<u64, Record>,
    /// buffer head → skb, to find the skb a buffer belongs to.
    buffers: BTreeMap<u64, u64>,
}

static POOL: IrqMutex<Pool> = IrqMutex::new(Pool {
    live: BTreeMap::new(),
    buffers: BTreeMap::new(),
});

/// Allocates an skb with `size` bytes of buffer.
pub fn alloc(dev: *mut NetDevice, size: u32) -> *mut SkBuff {
    if size == 0 || size > 16384 {
        return core::ptr::null_mut();
    }
    let head = mem::alloc(size as usize, Kind::Object);
    if head.is_null() {
        return core::ptr::null_mut();
    }
    let skb = mem::alloc(core::mem::size_of::<SkBuff>(), Kind::Object) as *mut SkBuff;
    if skb.is_null() {
        mem::free(head, Kind::Object);
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
    let mut pool = POOL.lock();
    pool.live.insert(
        skb as u64,
        Record {
            holder: crate::domain::current(),
            head: head as u64,
            size,
            frame: (head as u64, 0),
        },
    );
    pool.buffers.insert(head as u64, skb as u64);
    skb
}

/// Records that `domain` (None: the kernel) now holds `skb`.
pub fn hand_to(skb: *const SkBuff, domain: Option<usize>) {
    if let Some(r) = POOL.lock().live.get_mut(&(skb as u64)) {
        r.holder = domain;
    }
}

/// Whether `skb` is live and held by the kernel (not by a driver).
pub fn held_by_kernel(skb: *const SkBuff) -> bool {
    held_by(skb, None)
}

/// Whether `skb` is live and held by `domain` (None: the kernel).
pub fn held_by(skb: *const SkBuff, domain: Option<usize>) -> bool {
    POOL.lock()
        .live
        .get(&(skb as u64))
        .is_some_and(|r| r.holder == domain)
}

/// Whether [ptr, ptr + len) lies in the buffer of an skb the current
/// domain holds.
pub fn buffer_held(ptr: u64, len: u64) -> bool {
    let me = crate::domain::current();
    let pool = POOL.lock();
    let Some((_, skb)) = pool.buffers.range(..=ptr).next_back() else {
        return false;
    };
    pool.live.get(skb).is_some_and(|r| {
        r.holder == me && ptr.checked_add(len).is_some_and(|end| end <= r.head + u64::from(r.size))
    })
}

/// The buffer (head, size) of a live skb, from the kernel's record.
pub fn buffer(skb: *const SkBuff) -> Option<(u64, u32)> {
    POOL.lock()
        .live
        .get(&(skb as u64))
        .map(|r| (r.head, r.size))
}

/// Checks the frame a driver hands up in `skb` (its `data` and `len` must
/// lie in the buffer the kernel gave it) and keeps it as the frame
/// [`payload`] returns. Err: why not.
pub fn seal(skb: *mut SkBuff) -> Result<(), &'static str> {
    // SAFETY: a live skb (checked by the caller): its struct is mapped,
    // whatever the driver wrote in it.
    let (data, len) = unsafe { ((*skb).data as u64, (*skb).len) };
    let mut pool = POOL.lock();
    let r = pool.live.get_mut(&(skb as u64)).ok_or("not a live skb")?;
    let end = r.head + u64::from(r.size);
    if data < r.head || data > end || u64::from(len) > end - data {
        return Err("skb->data and skb->len leave the buffer");
    }
    r.frame = (data, len);
    Ok(())
}

/// The frame of an skb handed up with `netif_rx` (see [`seal`]), or of one
/// the kernel built.
pub fn payload(skb: *const SkBuff) -> &'static [u8] {
    let Some(r) = POOL.lock().live.get(&(skb as u64)).copied() else {
        return &[];
    };
    // SAFETY: checked by `seal` to lie in the skb's buffer, which stays
    // mapped while the skb lives (a failed domain's window is never unmapped).
    unsafe { core::slice::from_raw_parts(r.frame.0 as *const u8, r.frame.1 as usize) }
}

/// Frees every skb domain `id` holds (after it failed); returns how many.
pub fn reclaim(id: usize) -> usize {
    let held: Vec<u64> = POOL
        .lock()
        .live
        .iter()
        .filter(|(_, r)| r.holder == Some(id))
        .map(|(s, _)| *s)
        .collect();
    for s in &held {
        free(*s as *mut SkBuff);
    }
    held.len()
}

/// Whether `skb` is a live skb.
pub fn is_live(skb: *const SkBuff) -> bool {
    POOL.lock().live.contains_key(&(skb as u64))
}

/// Frees a live skb; refuses (and reports) anything else.
pub fn free(skb: *mut SkBuff) -> bool {
    let record = {
        let mut pool = POOL.lock();
        let r = pool.live.remove(&(skb as u64));
        if let Some(r) = r {
            pool.buffers.remove(&r.head);
        }
        r
    };
    let Some(r) = record else {
        crate::warn!("bad skb free of {skb:p}: not a live skb");
        return false;
    };
    mem::free(r.head as *const u8, Kind::Object);
    mem::free(skb as *const u8, Kind::Object);
    true
}

/// Live skbs.
pub fn live() -> usize {
    POOL.lock().live.len()
}
