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

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static DEADLINE: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicU64 = AtomicU64::new(0);
static NMI: AtomicBool = AtomicBool::new(false);

/// Arms the watchdog for `ms` milliseconds from now.
pub fn arm(ms: u64) {
    let hz = crate::timer::tsc_hz().max(1_000_000);
    DEADLINE.store(crate::arch::rdtsc() + ms * (hz / 1000), Ordering::SeqCst);
}

/// Disarms the watchdog.
pub fn disarm() {
    DEADLINE.store(0, Ordering::SeqCst);
}

/// How many times the watchdog fired since boot.
pub fn fired() -> u64 {
    FIRED.load(Ordering::Relaxed)
}

/// Whether the deadline passed (and, if so, disarms: it fires once).
fn expired() -> bool {
    let deadline = DEADLINE.load(Ordering::Relaxed);
    if deadline != 0 && crate::arch::rdtsc() >= deadline {
        DEADLINE.store(0, Ordering::SeqCst);
        FIRED.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// Called on every timer tick.
pub fn on_tick() {
    if expired() {
        crate::fault::request_watchdog_fault();
    }
}

/// Called for every NMI: the non-maskable tick.
pub fn on_nmi(tf: &mut crate::arch::idt::TrapFrame) {
    if expired() {
        crate::fault::watchdog_now(tf);
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
