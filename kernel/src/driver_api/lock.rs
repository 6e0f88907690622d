//! Spinlocks living in driver memory. The kernel counts the locks drivers hold,
//! so the wrappers can check at every entry point's return that a driver holds
//! exactly what it held at entry.

use super::abi::SpinLock;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Locks currently held by driver code.
pub static HELD: AtomicU64 = AtomicU64::new(0);

fn word(lock: *mut SpinLock) -> &'static AtomicU32 {
    // SAFETY: `locked` is the first field of the driver's spinlock_t, a
    // naturally aligned u32; the driver keeps the lock alive while using it.
    unsafe { AtomicU32::from_ptr(lock.cast::<u32>()) }
}

pub extern "C" fn spin_lock_init(lock: *mut SpinLock) {
    if !lock.is_null() {
        word(lock).store(0, Ordering::Release);
    }
}

pub extern "C" fn spin_lock(lock: *mut SpinLock) {
    if lock.is_null() {
        return;
    }
    let w = word(lock);
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
    HELD.fetch_add(1, Ordering::Relaxed);
    crate::domain::count_lock(1);
}

pub extern "C" fn spin_unlock(lock: *mut SpinLock) {
    if lock.is_null() {
        return;
    }
    if word(lock).swap(0, Ordering::Release) == 1 {
        HELD.fetch_sub(1, Ordering::Relaxed);
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
