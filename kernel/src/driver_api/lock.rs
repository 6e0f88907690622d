//! Spinlocks living in driver memory. The kernel counts the locks each domain
//! holds (once, in its `Domain`; mirrored into an SFI object's runtime state
//! for its own entries to compare), so the wrappers can check at every entry
//! point's return that a driver holds exactly what it held at entry. A lock must be the calling domain's own
//! memory (checked through [`UMem`]): a "lock" in kernel data would make the
//! kernel write there.

use super::abi::SpinLock;
use crate::domain::UMem;
use core::sync::atomic::{AtomicU32, Ordering};

fn word(export: &'static str, lock: *mut SpinLock) -> Option<&'static AtomicU32> {
    UMem::of(export, "lock", lock)?.atomic_u32(0)
}

pub extern "C" fn spin_lock_init(lock: *mut SpinLock) {
    if let Some(w) = word("spin_lock_init", lock) {
        w.store(0, Ordering::Release);
    }
}

pub extern "C" fn spin_lock(lock: *mut SpinLock) {
    let Some(w) = word("spin_lock", lock) else {
        return;
    };
    if w.load(Ordering::Acquire) != 0 {
        // One CPU: whoever holds it cannot run until this caller returns.
        crate::domain::abort(
            "api: deadlock (spin_lock of a lock already held, on one CPU)",
            lock as u64,
        );
    }
    while w
        .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    crate::domain::count_lock(1);
}

pub extern "C" fn spin_unlock(lock: *mut SpinLock) {
    let Some(w) = word("spin_unlock", lock) else {
        return;
    };
    if w.swap(0, Ordering::Release) == 1 {
        crate::domain::count_lock(-1);
    } else {
        crate::warn!("spin_unlock({lock:p}) of a lock that was not held");
    }
}

pub extern "C" fn spin_lock_irqsave_flags(lock: *mut SpinLock) -> u64 {
    let flags = u64::from(crate::arch::interrupts_enabled()) << 9;
    crate::arch::interrupts_disable();
    spin_lock(lock);
    flags
}

pub extern "C" fn spin_unlock_irqrestore(lock: *mut SpinLock, flags: u64) {
    spin_unlock(lock);
    // Never in an interrupt handler: whatever the flags say (a corrupted
    // value, say), enabling interrupts there would let one nest on the
    // handler's own interrupt stack.
    if flags & (1 << 9) != 0 && !crate::irq::in_interrupt() {
        crate::arch::interrupts_enable();
    }
}
