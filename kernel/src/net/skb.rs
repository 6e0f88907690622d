//! The skb pool: packet buffers (physically contiguous, so a buffer is one DMA
//! segment), every live one tracked by the kernel: who holds it, and where
//! its buffer is. An `sk_buff` a driver allocates lives in its window, where
//! it may write any field; so the kernel never takes `head` or `size` from
//! the struct, checks `data` and `len` against its own record when the driver
//! hands the skb up (`netif_rx`), and reads a received frame through the
//! snapshot it took then ([`payload`]). Only the holder of an skb may free it,
//! grow it or hand it on.
//!
//! A buffer lives in the RAM of the domain driving the skb's device — the
//! only memory that domain's device can reach through the IOMMU — even when
//! the kernel builds the frame: its struct stays in kernel memory, its
//! buffer is the domain's from the start (and moves, [`rehome`], if the
//! frame goes to another domain, such as a recovered instance).
//!
//! Every operation a driver asks for is one lookup in the pool.

use crate::driver_api::abi::{NetDevice, SkBuff};
use crate::driver_api::mem::{self, Kind};
use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;
use alloc::collections::btree_map::Entry;
use alloc::vec::Vec;

/// What the kernel knows of a live skb.
#[derive(Clone, Copy)]
pub struct Record {
    /// The domain holding it (None: the kernel).
    pub holder: Option<usize>,
    /// Its buffer: where, and how many bytes.
    pub head: u64,
    /// Bytes of buffer.
    pub size: u32,
    /// (data, len) as checked when the driver handed it up.
    frame: (u64, u32),
}

/// Why a driver's skb operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkbError {
    /// Not a live skb the caller holds.
    NotHeld,
    /// Its `data`/`len` leave the buffer the kernel gave it.
    OutOfBuffer,
}

impl SkbError {
    /// The cause a failed domain reports.
    pub fn why(self) -> &'static str {
        match self {
            SkbError::NotHeld => "not an skb this domain holds",
            SkbError::OutOfBuffer => "skb->data and skb->len leave the buffer",
        }
    }
}

/// skb → record.
static POOL: IrqMutex<BTreeMap<u64, Record>> = IrqMutex::new(BTreeMap::new());

/// Runs `f` on the record of `skb` if `holder` holds it.
pub fn with_held<R>(
    skb: *const SkBuff,
    holder: Option<usize>,
    f: impl FnOnce(&mut Record) -> R,
) -> Result<R, SkbError> {
    match POOL.lock().get_mut(&(skb as u64)) {
        Some(r) if r.holder == holder => Ok(f(r)),
        _ => Err(SkbError::NotHeld),
    }
}

/// Allocates an skb for `dev` with `size` bytes of buffer, the buffer in
/// the RAM of the domain that registered `dev` (else the caller's).
pub fn alloc(dev: *mut NetDevice, size: u32) -> *mut SkBuff {
    if size == 0 || size > 16384 {
        return core::ptr::null_mut();
    }
    let place = crate::net::domain_of(dev)
        .flatten()
        .or(crate::domain::current());
    let head = mem::alloc_in(place, size as usize, 64, Kind::Object);
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
    POOL.lock().insert(
        skb as u64,
        Record {
            holder: crate::domain::current(),
            head: head as u64,
            size,
            frame: (head as u64, 0),
        },
    );
    skb
}

/// Moves the buffer of `skb` (held by the kernel) into `domain`'s RAM if
/// it lies elsewhere, frame and all; false if the domain has no room.
pub fn rehome(skb: *mut SkBuff, domain: usize) -> bool {
    let Some((head, size)) = buffer(skb) else {
        return false;
    };
    if mem::block(head as *const u8).is_some_and(|b| b.0 == Some(domain)) {
        return true;
    }
    let fresh = mem::alloc_in(Some(domain), size as usize, 64, Kind::Object);
    if fresh.is_null() {
        return false;
    }
    // SAFETY: both buffers are live blocks of `size` bytes; the struct of a
    // live skb the kernel holds is mapped and the kernel's to update.
    unsafe {
        core::ptr::copy_nonoverlapping(head as *const u8, fresh, size as usize);
        let offset = ((*skb).data as u64)
            .saturating_sub(head)
            .min(u64::from(size));
        (*skb).head = fresh;
        (*skb).data = fresh.add(offset as usize);
    }
    if let Some(r) = POOL.lock().get_mut(&(skb as u64)) {
        let offset = r.frame.0.saturating_sub(r.head);
        r.head = fresh as u64;
        r.frame.0 = fresh as u64 + offset;
    }
    mem::free(head as *const u8, Kind::Object);
    true
}

/// Records that `domain` (None: the kernel) now holds `skb`.
pub fn hand_to(skb: *const SkBuff, domain: Option<usize>) {
    if let Some(r) = POOL.lock().get_mut(&(skb as u64)) {
        r.holder = domain;
    }
}

/// Whether `skb` is live and held by the kernel (not by a driver).
pub fn held_by_kernel(skb: *const SkBuff) -> bool {
    with_held(skb, None, |_| ()).is_ok()
}

/// The buffer (head, size) of a live skb, from the kernel's record.
pub fn buffer(skb: *const SkBuff) -> Option<(u64, u32)> {
    POOL.lock().get(&(skb as u64)).map(|r| (r.head, r.size))
}

/// Takes over an skb the current domain hands up (`netif_rx`): it must hold
/// it, and its `data` and `len` must lie in the buffer the kernel gave it;
/// the frame is kept as [`payload`] returns it, and the kernel holds the skb
/// from now on.
pub fn hand_up(skb: *mut SkBuff) -> Result<(), SkbError> {
    // SAFETY: the struct of a live skb (checked below before its fields are
    // trusted) is mapped, whatever the driver wrote in it; a forged pointer
    // faults, contained by the driver's catch frame.
    let (data, len) = unsafe { ((*skb).data as u64, (*skb).len) };
    with_held(skb, crate::domain::current(), |r| {
        let end = r.head + u64::from(r.size);
        if data < r.head || data > end || u64::from(len) > end - data {
            return Err(SkbError::OutOfBuffer);
        }
        r.frame = (data, len);
        r.holder = None;
        Ok(())
    })?
}

/// The frame of an skb handed up with `netif_rx` (see [`hand_up`]), or of
/// one the kernel built.
pub fn payload(skb: *const SkBuff) -> &'static [u8] {
    let Some(r) = POOL.lock().get(&(skb as u64)).copied() else {
        return &[];
    };
    // SAFETY: checked by `hand_up` to lie in the skb's buffer, which stays
    // mapped while the skb lives (a failed domain's window is never unmapped).
    unsafe { core::slice::from_raw_parts(r.frame.0 as *const u8, r.frame.1 as usize) }
}

/// Frees every skb domain `id` holds (after it failed); returns how many.
pub fn reclaim(id: usize) -> usize {
    let held: Vec<u64> = POOL
        .lock()
        .iter()
        .filter(|(_, r)| r.holder == Some(id))
        .map(|(s, _)| *s)
        .collect();
    for s in &held {
        free(*s as *mut SkBuff);
    }
    held.len()
}

/// Frees `skb` if `holder` holds it.
pub fn free_held(skb: *mut SkBuff, holder: Option<usize>) -> Result<(), SkbError> {
    let record = match POOL.lock().entry(skb as u64) {
        Entry::Occupied(r) if r.get().holder == holder => Some(r.remove()),
        _ => None,
    };
    release(skb, record.ok_or(SkbError::NotHeld)?);
    Ok(())
}

/// Gives back the memory of `skb`, whose record the pool no longer holds.
fn release(skb: *mut SkBuff, r: Record) {
    mem::free(r.head as *const u8, Kind::Object);
    mem::free(skb as *const u8, Kind::Object);
}

/// Frees a live skb whoever holds it (the kernel's own cleanup); refuses
/// (and reports) anything else.
pub fn free(skb: *mut SkBuff) -> bool {
    let record = POOL.lock().remove(&(skb as u64));
    let Some(r) = record else {
        crate::warn!("bad skb free of {skb:p}: not a live skb");
        return false;
    };
    release(skb, r);
    true
}

/// Live skbs.
pub fn live() -> usize {
    POOL.lock().len()
}
