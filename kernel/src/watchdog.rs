//! A timer-driven watchdog: code that arms it and then fails to disarm it within
//! its budget (a runaway loop) is interrupted by a fault, raised from the timer
//! interrupt on the looping context, so `fault::catch` contains it like any other.

use core::sync::atomic::{AtomicU64, Ordering};

static DEADLINE: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicU64 = AtomicU64::new(0);

/// Arms the watchdog for `ms` milliseconds from now.
pub fn arm(ms: u64) {
    DEADLINE.store(
        crate::timer::ticks() + ms * crate::timer::HZ / 1000 + 1,
        Ordering::SeqCst,
    );
}

/// Disarms the watchdog.
pub fn disarm() {
    DEADLINE.store(0, Ordering::SeqCst);
}

/// How many times the watchdog fired since boot.
pub fn fired() -> u64 {
    FIRED.load(Ordering::Relaxed)
}

/// Called on every tick; fires when the deadline has passed.
pub fn on_tick() {
    let deadline = DEADLINE.load(Ordering::Relaxed);
    if deadline != 0 && crate::timer::ticks() >= deadline {
        DEADLINE.store(0, Ordering::SeqCst);
        FIRED.fetch_add(1, Ordering::Relaxed);
        crate::fault::request_watchdog_fault();
    }
}
