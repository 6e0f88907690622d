//! The periodic timer: PIT channel 0 at [`HZ`] on IRQ 0, a tick count, and the
//! TSC frequency measured against it (for cycle-accurate workload reports).

use crate::arch::outb;
use core::sync::atomic::{AtomicU64, Ordering};

/// Timer interrupts per second.
pub const HZ: u64 = 1000;
const PIT_HZ: u64 = 1_193_182;

static TICKS: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Programs the PIT and unmasks IRQ 0.
pub fn init() {
    let divisor = (PIT_HZ / HZ) as u16;
    // SAFETY: the PIT's ports belong to the kernel. Channel 0, lo/hi, mode 2.
    unsafe {
        outb(0x43, 0x34);
        outb(0x40, divisor as u8);
        outb(0x40, (divisor >> 8) as u8);
    }
    crate::arch::pic::unmask(0);
}

/// Called by the IRQ 0 handler.
pub fn tick() {
    let now = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    crate::driver_api::timer::run_expired(now);
    crate::iommu::poll();
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Milliseconds since boot, by the tick count.
pub fn millis() -> u64 {
    ticks() * 1000 / HZ
}

/// Measures the TSC against 50 timer ticks (interrupts must be on).
pub fn calibrate_tsc() {
    let start_tick = wait_next_tick();
    let t0 = crate::arch::rdtsc();
    while ticks() < start_tick + 50 {
        core::hint::spin_loop();
    }
    let t1 = crate::arch::rdtsc();
    TSC_HZ.store((t1 - t0) * HZ / 50, Ordering::Relaxed);
}

fn wait_next_tick() -> u64 {
    let t = ticks();
    while ticks() == t {
        core::hint::spin_loop();
    }
    t + 1
}

/// The measured TSC frequency in Hz (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// TSC cycles spent halted in [`idle`], from the halt to the interrupt that
/// ended it (the handler's own work is not idle). Under QEMU's `-icount` the
/// TSC counts guest instructions plus idle time, so subtracting this gives
/// the instructions a run executed.
pub static IDLE_CYCLES: AtomicU64 = AtomicU64::new(0);
static HALTED_AT: AtomicU64 = AtomicU64::new(0);

/// Halts until the next interrupt (enabling interrupts atomically), counting
/// the time halted in [`IDLE_CYCLES`].
pub fn idle() {
    HALTED_AT.store(crate::arch::rdtsc(), Ordering::SeqCst);
    crate::arch::wait_for_interrupt();
    woke();
}

/// Called at every interrupt entry: ends an idle period, if one is running.
pub fn woke() {
    let at = HALTED_AT.swap(0, Ordering::SeqCst);
    if at != 0 {
        IDLE_CYCLES.fetch_add(crate::arch::rdtsc().saturating_sub(at), Ordering::SeqCst);
    }
}
