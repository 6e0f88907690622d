//! The C string functions, as a driver calls them: under `sfi` (and `none`)
//! they run in kernel context, so the destination must be the calling
//! domain's memory ([`UMem`]); the source may be anything mapped. Under
//! `mmu` a driver calls `crate::rt`'s directly, on its own page tables,
//! which confine them as they confine the driver.

use crate::domain::UMem;

pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    if n != 0
        && let Some(m) = UMem::new("memset", "dest", dest as u64, n as u64)
    {
        m.fill(c as u8);
    }
    dest
}

pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n != 0
        && let Some(m) = UMem::new("memcpy", "dest", dest as u64, n as u64)
    {
        m.copy_from(src as u64);
    }
    dest
}

pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n != 0
        && let Some(m) = UMem::new("memmove", "dest", dest as u64, n as u64)
    {
        m.copy_from(src as u64);
    }
    dest
}

pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: reads of what the driver names (a read fault is contained by
    // its catch frame).
    unsafe { crate::rt::memcmp(a, b, n) }
}
