//! Driver timers, run from the timer interrupt when they expire.
//!
//! The kernel keeps each timer's callback and expiry in its own table,
//! recorded when the driver sets the timer up: the callback is checked to be
//! one of the domain's entry points then, and a later change to the driver's
//! `timer_list` (which lives in driver memory) cannot redirect the kernel.
//! Each tick runs every timer that was due when the tick began, once: a
//! callback that re-arms its timer for "now" runs again at the next tick,
//! not in a loop that never gives the kernel back. And a domain's callbacks
//! may take at most half of any second: past that, the domain fails (its
//! timers go with it), so slow callbacks cannot starve the kernel either.

use super::abi::TimerList;
use crate::domain::{self, Entry, Resource, UMem};
use crate::sync::IrqMutex;
use alloc::vec::Vec;
use core::mem::offset_of;

struct Timer {
    /// The driver's `timer_list`, checked when it was set up (handed back to
    /// the callback; its `expires` mirrors the kernel's).
    mem: UMem,
    domain: Option<usize>,
    callback: Option<Entry>,
    expires: u64,
    pending: bool,
}

static TIMERS: IrqMutex<Vec<Timer>> = IrqMutex::new(Vec::new());

/// Per window: when the current second of timer accounting began (TSC),
/// and how many TSC cycles the domain's callbacks took in it.
static SECOND: [core::sync::atomic::AtomicU64; 32] =
    [const { core::sync::atomic::AtomicU64::new(0) }; 32];
static SPENT: [core::sync::atomic::AtomicU64; 32] =
    [const { core::sync::atomic::AtomicU64::new(0) }; 32];

/// Charges `cycles` of timer callbacks, ending at `now`, to domain `id`;
/// true when its callbacks have taken more than half of the current second.
fn over_budget(id: usize, now: u64, cycles: u64) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    let (Some(second), Some(spent)) = (SECOND.get(id), SPENT.get(id)) else {
        return false;
    };
    let hz = crate::timer::tsc_hz().max(1);
    if now.saturating_sub(second.load(Relaxed)) > hz {
        second.store(now, Relaxed);
        spent.store(0, Relaxed);
    }
    spent.fetch_add(cycles, Relaxed) + cycles > hz / 2
}

/// Runs `f` on the current domain's timer at `t`, under the table's lock;
/// `None` (after failing the domain) if it set up no timer there.
fn with_own<R>(
    export: &'static str,
    t: *mut TimerList,
    f: impl FnOnce(&mut Timer) -> R,
) -> Option<R> {
    let me = domain::current();
    let r = TIMERS
        .lock()
        .iter_mut()
        .find(|x| x.mem.addr() == t as u64 && x.domain == me)
        .map(f);
    if r.is_none() {
        domain::misuse(
            export,
            "timer",
            t as u64,
            "not a timer this domain set up with timer_setup",
        );
    }
    r
}

pub extern "C" fn timer_setup(
    t: *mut TimerList,
    f: Option<unsafe extern "C" fn(*mut TimerList)>,
    _flags: u32,
) {
    let Some(mem) = UMem::of("timer_setup", "timer", t) else {
        return;
    };
    let addr = f.map_or(0, |f| f as usize as u64);
    let callback = domain::entry::register("timer_setup", "function", addr);
    if addr != 0 && callback.is_none() {
        return;
    }
    mem.write(offset_of!(TimerList, function) as u64, addr);
    mem.write(offset_of!(TimerList, expires) as u64, 0u64);
    let me = domain::current();
    let known = TIMERS
        .lock()
        .iter_mut()
        .find(|x| x.mem.addr() == mem.addr() && x.domain == me)
        .map(|x| {
            x.callback = callback;
            x.pending = false;
        })
        .is_some();
    if known {
        return;
    }
    domain::charge("timer_setup", Resource::Timer);
    TIMERS.lock().push(Timer {
        mem,
        domain: me,
        callback,
        expires: 0,
        pending: false,
    });
}

pub extern "C" fn mod_timer(t: *mut TimerList, expires: u64) -> i32 {
    with_own("mod_timer", t, |x| {
        x.mem.write(offset_of!(TimerList, expires) as u64, expires);
        let was = x.pending;
        x.expires = expires;
        x.pending = true;
        i32::from(was)
    })
    .unwrap_or(0)
}

pub extern "C" fn del_timer_sync(t: *mut TimerList) -> i32 {
    with_own("del_timer_sync", t, |x| {
        let was = x.pending;
        x.pending = false;
        i32::from(was)
    })
    .unwrap_or(0)
}

/// Drops domain `id`'s timers (it failed); returns how many were pending.
pub fn forget(id: usize) -> usize {
    let mut timers = TIMERS.lock();
    let pending = timers
        .iter()
        .filter(|x| x.domain == Some(id) && x.pending)
        .count();
    timers.retain(|x| x.domain != Some(id));
    pending
}

/// Runs the timers due at `now` (called from the timer tick), each once.
pub fn run_expired(now: u64) {
    let due: Vec<(Entry, u64)> = {
        let mut timers = TIMERS.lock();
        timers
            .iter_mut()
            .filter(|x| x.pending && x.expires <= now)
            .filter_map(|x| {
                x.pending = false;
                x.callback.map(|c| (c, x.mem.addr()))
            })
            .collect()
    };
    for (callback, arg) in due {
        let t0 = crate::arch::rdtsc();
        let _ = domain::call(callback, &[arg]);
        let t1 = crate::arch::rdtsc();
        let id = callback.domain();
        if over_budget(id, t1, t1 - t0) && !domain::failed(id) {
            domain::fail_for(
                id,
                "timer: its callbacks took more than half a second of every second",
                0,
                callback.addr(),
            );
        }
    }
}
