//! The network workload: N frames of varying size from eth0 through QEMU's hub
//! to eth1, every received frame checked byte for byte and by sequence number.
//! Transmission is paced by a window of frames in flight (like a transport
//! protocol would), so loss means the driver or device lost a frame, not that
//! the sender flooded a queue.

use crate::driver_api::abi::{NetDevice, SkBuff};
use crate::net::{self, NetError, skb};
use core::sync::atomic::Ordering;

/// EtherType of workload frames (IEEE local experimental).
pub const ETHERTYPE: u16 = 0x88b5;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Frames to send.
    pub frames: u32,
    /// Smallest frame (bytes, without FCS).
    pub min: u32,
    /// Largest frame.
    pub max: u32,
    /// Frames in flight at most.
    pub window: u32,
    /// Give up after this long without progress.
    pub stall_ms: u64,
}

/// What happened.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// Frames handed to the driver.
    pub sent: u32,
    /// Frames received intact and in order.
    pub received: u32,
    /// Frames received corrupted, reordered or duplicated.
    pub bad: u32,
    /// Frames never received.
    pub lost: u32,
    /// Bytes received intact.
    pub bytes: u64,
    /// TSC cycles for the whole run.
    pub cycles: u64,
    /// Driver interrupt handler invocations.
    pub irqs: u64,
    /// What the isolation mechanism did during the run.
    pub crossings: Crossings,
    /// Transmissions that found the driver's domain failed.
    pub failures: u32,
    /// Drivers recovered during the run.
    pub recoveries: u64,
    /// Guest milliseconds from a failure to the next frame accepted.
    pub outage_ms: u64,
}

/// Counts of the isolation mechanism's work, deterministic for a given run
/// (unlike wall-clock time under TCG).
#[derive(Debug, Default, Clone, Copy)]
pub struct Crossings {
    /// Kernel → driver calls (every mechanism, through `domain::call`).
    pub entries: u64,
    /// Driver → kernel calls through MMU gates.
    pub exits: u64,
    /// CR3 loads (MMU: gates and interrupts arriving inside a domain).
    pub cr3_writes: u64,
    /// TLB flushes those caused (every CR3 load without PCIDs).
    pub tlb_flushes: u64,
    /// IA32_PKRS writes (`pks`: gates and interrupts arriving inside a domain).
    pub pkrs_writes: u64,
    /// Pages the IOMMU mapped and unmapped for DMA (`iommu=strict`).
    pub dma_pages: u64,
    /// IOTLB and context-cache invalidations.
    pub invalidations: u64,
}

impl Crossings {
    /// The counters now.
    pub fn now() -> Self {
        let (cr3_writes, tlb_flushes) = crate::domain::mmu::counters();
        Crossings {
            entries: crate::domain::ENTRIES.load(Ordering::Relaxed),
            exits: crate::domain::gate::EXITS.load(Ordering::Relaxed),
            cr3_writes,
            tlb_flushes,
            pkrs_writes: crate::domain::pks::PKRS_WRITES.load(Ordering::Relaxed),
            dma_pages: crate::iommu::COUNTERS.maps.load(Ordering::Relaxed)
                + crate::iommu::COUNTERS.unmaps.load(Ordering::Relaxed),
            invalidations: crate::iommu::COUNTERS.invalidations.load(Ordering::Relaxed),
        }
    }

    /// What happened since `earlier`.
    pub fn since(self, earlier: Crossings) -> Crossings {
        Crossings {
            entries: self.entries - earlier.entries,
            exits: self.exits - earlier.exits,
            cr3_writes: self.cr3_writes - earlier.cr3_writes,
            tlb_flushes: self.tlb_flushes - earlier.tlb_flushes,
            pkrs_writes: self.pkrs_writes - earlier.pkrs_writes,
            dma_pages: self.dma_pages - earlier.dma_pages,
            invalidations: self.invalidations - earlier.invalidations,
        }
    }
}

/// Length of frame `seq`: spread over [min, max] deterministically.
pub fn frame_len(seq: u32, min: u32, max: u32) -> u32 {
    min + (seq.wrapping_mul(7919) % (max - min + 1))
}

/// Byte `i` of frame `seq` (the host's RX feed builds frames the same way).
pub fn pattern(seq: u32, i: usize) -> u8 {
    (seq as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ ((i >> 8) as u8)
}

fn mac(dev: *mut NetDevice) -> [u8; 6] {
    // SAFETY: a registered device's net_device is alive.
    unsafe { (*dev).dev_addr }
}

pub fn build(tx: *mut NetDevice, rx: *mut NetDevice, seq: u32, len: u32) -> *mut SkBuff {
    let s = skb::alloc(tx, len);
    if s.is_null() {
        return s;
    }
    // SAFETY: a fresh skb with `len` bytes of buffer.
    unsafe {
        let buf = core::slice::from_raw_parts_mut((*s).data, len as usize);
        buf[0..6].copy_from_slice(&mac(rx));
        buf[6..12].copy_from_slice(&mac(tx));
        buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
        buf[14..18].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in buf.iter_mut().enumerate().skip(18) {
            *b = pattern(seq, i);
        }
        (*s).len = len;
    }
    s
}

/// Checks a received frame; returns its sequence number if it is intact.
fn verify(s: *mut SkBuff, tx: *mut NetDevice, rx: *mut NetDevice, cfg: &Config) -> Option<u32> {
    // The frame as the kernel checked it when the driver handed it up.
    let buf = skb::payload(s);
    if buf.len() < 18
        || buf[0..6] != mac(rx)
        || buf[6..12] != mac(tx)
        || buf[12..14] != ETHERTYPE.to_be_bytes()
    {
        return None;
    }
    let seq = u32::from_be_bytes([buf[14], buf[15], buf[16], buf[17]]);
    if seq >= cfg.frames || buf.len() as u32 != frame_len(seq, cfg.min, cfg.max) {
        return None;
    }
    buf.iter()
        .enumerate()
        .skip(18)
        .all(|(i, &b)| b == pattern(seq, i))
        .then_some(seq)
}

/// A fault to inject into the running drivers at a frame (boot options
/// `inject=FUNCTION+0xOFFSET:HEXBYTES inject_at=FRAME`, as `nooks-cc inject`
/// prints them).
struct Injection {
    function: &'static str,
    offset: u64,
    bytes: alloc::vec::Vec<u8>,
    at: u32,
}

impl Injection {
    fn from_cmdline() -> Option<Self> {
        let line = crate::cmdline();
        let spec = crate::cmdline::get(line, "inject")?;
        let (site, hex) = spec.split_once(':')?;
        let (function, offset) = site.split_once('+')?;
        let offset = u64::from_str_radix(offset.trim_start_matches("0x"), 16).ok()?;
        let bytes = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<alloc::vec::Vec<u8>>>()?;
        let at = crate::cmdline::get_u64(line, "inject_at").unwrap_or(0) as u32;
        Some(Injection {
            function,
            offset,
            bytes,
            at,
        })
    }
}

/// Runs the workload between two opened devices. It is an application-level
/// stream: if a driver fails mid-way, the loop lets recovery run, looks the
/// devices up again by name, and carries on with the next sequence numbers;
/// the frames lost in the outage show up as sequence gaps.
pub fn run(
    mut tx: *mut NetDevice,
    mut rx: *mut NetDevice,
    cfg: Config,
) -> Result<Report, NetError> {
    let mut r = Report::default();
    let names = (net::name_of(tx), net::name_of(rx));
    let mut generation = net::generation();
    let recovered0 = crate::recovery::RECOVERED.load(Ordering::SeqCst);
    let mut outage_since: Option<u64> = None;
    // Frames sent before a failure may be lost: the window restarts above them.
    let mut floor: u32 = 0;
    let mut injection = Injection::from_cmdline();
    let irq0 = crate::driver_api::irq::CALLS.load(Ordering::Relaxed);
    let counted = Crossings::now();
    let start = crate::arch::rdtsc();
    let mut pending: Option<*mut SkBuff> = None;
    let mut expected: u32 = 0;
    let mut last_progress = crate::timer::millis();
    while expected < cfg.frames {
        let mut progress = false;
        if crate::recovery::pending() {
            crate::recovery::poll();
        }
        if net::generation() != generation {
            // A device went or came back: frames in flight may be lost with
            // the driver that failed (on either side), so the window restarts.
            generation = net::generation();
            floor = r.sent;
            outage_since.get_or_insert(crate::timer::millis());
            tx = names
                .0
                .as_deref()
                .and_then(net::find)
                .unwrap_or(core::ptr::null_mut());
            rx = names
                .1
                .as_deref()
                .and_then(net::find)
                .unwrap_or(core::ptr::null_mut());
        }
        if let Some(i) = injection.as_ref().filter(|i| r.sent >= i.at) {
            let n = crate::domain::patch_text(i.function, i.offset, &i.bytes);
            crate::println!(
                "{{\"nooks\":\"inject\",\"frame\":{},\"function\":\"{}\",\"offset\":{},\"domains\":{n}}}",
                r.sent,
                i.function,
                i.offset
            );
            injection = None;
        }
        while !tx.is_null()
            && !rx.is_null()
            && r.sent < cfg.frames
            && r.sent - expected.max(floor) < cfg.window
        {
            let s = match pending.take() {
                Some(s) => s,
                None => build(tx, rx, r.sent, frame_len(r.sent, cfg.min, cfg.max)),
            };
            if s.is_null() {
                break; // out of buffers for now; receiving frees some
            }
            match net::transmit(tx, s) {
                Ok(()) => {
                    r.sent += 1;
                    progress = true;
                    if let Some(t) = outage_since.take() {
                        r.outage_ms += crate::timer::millis() - t;
                    }
                }
                Err(NetError::Busy) => {
                    pending = Some(s);
                    break;
                }
                Err(NetError::DomainFailed | NetError::NoDevice) => {
                    // The frame is lost with the driver unless it never took it.
                    if skb::held_by_kernel(s) {
                        pending = Some(s);
                    } else {
                        r.sent += 1;
                    }
                    r.failures += 1;
                    outage_since.get_or_insert(crate::timer::millis());
                    floor = r.sent;
                    progress = true;
                    break;
                }
                Err(e) => {
                    skb::free(s);
                    return Err(e);
                }
            }
        }
        while let Some(s) = (!rx.is_null()).then(|| net::next_received(rx)).flatten() {
            progress = true;
            match verify(s, tx, rx, &cfg) {
                Some(seq) if seq == expected => {
                    r.received += 1;
                    r.bytes += skb::payload(s).len() as u64;
                    expected += 1;
                }
                Some(seq) if seq > expected => {
                    r.lost += seq - expected;
                    r.received += 1;
                    expected = seq + 1;
                }
                _ => r.bad += 1,
            }
            skb::free(s);
        }
        let now = crate::timer::millis();
        if progress {
            last_progress = now;
            continue;
        }
        // After a failure the last frames in flight may never come.
        let tail = r.failures > 0 && r.sent == cfg.frames;
        if now - last_progress > if tail { 500 } else { cfg.stall_ms } {
            break;
        }
        // Sleep until the next interrupt; the check and the sleep are atomic.
        crate::arch::interrupts_disable();
        let idle = net::with(rx, |d| d.rx.is_empty()).unwrap_or(true)
            && (net::stopped(tx)
                || r.sent == cfg.frames
                || r.sent - expected.max(floor) >= cfg.window);
        if idle {
            crate::timer::idle();
        } else {
            crate::arch::interrupts_enable();
        }
    }
    if let Some(s) = pending {
        skb::free(s);
    }
    r.lost += cfg.frames - expected.min(cfg.frames);
    r.cycles = crate::arch::rdtsc() - start;
    r.irqs = crate::driver_api::irq::CALLS.load(Ordering::Relaxed) - irq0;
    r.recoveries = crate::recovery::RECOVERED.load(Ordering::SeqCst) - recovered0;
    r.crossings = Crossings::now().since(counted);
    Ok(r)
}

/// Prints a report as the `workload` JSON record.
pub fn print(tx: *mut NetDevice, cfg: &Config, r: &Report) {
    let hz = crate::timer::tsc_hz().max(1);
    let mechanism = net::mechanism_of(tx).name();
    let fps = u64::from(r.received) * hz / r.cycles.max(1);
    let c = r.crossings;
    let per = |n: u64| n as f64 / f64::from(r.received.max(1));
    crate::println!(
        "{{\"nooks\":\"workload\",\"mechanism\":\"{}\",\"frames\":{},\"min\":{},\"max\":{},\"sent\":{},\"received\":{},\"bad\":{},\"lost\":{},\"bytes\":{},\"cycles\":{},\"tsc_hz\":{},\"fps\":{},\"irqs\":{},\"ms\":{},\"entries\":{},\"exits\":{},\"cr3_writes\":{},\"tlb_flushes\":{},\"pkrs_writes\":{},\"pcid\":{},\"iommu\":\"{}\",\"dma_pages\":{},\"invalidations\":{},\"failures\":{},\"recoveries\":{},\"outage_ms\":{},\"per_frame\":{{\"crossings\":{:.3},\"cr3_writes\":{:.3},\"tlb_flushes\":{:.3},\"pkrs_writes\":{:.3},\"invalidations\":{:.3}}}}}",
        mechanism,
        cfg.frames,
        cfg.min,
        cfg.max,
        r.sent,
        r.received,
        r.bad,
        r.lost,
        r.bytes,
        r.cycles,
        hz,
        fps,
        r.irqs,
        r.cycles * 1000 / hz,
        c.entries,
        c.exits,
        c.cr3_writes,
        c.tlb_flushes,
        c.pkrs_writes,
        crate::arch::pcid_enabled(),
        crate::iommu::mode().name(),
        c.dma_pages,
        c.invalidations,
        r.failures,
        r.recoveries,
        r.outage_ms,
        per(c.entries + c.exits),
        per(c.cr3_writes),
        per(c.tlb_flushes),
        per(c.pkrs_writes),
        per(c.invalidations),
    );
}
