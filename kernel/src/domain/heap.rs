//! A domain's heap, with its bookkeeping in kernel memory.
//!
//! The memory a domain's heap hands out lies in the domain's window, where the
//! driver may write anything; so the allocator's own state (the free ranges)
//! must not. A free-list allocator that threads its list through the free
//! blocks (as `linked_list_allocator` does) lets a use-after-free in the
//! driver forge that list, and the kernel would then hand out kernel memory
//! or walk a cycle for ever. Here everything the allocator knows is on the
//! kernel heap: nothing the driver writes is ever read back by it.
//!
//! Blocks up to 16 KiB come in power-of-two size classes, each naturally
//! aligned, kept on a free stack per class (a driver's steady churn of skb
//! buffers and small objects is then a push and a pop); classes are carved
//! from, and larger blocks taken from, [`Ranges`]: free ranges in a
//! `BTreeMap`, first fit, neighbours merged on free. Class blocks are not
//! merged back: the heap is the domain's own 8 MiB, and a driver that
//! fragments it only starves itself.

use crate::memory::SizeClasses;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// The size classes: 64 B to 16 KiB.
const CLASSES: SizeClasses = SizeClasses { min: 6, max: 14 };

/// A domain's heap: size classes over free ranges.
#[derive(Default)]
pub struct Heap {
    ranges: Ranges,
    classes: [Vec<u64>; CLASSES.count()],
}

impl Heap {
    /// A heap over [lo, hi).
    pub fn new(lo: u64, hi: u64) -> Self {
        Heap {
            ranges: Ranges::new(lo, hi),
            classes: Default::default(),
        }
    }

    /// A block of `size` bytes aligned to `align` (a power of two).
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        if !align.is_power_of_two() {
            return None;
        }
        match CLASSES.of(size, align) {
            Some(c) => self.classes[c].pop().or_else(|| {
                let bytes = CLASSES.bytes(c);
                self.ranges.alloc(bytes, bytes)
            }),
            None => self.ranges.alloc(size, align),
        }
    }

    /// Gives back the block at `addr` that [`Heap::alloc`] returned for
    /// `size` and `align` (the caller keeps the record: see `driver_api::mem`).
    pub fn free(&mut self, addr: u64, size: u64, align: u64) -> Result<(), FreeError> {
        match CLASSES.of(size, align) {
            Some(c) => {
                self.classes[c].push(addr);
                Ok(())
            }
            None => self.ranges.free(addr, size),
        }
    }
}

/// Sizes are rounded up to this, so a block's range is known from its size.
const GRAIN: u64 = 16;

/// Free ranges of one domain's heap: start → length, disjoint, merged.
#[derive(Default)]
pub struct Ranges {
    free: BTreeMap<u64, u64>,
}

/// Why a free was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// The range overlaps memory that is already free (a double free).
    AlreadyFree,
}

fn round(size: u64) -> u64 {
    size.max(1).div_ceil(GRAIN) * GRAIN
}

impl Ranges {
    /// A heap over [lo, hi).
    pub fn new(lo: u64, hi: u64) -> Self {
        let mut free = BTreeMap::new();
        if hi > lo {
            free.insert(lo, hi - lo);
        }
        Ranges { free }
    }

    /// The first block of `size` bytes aligned to `align` (a power of two).
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        if !align.is_power_of_two() {
            return None;
        }
        let size = round(size);
        let (start, len, at) = self.free.iter().find_map(|(&start, &len)| {
            let at = start.checked_add(align - 1)? & !(align - 1);
            (at.checked_add(size)? <= start + len).then_some((start, len, at))
        })?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        let end = at + size;
        if end < start + len {
            self.free.insert(end, start + len - end);
        }
        Some(at)
    }

    /// Gives back the block at `addr` of `size` bytes.
    pub fn free(&mut self, addr: u64, size: u64) -> Result<(), FreeError> {
        let (mut start, mut end) = (addr, addr + round(size));
        if let Some((&s, &l)) = self.free.range(..end).next_back()
            && s + l > start
        {
            return Err(FreeError::AlreadyFree);
        }
        if let Some((&s, &l)) = self.free.range(..start).next_back()
            && s + l == start
        {
            self.free.remove(&s);
            start = s;
        }
        if let Some(l) = self.free.remove(&end) {
            end += l;
        }
        self.free.insert(start, end - start);
        Ok(())
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }
}

crate::ktest! {
    fn a_domain_heap_reuses_its_size_classes() {
        let mut h = Heap::new(0x10000, 0x20000);
        let a = h.alloc(100, 64).ok_or("a")?;
        let b = h.alloc(2048, 64).ok_or("b")?;
        crate::kassert!(a % 128 == 0 && b % 2048 == 0, "naturally aligned: {a:#x} {b:#x}");
        h.free(a, 100, 64).map_err(|e| alloc::format!("{e:?}"))?;
        crate::kassert!(h.alloc(128, 64) == Some(a), "the class's freed block comes back");
        let big = h.alloc(0x8000, 64).ok_or("big")?;
        crate::kassert!(h.free(big, 0x8000, 64).is_ok() && h.alloc(0x8000, 64) == Some(big), "large blocks from the ranges");
        Ok(())
    }
}

crate::ktest! {
    fn a_domain_heap_keeps_its_free_list_in_kernel_memory() {
        let mut h = Ranges::new(0x1000, 0x3000);
        let a = h.alloc(100, 64).ok_or("a")?;
        let b = h.alloc(0x100, 0x100).ok_or("b")?;
        crate::kassert!(a == 0x1000 && b == 0x1100, "first fit: {a:#x} {b:#x}");
        crate::kassert!(h.free(a, 100).is_ok(), "free a");
        crate::kassert!(h.free(a, 100) == Err(FreeError::AlreadyFree), "double free refused");
        crate::kassert!(h.free(b, 0x100).is_ok(), "free b");
        crate::kassert!(h.free_bytes() == 0x2000 && h.free.len() == 1, "merged: {:?}", h.free);
        crate::kassert!(h.alloc(0x2001, 16).is_none(), "too big");
        crate::kassert!(h.alloc(16, 3).is_none(), "bad alignment");
        Ok(())
    }
}
