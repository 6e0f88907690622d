//! What a freestanding Rust binary must provide itself: the C memory functions
//! the compiler calls (the prebuilt `core` expects them from libc), the panic
//! handler, and stubs for the unwinding symbols the prebuilt `core`/`alloc`
//! reference although the kernel is built with `panic = "abort"`.

use core::arch::asm;

/// # Safety
/// `dest` and `src` valid for `n` bytes and not overlapping (C `memcpy`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.nooks_shared")]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid; `rep movsb` copies
    // forwards, which is what memcpy promises for non-overlapping ranges.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `dest` and `src` valid for `n` bytes; they may overlap (C `memmove`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.nooks_shared")]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) <= (src as usize) || (dest as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: a forward copy is correct when dest is below src or the ranges are disjoint.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: dest lies inside [src, src+n): copy backwards with the direction flag
    // set, and clear it again (the ABI requires DF=0 at every call boundary).
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
             options(nostack));
    }
    dest
}

/// # Safety
/// `dest` valid for `n` bytes (C `memset`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.nooks_shared")]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `dest` is valid for `n` bytes.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `a` and `b` valid for `n` bytes (C `memcmp`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.nooks_shared")]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees both ranges are valid for n bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// As [`memcmp`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the prebuilt `alloc`/`core` for unwinding, which never happens:
/// the kernel aborts on panic.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    panic!("_Unwind_Resume called in a panic=abort kernel");
}

/// Personality routine of the (never used) unwinder.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::arch::interrupts_disable();
    // The serial lock may be held by the code that panicked: write unlocked.
    crate::serial::emergency_write(format_args!("KERNEL PANIC: {}\n", info));
    crate::arch::exit_qemu(false)
}
