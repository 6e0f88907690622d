//! Locking for a single-CPU kernel: a lock that also disables interrupts, so
//! code shared with interrupt handlers cannot deadlock against itself.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Kernel locks held now (the watchdog does not unwind code holding one).
static HELD: AtomicU32 = AtomicU32::new(0);

/// How many [`IrqMutex`]es are held.
pub fn held() -> u32 {
    HELD.load(Ordering::Relaxed)
}

/// A spinlock held with interrupts disabled.
pub struct IrqMutex<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `locked`.
unsafe impl<T: Send> Sync for IrqMutex<T> {}
// SAFETY: moving the mutex moves the value, which is Send.
unsafe impl<T: Send> Send for IrqMutex<T> {}

impl<T> IrqMutex<T> {
    /// An unlocked mutex.
    pub const fn new(value: T) -> Self {
        IrqMutex {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Disables interrupts and takes the lock; both are undone when the guard drops.
    #[inline]
    pub fn lock(&self) -> IrqGuard<'_, T> {
        let were_enabled = crate::arch::interrupts_enabled();
        crate::arch::interrupts_disable();
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        HELD.fetch_add(1, Ordering::Relaxed);
        IrqGuard {
            mutex: self,
            were_enabled,
        }
    }
}

/// Holds an [`IrqMutex`].
pub struct IrqGuard<'a, T> {
    mutex: &'a IrqMutex<T>,
    were_enabled: bool,
}

impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and we hold the guard mutably.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
        self.mutex.locked.store(false, Ordering::Release);
        if self.were_enabled {
            crate::arch::interrupts_enable();
        }
    }
}
