//! The watchdog: code that arms it and then fails to disarm it within its
//! budget (a runaway loop) is interrupted by a fault raised on the looping
//! context, so `fault::catch` contains it like any other.
//!
//! Two sources check the deadline (kept in TSC cycles, so it advances even
//! when interrupts are off): the timer tick, and — where the I/O APIC can
//! route the PIT to the CPU as an NMI — a non-maskable tick, which also
//! catches a loop with interrupts disabled: in a driver's interrupt handler,
//! under a spinlock taken with `spin_lock_irqsave`, or after a `cli` of an
//! MMU-isolated driver (Linux's hard-lockup detector, in miniature).

use crate::arch::idt::TrapFrame;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static DEADLINE: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicU64 = AtomicU64::new(0);
static NMI: AtomicBool = AtomicBool::new(false);

/// A deadline that [`arm`] replaced, for [`restore`] to put back.
#[must_use = "restore the deadline that was replaced"]
pub struct Saved {
    deadline: u64,
    at: u64,
}

/// Arms the watchdog for `ms` milliseconds from now, returning the deadline
/// it replaces. Every entry into a driver arms its own budget — also one
/// nested in another (an interrupt handler that interrupts a driver), so a
/// deadline that already fired for one does not leave the next unwatched.
pub fn arm(ms: u64) -> Saved {
    let hz = crate::timer::tsc_hz().max(1_000_000);
    let now = crate::arch::rdtsc();
    Saved {
        deadline: DEADLINE.swap(now + ms * (hz / 1000), Ordering::SeqCst),
        at: now,
    }
}

/// Puts back the deadline an [`arm`] replaced, moved later by the time the
/// nested entry took: an interrupt handler's time is not charged to the
/// driver it interrupted.
pub fn restore(saved: Saved) {
    let deadline = match saved.deadline {
        0 => 0,
        d => d + crate::arch::rdtsc().saturating_sub(saved.at),
    };
    DEADLINE.store(deadline, Ordering::SeqCst);
}

/// Disarms the watchdog.
pub fn disarm() {
    DEADLINE.store(0, Ordering::SeqCst);
}

/// How many times the watchdog fired since boot.
pub fn fired() -> u64 {
    FIRED.load(Ordering::Relaxed)
}

/// Called after every timer tick and for every NMI (the non-maskable tick),
/// with the interrupted context: once the deadline has passed, raises a
/// fault on that context, if it is the one that armed the watchdog (not an
/// interrupt handler above it, nor kernel code holding a lock on its behalf
/// — those are left to finish, and the next tick tries again).
pub fn check(tf: &mut TrapFrame) {
    let deadline = DEADLINE.load(Ordering::Relaxed);
    if deadline == 0 || crate::arch::rdtsc() < deadline {
        return;
    }
    match crate::fault::watchdog_now(tf) {
        crate::fault::Delivery::Deferred => {}
        crate::fault::Delivery::Delivered => {
            DEADLINE.store(0, Ordering::SeqCst);
            FIRED.fetch_add(1, Ordering::Relaxed);
        }
        crate::fault::Delivery::NothingArmed => {
            DEADLINE.store(0, Ordering::SeqCst);
            crate::warn!(
                "watchdog expired with nothing armed to unwind to (rip={:#x})",
                tf.rip
            );
        }
    }
}

/// Routes the PIT to the CPU as an NMI too, through the I/O APIC (its input
/// 2 on PC chipsets); returns whether the non-maskable tick is on.
pub fn enable_nmi_tick() -> bool {
    const IOAPIC: u64 = 0xfec0_0000;
    let Ok(base) = crate::memory::paging::ioremap(IOAPIC, 0x20) else {
        return false;
    };
    let reg = |index: u32| -> u32 {
        // SAFETY: IOREGSEL/IOWIN of the I/O APIC, mapped uncached above.
        unsafe {
            core::ptr::write_volatile(base as *mut u32, index);
            core::ptr::read_volatile((base + 0x10) as *const u32)
        }
    };
    let version = reg(1);
    if version == !0 || (version >> 16) & 0xff < 2 {
        return false;
    }
    let set = |index: u32, value: u32| {
        // SAFETY: as above.
        unsafe {
            core::ptr::write_volatile(base as *mut u32, index);
            core::ptr::write_volatile((base + 0x10) as *mut u32, value);
        }
    };
    // Input 2: edge, active high, physical destination APIC 0, delivery mode NMI.
    set(0x10 + 2 * 2 + 1, 0);
    set(0x10 + 2 * 2, (0b100 << 8) | 2);
    NMI.store(true, Ordering::SeqCst);
    true
}

/// Whether NMIs back the watchdog.
pub fn nmi_tick() -> bool {
    NMI.load(Ordering::Relaxed)
}
