//! Symbolising kernel addresses with the `kernel.map` the host runner ships in
//! the boot archive (`<hex addr> <hex size> <name>` lines, sorted).

use core::fmt;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static MAP: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static MAP_LEN: AtomicUsize = AtomicUsize::new(0);

/// Installs the map (bytes that live for the rest of the run).
pub fn install(map: &'static [u8]) {
    MAP_LEN.store(map.len(), Ordering::SeqCst);
    MAP.store(map.as_ptr() as *mut u8, Ordering::SeqCst);
}

fn map() -> Option<&'static str> {
    let ptr = MAP.load(Ordering::SeqCst);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `install` stored a 'static slice's pointer and length.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, MAP_LEN.load(Ordering::SeqCst)) };
    core::str::from_utf8(bytes).ok()
}

/// The symbol containing `addr` and the offset into it.
pub fn lookup(addr: u64) -> Option<(&'static str, u64)> {
    let mut best = None;
    for line in map()?.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(a), Some(s), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(a), Ok(s)) = (u64::from_str_radix(a, 16), u64::from_str_radix(s, 16)) else {
            continue;
        };
        if a > addr {
            break;
        }
        if addr < a + s.max(1) {
            best = Some((name, addr - a));
        }
    }
    best
}

/// Displays an address as `name+0xoff`, or `?`.
pub struct Symbolized(pub u64);

impl fmt::Display for Symbolized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match lookup(self.0) {
            Some((name, off)) => write!(f, "{name}+{off:#x}"),
            None => f.write_str("?"),
        }
    }
}
