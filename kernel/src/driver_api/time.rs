//! Time: jiffies (the timer tick, HZ = 1000) and busy-wait delays on the TSC.

pub extern "C" fn nooks_jiffies() -> u64 {
    crate::timer::ticks()
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    let hz = crate::timer::tsc_hz().max(1_000_000);
    let end = crate::arch::rdtsc() + us.saturating_mul(hz / 1_000_000);
    while crate::arch::rdtsc() < end {
        core::hint::spin_loop();
    }
}

pub extern "C" fn udelay(us: u64) {
    delay_us(us.min(1_000_000));
}

pub extern "C" fn mdelay(ms: u64) {
    delay_us(ms.min(10_000) * 1000);
}
