//! Driver timers, run from the timer interrupt when they expire.

use super::abi::TimerList;
use crate::sync::IrqMutex;
use alloc::vec::Vec;

struct Pending(*mut TimerList);
// SAFETY: single CPU; the pointer is the driver's timer, used under the lock.
unsafe impl Send for Pending {}

static PENDING: IrqMutex<Vec<Pending>> = IrqMutex::new(Vec::new());

pub unsafe extern "C" fn timer_setup(
    t: *mut TimerList,
    f: Option<unsafe extern "C" fn(*mut TimerList)>,
    _flags: u32,
) {
    // SAFETY: the driver passes its own timer (or null).
    if let Some(t) = unsafe { t.as_mut() } {
        t.function = f;
        t.expires = 0;
    }
}

pub unsafe extern "C" fn mod_timer(t: *mut TimerList, expires: u64) -> i32 {
    if t.is_null() {
        return 0;
    }
    // SAFETY: the driver passes its own timer.
    unsafe { (*t).expires = expires };
    let mut p = PENDING.lock();
    let was = p.iter().any(|x| x.0 == t);
    if !was {
        p.push(Pending(t));
    }
    i32::from(was)
}

pub extern "C" fn del_timer_sync(t: *mut TimerList) -> i32 {
    let mut p = PENDING.lock();
    let before = p.len();
    p.retain(|x| x.0 != t);
    i32::from(p.len() != before)
}

/// Drops the pending timers whose callback lies in `text` (a failed
/// domain's code); returns how many.
pub fn forget(text: (u64, u64)) -> usize {
    let mut p = PENDING.lock();
    let before = p.len();
    // SAFETY: pending timers are alive (in the failed domain's abandoned window).
    p.retain(|x| {
        unsafe { (*x.0).function }.is_none_or(|f| {
            let a = f as usize as u64;
            a < text.0 || a >= text.1
        })
    });
    before - p.len()
}

/// Runs expired timers (called from the timer tick).
pub fn run_expired(now: u64) {
    loop {
        let due = {
            let mut p = PENDING.lock();
            // SAFETY: pending timers are alive until del_timer_sync.
            let i = p.iter().position(|x| unsafe { (*x.0).expires } <= now);
            i.map(|i| p.remove(i).0)
        };
        let Some(t) = due else { break };
        // SAFETY: the driver's timer and the callback it set.
        if let Some(f) = unsafe { (*t).function } {
            let entry = f as usize as u64;
            let _ =
                crate::driver::in_irq_context(entry, || crate::domain::call(entry, &[t as u64]));
        }
    }
}
