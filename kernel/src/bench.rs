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
//! - `tx`: eth0 transmits with eth1 down (nobody receives);
//! - `rx`: eth1 receives a stream the host feeds into QEMU's hub (eth0 down):
//!   the kernel prints `{"nooks":"rx-ready",...}` and the runner sends the
//!   frames (see `nooks_bench::feed`).
//!
//! `feed=on` adds the `rx` runs; `only=rx` runs nothing else; `only=txrx`
//! runs the `txrx` streams alone (the IOMMU comparison). The runner
//! boots the two apart: a host feed needs idle guest time to pass at the
//! host's pace (`-icount sleep=on`), which makes interrupt timing, and so
//! how many frames each interrupt reaps, depend on the host; without it
//! (`sleep=off`) every count of the other workloads is the same at every
//! run.

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
        "{{\"nooks\":\"bench\",\"workload\":\"{workload}\",\"mechanism\":\"{}\",\"size\":{size},\"ops\":{ops},\"ok\":{ok},\"lost\":{lost},\"cycles\":{},\"idle\":{},\"inside\":{},\"tsc_hz\":{},\"entries\":{},\"exits\":{},\"cr3_writes\":{},\"tlb_flushes\":{},\"pkrs_writes\":{},\"pcid\":{},\"iommu\":\"{}\",\"dma_pages\":{},\"invalidations\":{}}}",
        mechanism(),
        to.tsc - from.tsc,
        to.idle - from.idle,
        to.inside - from.inside,
        timer::tsc_hz(),
        c.entries,
        c.exits,
        c.cr3_writes,
        c.tlb_flushes,
        c.pkrs_writes,
        crate::arch::pcid_enabled(),
        crate::iommu::mode().name(),
        c.dma_pages,
        c.invalidations
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

/// The MAC the host's feed sends from.
pub const FEED_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0xfe];

fn mac_text(m: [u8; 6]) -> alloc::string::String {
    alloc::format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5]
    )
}

/// Receives `frames` frames of `size` bytes the host feeds to `rx`; returns
/// (intact, bad, lost).
fn receive_only(rx: *mut NetDevice, frames: u32, size: u32) -> (u32, u32, u32) {
    // SAFETY: a registered device's net_device is alive.
    let own = unsafe { (*rx).dev_addr };
    crate::println!(
        "{{\"nooks\":\"rx-ready\",\"dst\":\"{}\",\"src\":\"{}\",\"size\":{size},\"frames\":{frames}}}",
        mac_text(own),
        mac_text(FEED_MAC)
    );
    let (mut good, mut bad, mut next) = (0u32, 0u32, 0u32);
    let mut lost = 0u32;
    let start = timer::millis();
    let mut last = start;
    while next < frames {
        let now = timer::millis();
        // The feed starts within a few seconds, then frames come every millisecond or so.
        if (good + bad == 0 && now - start > 10_000) || (good + bad > 0 && now - last > 1000) {
            break;
        }
        let Some(s) = net::next_received(rx) else {
            crate::arch::interrupts_disable();
            if net::with(rx, |d| d.rx.is_empty()).unwrap_or(true) {
                timer::idle();
            } else {
                crate::arch::interrupts_enable();
            }
            continue;
        };
        last = timer::millis();
        // The frame as the kernel checked it when the driver handed it up.
        let buf = crate::net::skb::payload(s);
        // Frames from anyone else on the hub are not the feed's.
        if buf.len() < 18
            || buf[6..12] != FEED_MAC
            || buf[12..14] != workload::ETHERTYPE.to_be_bytes()
        {
            skb::free(s);
            continue;
        }
        let seq = (buf.len() as u32 == size && buf[0..6] == own)
            .then(|| u32::from_be_bytes([buf[14], buf[15], buf[16], buf[17]]))
            .filter(|&seq| {
                seq < frames
                    && buf
                        .iter()
                        .enumerate()
                        .skip(18)
                        .all(|(i, &b)| b == workload::pattern(seq, i))
            });
        match seq {
            Some(seq) if seq >= next => {
                lost += seq - next;
                next = seq + 1;
                good += 1;
            }
            _ => bad += 1,
        }
        skb::free(s);
    }
    (good, bad, lost + (frames - next))
}

/// Runs every workload between eth0 and eth1 (both open, link up).
pub fn run(tx: *mut NetDevice, rx: *mut NetDevice, frames: u32) {
    let cmdline = crate::cmdline();
    let feed = crate::cmdline::get(cmdline, "feed") == Some("on");
    if crate::cmdline::get(cmdline, "only") != Some("rx") {
        run_local(tx, rx, frames);
    } else if let Err(e) = net::close(rx) {
        // Closed like after the local runs: the RX runs reopen it.
        crate::error!("closing eth1 before the RX-only runs: {e:?}");
    }
    if feed {
        run_rx(tx, rx, frames);
    }
}

/// The workloads that need nothing from outside the guest; leaves eth1
/// closed. `only=txrx` runs the TX+RX streams alone.
fn run_local(tx: *mut NetDevice, rx: *mut NetDevice, frames: u32) {
    let txrx_only = crate::cmdline::get(crate::cmdline(), "only") == Some("txrx");
    if !txrx_only {
        run_crossings(tx);
    }
    run_txrx(tx, rx, frames);
    if txrx_only {
        return;
    }
    run_tx(tx, rx, frames);
}

/// The null crossing and the store-heavy operation.
fn run_crossings(tx: *mut NetDevice) {
    let ops = 10_000;
    let m = Mark::now();
    let ok = (0..ops).all(|_| net::get_stats(tx).is_ok());
    report("null", 0, ops, ok, 0, m);

    let resets = 200;
    let m = Mark::now();
    let ok = (0..resets).all(|_| net::tx_timeout(tx).is_ok());
    report("store", 0, resets, ok, 0, m);
}

/// The verified eth0 → eth1 streams.
fn run_txrx(tx: *mut NetDevice, rx: *mut NetDevice, frames: u32) {
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
}

/// eth0 sends with eth1 closed (nobody receives); leaves eth1 closed.
fn run_tx(tx: *mut NetDevice, rx: *mut NetDevice, frames: u32) {
    if let Err(e) = net::close(rx) {
        crate::error!("closing eth1 for the TX-only runs: {e:?}");
    }
    // (TX-only below, then RX-only with eth0 down and eth1 up again.)
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

/// RX-only runs on a host feed, with eth0 down and eth1 (closed) reopened.
fn run_rx(tx: *mut NetDevice, rx: *mut NetDevice, frames: u32) {
    if let Err(e) = net::close(tx) {
        crate::error!("closing eth0 for the RX-only runs: {e:?}");
    }
    if let Err(e) = net::open(rx) {
        crate::error!("reopening eth1 for the RX-only runs: {e:?}");
        return;
    }
    let t0 = timer::millis();
    while !net::carrier(rx) && timer::millis() - t0 < 2000 {
        timer::idle();
    }
    // Let the freshly opened receiver settle before the feed starts.
    let t1 = timer::millis();
    while timer::millis() - t1 < 500 {
        timer::idle();
    }
    // A short unmeasured feed first: QEMU translates the receive path
    // on first use, slowly enough to overflow the ring.
    let _ = receive_only(rx, 300, 1514);
    for size in [64, 512, 1514] {
        let m = Mark::now();
        let (good, bad, lost) = receive_only(rx, frames, size);
        if bad > 0 {
            crate::warn!("rx {size}: {bad} frame(s) out of order or damaged");
        }
        report(
            "rx",
            size,
            u64::from(good),
            bad == 0 && good > 0,
            u64::from(lost),
            m,
        );
    }
}
