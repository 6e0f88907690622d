//! `kmalloc`/`kzalloc`/`kfree`, and the blocks the kernel allocates for a
//! domain (net devices, skbs, coherent DMA buffers). Every live block is
//! tracked with the domain that owns it and what it is, so a driver can free
//! only a `kmalloc` block of its own: a bad free (a pointer it never got, a
//! double free, another domain's block, an skb or net device through
//! `kfree`) fails it instead of corrupting a heap.

use crate::domain::{self, Resource};
use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;
use alloc::collections::btree_map::Entry;
use core::alloc::Layout;

/// What a block is: only `kmalloc` blocks may be given back with `kfree`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// From `kmalloc`/`kzalloc`.
    Kmalloc,
    /// A net device from `alloc_etherdev`.
    NetDevice,
    /// Another kernel object in the domain's memory (skb, DMA buffer),
    /// freed by the export that owns it.
    Object,
}

#[derive(Clone, Copy)]
struct Block {
    size: usize,
    align: usize,
    domain: Option<usize>,
    kind: Kind,
}

/// Live blocks: address → block.
static LIVE: IrqMutex<BTreeMap<usize, Block>> = IrqMutex::new(BTreeMap::new());

const ALIGN: usize = 64;
const MAX: usize = 16 << 20;

/// Allocates `size` bytes (zeroed: the heap never hands out stale kernel data),
/// in the current domain's window when a driver asks, else on the kernel heap.
pub fn alloc(size: usize, kind: Kind) -> *mut u8 {
    alloc_aligned(size, ALIGN, kind)
}

/// As [`alloc`], with an alignment (a power of two; at least 64 is used).
pub fn alloc_aligned(size: usize, align: usize, kind: Kind) -> *mut u8 {
    alloc_in(domain::current(), size, align, kind)
}

/// As [`alloc_aligned`], in domain `domain`'s window (None: the kernel
/// heap): the current domain's is charged as `kmalloc` (it fails past its
/// limit); another's — the kernel allocating on its behalf — only if it is
/// under its limit, else nothing is allocated.
pub fn alloc_in(domain: Option<usize>, size: usize, align: usize, kind: Kind) -> *mut u8 {
    if size == 0 || size > MAX {
        return core::ptr::null_mut();
    }
    let align = align.max(ALIGN);
    // Whole multiples of the alignment: blocks then tile the heap, leaving
    // no holes too small for the next block for first fit to walk past.
    let size = size.next_multiple_of(align);
    let p = match domain {
        Some(id) => {
            if domain == domain::current() {
                domain::charge("kmalloc", Resource::HeapBlock);
            } else if !domain::try_charge(id, Resource::HeapBlock) {
                return core::ptr::null_mut();
            }
            let p = domain::alloc(id, size, align);
            if p.is_null() {
                domain::uncharge(Some(id), Resource::HeapBlock);
            }
            p
        }
        None => {
            let Ok(layout) = Layout::from_size_align(size, align) else {
                return core::ptr::null_mut();
            };
            // SAFETY: non-zero size.
            unsafe { alloc::alloc::alloc_zeroed(layout) }
        }
    };
    if !p.is_null() {
        LIVE.lock().insert(
            p as usize,
            Block {
                size,
                align,
                domain,
                kind,
            },
        );
    }
    p
}

/// The owner and kind of the live block at `p`, if there is one.
pub fn block(p: *const u8) -> Option<(Option<usize>, Kind, usize)> {
    LIVE.lock()
        .get(&(p as usize))
        .map(|b| (b.domain, b.kind, b.size))
}

/// Frees a block from [`alloc`] of kind `kind`; returns false (and frees
/// nothing) for anything else.
pub fn free(p: *const u8, kind: Kind) -> bool {
    if p.is_null() {
        return true;
    }
    let block = match LIVE.lock().entry(p as usize) {
        Entry::Occupied(b) if b.get().kind == kind => Some(b.remove()),
        _ => None,
    };
    let Some(b) = block else {
        crate::warn!("bad free of {:p}: not a live block of that kind", p);
        return false;
    };
    match b.domain {
        Some(id) => {
            domain::uncharge(Some(id), Resource::HeapBlock);
            domain::free(id, p as *mut u8, b.size, b.align)
        }
        None => {
            // SAFETY: allocated by `alloc` with this size and alignment,
            // removed from LIVE once.
            unsafe {
                alloc::alloc::dealloc(
                    p as *mut u8,
                    Layout::from_size_align_unchecked(b.size, b.align),
                )
            };
            true
        }
    }
}

/// Forgets every block of domain `id` (its window is abandoned with it);
/// returns how many there were.
pub fn forget_domain(id: usize) -> usize {
    let mut l = LIVE.lock();
    let before = l.len();
    l.retain(|_, v| v.domain != Some(id));
    before - l.len()
}

/// (blocks, bytes) live.
pub fn live() -> (usize, usize) {
    let l = LIVE.lock();
    (l.len(), l.values().map(|v| v.size).sum())
}

pub extern "C" fn kmalloc(size: usize, _flags: u32) -> *mut u8 {
    alloc(size, Kind::Kmalloc)
}

pub extern "C" fn kzalloc(size: usize, _flags: u32) -> *mut u8 {
    alloc(size, Kind::Kmalloc)
}

pub extern "C" fn kfree(p: *const u8) {
    if p.is_null() {
        return;
    }
    let why = match block(p) {
        Some((owner, Kind::Kmalloc, _)) if owner == domain::current() => {
            if free(p, Kind::Kmalloc) {
                return;
            }
            "not a live allocation"
        }
        Some((owner, _, _)) if owner != domain::current() => {
            "bad free: a block of another domain or of the kernel"
        }
        Some(_) => "bad free: a kernel object (skb, net device, DMA buffer), not a kmalloc block",
        None => "bad free: not a live allocation",
    };
    domain::misuse("kfree", "ptr", p as u64, why);
}
