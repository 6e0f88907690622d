//! Recovery: a failed driver is replaced by a fresh copy of the same object,
//! and the devices it drove come back under the same names with the same
//! configuration, as Nooks' recovery manager did.
//!
//! When a domain fails (`domain::fail`), it is already quiesced: its interrupt
//! handlers are unregistered and its devices' bus mastering is off. The
//! failure is queued here; [`poll`], called from process context (the
//! workloads' loops, which is where a kernel thread would run it), then:
//! 1. releases what the object tracker recorded for the domain: its PCI
//!    bindings, pending timers, skbs (those it was handed and its receive
//!    buffers), heap blocks, and its network devices — whose configuration
//!    (name, MAC, MTU, flags, up/down) is kept;
//! 2. loads the same archive member again into a fresh domain (the failed
//!    window is abandoned, never reused: nothing dangling can reach it);
//! 3. restores each device's configuration through the driver's own
//!    operations (`ndo_set_mac_address`, `ndo_change_mtu`, `ndo_open`).
//!
//! A restart budget (`restarts=N` within `restart_window_ms=T`, default 3 in
//! 10 s) keeps a driver that fails again and again down, and says so.
//! `recover=off` disables recovery (failed domains stay failed).

use crate::sync::IrqMutex;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Failed domains waiting for recovery, with the time they failed (ms).
static PENDING: IrqMutex<Vec<(usize, u64)>> = IrqMutex::new(Vec::new());
/// Failure times (ms) per archive member, for the restart budget.
static HISTORY: IrqMutex<Vec<(&'static str, u64)>> = IrqMutex::new(Vec::new());
/// Recoveries that brought a driver back.
pub static RECOVERED: AtomicU64 = AtomicU64::new(0);

fn enabled() -> bool {
    crate::cmdline::get(crate::cmdline(), "recover") != Some("off")
}

/// Queues a failed domain for recovery (called when it fails, maybe in
/// interrupt context: the work itself waits for [`poll`]).
pub fn failed(id: usize) {
    // A driver that failed in its own init is recovered only when there is a
    // clean copy to load: the same object would fail the same way.
    if enabled() && crate::driver::origin(id).is_some_and(|o| o.running || o.clean) {
        PENDING.lock().push((id, crate::timer::millis()));
    }
}

/// Whether a recovery is waiting.
pub fn pending() -> bool {
    !PENDING.lock().is_empty()
}

/// Recovers every queued failed domain; returns how many came back.
pub fn poll() -> usize {
    let mut back = 0;
    loop {
        let next = {
            let mut p = PENDING.lock();
            (!p.is_empty()).then(|| p.remove(0))
        };
        let Some((id, at)) = next else { break };
        if recover(id, at) {
            back += 1;
        }
    }
    back
}

fn report(origin: &crate::driver::Origin, devices: &[String], ok: bool, ms: u64, detail: &str) {
    crate::println!(
        "{{\"nooks\":\"recovery\",\"domain\":\"{}#{}\",\"devices\":\"{}\",\"ok\":{ok},\"ms\":{ms},\"detail\":\"{detail}\"}}",
        origin.name,
        origin.domain,
        devices.join(","),
    );
}

fn recover(id: usize, failed_at: u64) -> bool {
    let Some(origin) = crate::driver::origin(id) else {
        return false;
    };
    // Release what the tracker recorded, keeping the devices' configuration.
    let released = crate::driver_api::release(id);
    let configs = released.devices;
    let devices: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
    crate::info!(
        "recovery of {} (domain {id}): released {} device(s), {} skb(s), {} heap block(s)",
        origin.name,
        devices.len(),
        released.skbs,
        released.blocks
    );

    // The restart budget.
    let now = crate::timer::millis();
    let limit = crate::cmdline::get_u64(crate::cmdline(), "restarts").unwrap_or(3) as usize;
    let window = crate::cmdline::get_u64(crate::cmdline(), "restart_window_ms").unwrap_or(10_000);
    let recent = {
        let mut h = HISTORY.lock();
        h.push((origin.name, now));
        h.iter()
            .filter(|(n, t)| *n == origin.name && now - *t <= window)
            .count()
    };
    if recent > limit {
        let why = alloc::format!(
            "restart budget exhausted: {recent} failures within {window} ms; left down"
        );
        crate::error!("{}: {why}", origin.name);
        crate::net::release_names(&devices);
        report(&origin, &devices, false, now - failed_at, &why);
        return false;
    }

    // A fresh copy of the same object, in a fresh domain.
    let instance = crate::driver::instances_of(origin.name);
    let driver = match crate::driver::load(origin.name, origin.bytes, origin.bytes, instance) {
        Ok(d) => d,
        Err(e) => {
            let why = alloc::format!("reload failed: {e}").replace('"', "'");
            crate::error!("{}: {why}", origin.name);
            crate::net::release_names(&devices);
            report(
                &origin,
                &devices,
                false,
                crate::timer::millis() - failed_at,
                &why,
            );
            return false;
        }
    };
    // Restore what the upper layers configured.
    let mut problems = Vec::new();
    for c in &configs {
        let Some(dev) = crate::net::find(&c.name) else {
            problems.push(alloc::format!("{} did not come back", c.name));
            continue;
        };
        if let Err(e) = crate::net::restore(dev, c) {
            problems.push(alloc::format!("{}: {e:?}", c.name));
        }
    }
    let ms = crate::timer::millis() - failed_at;
    let ok = problems.is_empty();
    if ok {
        RECOVERED.fetch_add(1, Ordering::SeqCst);
        crate::info!(
            "recovered {} into domain {} in {ms} ms",
            origin.name,
            driver.domain
        );
    }
    report(&origin, &devices, ok, ms, &problems.join("; "));
    ok
}
