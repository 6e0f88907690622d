//! Driver memory, as the kernel sees it: one checked type.
//!
//! A pointer a driver passes an export is an allegation (Hubris' `USlice`):
//! "this is my memory, write your answer here". Taken at face value it makes
//! the kernel write wherever the driver likes — an 8-byte write-what-where
//! through `mod_timer`, a lock word in the IDT. The kernel writes driver
//! memory only through a [`UMem`], which exists only for a range inside the
//! calling domain's own memory (its RAM — data, bss, heap — and its stacks);
//! anything else fails the domain with a cause naming the export and the
//! argument, before the kernel touches a byte. Reads of what a driver passes
//! (format strings, ops tables, ID tables) may come from anywhere mapped, as
//! in Nooks: a read of unmapped memory is a page fault the domain's catch
//! frame contains.

use super::{current, misuse, owns_range};
use core::sync::atomic::AtomicU32;

/// A range of the calling domain's memory the kernel may read and write.
#[derive(Debug, Clone, Copy)]
pub struct UMem {
    addr: u64,
    len: u64,
}

impl UMem {
    /// Checks [ptr, ptr + len), which a driver passed as `export`'s `arg`.
    /// `None` after failing the current domain (when it returns at all).
    /// The kernel calling its own export is trusted.
    pub fn new(export: &'static str, arg: &'static str, ptr: u64, len: u64) -> Option<UMem> {
        let ok = match current() {
            None => ptr != 0,
            Some(id) => owns_range(id, ptr, len),
        };
        if ok {
            return Some(UMem { addr: ptr, len });
        }
        misuse(export, arg, ptr, "not the domain's memory");
        None
    }

    /// [`UMem::new`] for a `T`, which must also be aligned for it.
    pub fn of<T>(export: &'static str, arg: &'static str, ptr: *const T) -> Option<UMem> {
        if !(ptr as u64).is_multiple_of(core::mem::align_of::<T>() as u64) {
            misuse(export, arg, ptr as u64, "misaligned");
            return None;
        }
        UMem::new(export, arg, ptr as u64, core::mem::size_of::<T>() as u64)
    }

    /// Its address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at<T>(&self, offset: u64) -> *mut T {
        assert!(
            offset + core::mem::size_of::<T>() as u64 <= self.len,
            "UMem access out of its range"
        );
        (self.addr + offset) as *mut T
    }

    /// Writes `value` at `offset`.
    pub fn write<T: Copy>(&self, offset: u64, value: T) {
        // SAFETY: inside the checked range, which is the domain's own mapped,
        // writable memory (its windows are never unmapped while the kernel runs).
        unsafe { self.at::<T>(offset).write_unaligned(value) }
    }

    /// Reads the `T` at `offset`.
    pub fn read<T: Copy>(&self, offset: u64) -> T {
        // SAFETY: as in `write`; every bit pattern of the `T`s used here
        // (integers, pointers as integers) is valid.
        unsafe { self.at::<T>(offset).read_unaligned() }
    }

    /// The aligned 32-bit word at `offset`, for atomic operations.
    pub fn atomic_u32(&self, offset: u64) -> Option<&'static AtomicU32> {
        let p = self.at::<u32>(offset);
        if !(p as u64).is_multiple_of(4) {
            return None;
        }
        // SAFETY: aligned, inside the domain's memory, which stays mapped.
        Some(unsafe { AtomicU32::from_ptr(p) })
    }

    /// Fills the range with `byte`.
    pub fn fill(&self, byte: u8) {
        // SAFETY: the whole checked range.
        unsafe { crate::rt::memset(self.addr as *mut u8, i32::from(byte), self.len as usize) };
    }

    /// Copies `len` bytes from `src` (readable memory anywhere) into the
    /// range; overlapping ranges are fine.
    pub fn copy_from(&self, src: u64) {
        // SAFETY: the destination is the checked range; the source is
        // memory the driver names for reading (a read fault is contained by
        // its catch frame).
        unsafe { crate::rt::memmove(self.addr as *mut u8, src as *const u8, self.len as usize) };
    }
}
