//! `mode=bench`: the main job's workloads, run on whatever mechanism the
//! drivers were loaded under, each reported as one
//! `{"nooks":"bench","workload":..}` record with its TSC cycles, the cycles
//! spent idle, and the isolation mechanism's counts. Under QEMU's
//! `-icount shift=0` the TSC advances one tick per guest instruction (and
//! through idle time), so `cycles - idle` is the exact number of guest
//! instructions the workload executed, and `inside` those executed inside
//! calls into the driver (its code, the kernel functions it calls, the
//! crossings): deterministic, unlike wall time.
//!
//! - `null`: `ndo_get_stats`, kernel → driver → kernel with no work;
//! - `store`: `ndo_tx_timeout`, the driver rewrites its whole TX ring;
//! - `txrx`: the verified eth0 → eth1 stream (see `workload`) at one size;
//! - `tx`: eth0 transmits with eth1 down (nobody receives).

use crate::driver_api::abi::NetDevice;
use crate::net::{self, NetError, skb};
use crate::timer;
use crate::workload::{self, Config, Crossings};
use core::sync::atomic::Ordering;

/// A point in time, for measuring a workload.
#[derive(Clone, Copy)]
struct Mark {
    tsc: u64,
    idle: u64,
    inside: u64,
    crossings: Crossings,
}

impl Mark {
    fn now() -> Self {
        Mark {
            tsc: crate::arch::rdtsc(),
            idle: timer::IDLE_CYCLES.load(Ordering::SeqCst),
            inside: crate::domain::INSIDE_CYCLES.load(Ordering::SeqCst),
            crossings: Crossings::now(),
        }
    }
}

fn report(workload: &str, size: u32, ops: u64, ok: bool, lost: u64, from: Mark) {
    let to = Mark::now();
    let c = to.crossings.since(from.crossings);
    crate::println!(
        "{{\"nooks\":\"bench\",\"workload\":\"{workload}\",\"mechanism\":\"{}\",\"size\":{size},\"ops\":{ops},\"ok\":{ok},\"lost\":{lost},\"cycles\":{},\"idle\":{},\"inside\":{},\"tsc_hz\":{},\"entries\":{},\"exits\":{},\"cr3_writes\":{},\"tlb_flushes\":{},\"pcid\":{}}}",
        mechanism(),
        to.tsc - from.tsc,
        to.idle - from.idle,
        to.inside - from.inside,
        timer::tsc_hz(),
        c.entries,
        c.exits,
        c.cr3_writes,
        c.tlb_flushes,
        crate::arch::pcid_enabled()
    );
}

fn mechanism() -> &'static str {
    crate::domain::list()
        .first()
        .map_or("kernel", |(_, m, _)| m.name())
}

/// Transmits `frames` frames of `size` bytes on `tx` with nobody receiving,
/// reclaiming buffers as the driver completes them; returns the frames sent.
fn transmit_only(
    tx: *mut NetDevice,
    rx: *mut NetDevice,
    frames: u32,
    size: u32,
) -> Result<u32, NetError> {
    let before = skb::live();
    let mut sent = 0;
    let mut pending = None;
    let mut last = timer::millis();
    while sent < frames {
        let s = match pending.take() {
            Some(s) => s,
            None => workload::build(tx, rx, sent, size),
        };
        if s.is_null() {
            timer::idle();
            continue;
        }
        match net::transmit(tx, s) {
            Ok(()) => {
                sent += 1;
                last = timer::millis();
            }
            Err(NetError::Busy) => {
                pending = Some(s);
                if timer::millis() - last > 3000 {
                    break;
                }
                crate::arch::interrupts_disable();
                if net::stopped(tx) {
                    timer::idle();
                } else {
                    crate::arch::interrupts_enable();
                }
            }
            Err(e) => {
                skb::free(s);
                return Err(e);
            }
        }
    }
    if let Some(s) = pending {
        skb::free(s);
    }
    // Wait for the driver to complete (and free) everything it was given.
    let t0 = timer::millis();
    while skb::live() > before && timer::millis() - t0 < 2000 {
        timer::idle();
    }
    Ok(sent)
}

/// Runs every workload between eth0 and eth1 (both open, link up).
pub fn run(tx: *mut NetDevice, rx: *mut NetDevice, frames: u32) {
    let ops = 10_000;
    let m = Mark::now();
    let ok = (0..ops).all(|_| net::get_stats(tx).is_ok());
    report("null", 0, ops, ok, 0, m);

    let resets = 200;
    let m = Mark::now();
    let ok = (0..resets).all(|_| net::tx_timeout(tx).is_ok());
    report("store", 0, resets, ok, 0, m);

    for size in [64, 512, 1514] {
        let cfg = Config {
            frames,
            min: size,
            max: size,
            window: 64,
            stall_ms: 3000,
        };
        let m = Mark::now();
        match workload::run(tx, rx, cfg) {
            Ok(r) => report(
                "txrx",
                size,
                u64::from(r.received),
                r.bad == 0 && r.lost == 0,
                u64::from(r.lost),
                m,
            ),
            Err(e) => {
                crate::error!("txrx {size}: {e:?}");
                report("txrx", size, 0, false, u64::from(frames), m);
            }
        }
    }

    if let Err(e) = net::close(rx) {
        crate::error!("closing eth1 for the TX-only runs: {e:?}");
    }
    for size in [64, 512, 1514] {
        let m = Mark::now();
        match transmit_only(tx, rx, frames, size) {
            Ok(sent) => report(
                "tx",
                size,
                u64::from(sent),
                sent == frames,
                u64::from(frames - sent),
                m,
            ),
            Err(e) => {
                crate::error!("tx {size}: {e:?}");
                report("tx", size, 0, false, u64::from(frames), m);
            }
        }
    }
}
