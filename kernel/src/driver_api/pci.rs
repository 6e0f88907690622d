//! The PCI part of the driver API: drivers register with an ID table, the
//! kernel probes them for every matching function, and resources and config
//! space are reached through the `pci_dev` the kernel owns.
//!
//! A `pci_dev` is a capability: every export that takes one accepts only a
//! device bound to the calling domain (another domain's device, or anything
//! else, fails the caller). The probe and remove entries are checked when
//! the driver registers and kept here, not read again from its `pci_driver`.

use super::abi::{PciDev, PciDeviceId, PciDriver};
use crate::domain::{self, Entry, UMem};
use crate::pci::{Bar, Function};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::vec::Vec;

struct Binding {
    pdev: *mut PciDev,
    function: Function,
    /// The registering driver's `pci_driver` (its identity only).
    driver: u64,
    remove: Option<Entry>,
    drvdata: u64,
    /// The protection domain that probed it.
    domain: Option<usize>,
}

// SAFETY: single CPU; the raw pointers are only dereferenced under the kernel's control.
unsafe impl Send for Binding {}

static BINDINGS: IrqMutex<Vec<Binding>> = IrqMutex::new(Vec::new());

/// The `pci_dev` bound to each domain (a driver instance binds one
/// function), for the exports a driver calls per frame: [`is_mine`] without
/// a lock.
static PDEV_OF: [core::sync::atomic::AtomicU64; 32] =
    [const { core::sync::atomic::AtomicU64::new(0) }; 32];

/// The function behind `pdev` if it is bound to the calling domain (the
/// kernel may name any); otherwise the caller fails, blaming `export`.
fn function_of(export: &'static str, pdev: *const PciDev) -> Option<Function> {
    let me = domain::current();
    let found = BINDINGS
        .lock()
        .iter()
        .find(|b| b.pdev as *const PciDev == pdev && (me.is_none() || b.domain == me))
        .map(|b| b.function);
    if found.is_none() {
        domain::misuse(
            export,
            "pdev",
            pdev as u64,
            "not a pci_dev bound to this domain",
        );
    }
    found
}

/// Whether `line` is the interrupt line of a device bound to the calling domain.
pub fn line_is_mine(line: u8) -> bool {
    let me = domain::current();
    BINDINGS
        .lock()
        .iter()
        .any(|b| b.domain == me && b.function.irq_line == line)
}

/// The memory BARs of the devices bound to domain `id` (None: the kernel's).
pub fn bars_of(id: Option<usize>) -> Vec<Bar> {
    BINDINGS
        .lock()
        .iter()
        .filter(|b| b.domain == id)
        .flat_map(|b| b.function.bars)
        .collect()
}

const ANY: u32 = !0;

fn matches(id: &PciDeviceId, f: &Function) -> bool {
    (id.vendor == ANY || id.vendor == u32::from(f.vendor))
        && (id.device == ANY || id.device == u32::from(f.device))
}

pub unsafe extern "C" fn pci_register_driver(drv: *mut PciDriver) -> i32 {
    if drv.is_null() {
        return -22;
    }
    // SAFETY: reads of what the driver names (a read fault is contained by
    // its catch frame); its fields are read once, here.
    let (ids, probe, remove) = unsafe { ((*drv).id_table, (*drv).probe, (*drv).remove) };
    let entry =
        |arg, f: Option<u64>| domain::entry::register("pci_register_driver", arg, f.unwrap_or(0));
    let Some(probe) = entry("probe", probe.map(|f| f as usize as u64)) else {
        return -22;
    };
    let remove = entry("remove", remove.map(|f| f as usize as u64));
    if ids.is_null() {
        return -22;
    }
    for f in crate::pci::functions() {
        let already = BINDINGS.lock().iter().any(|b| {
            b.function.bus == f.bus && b.function.dev == f.dev && b.function.func == f.func
        });
        if already {
            continue;
        }
        let mut i = 0;
        let id = loop {
            // SAFETY: the table ends with an all-zero entry; bound the walk anyway.
            let id = unsafe { &*ids.add(i) };
            if (id.vendor == 0 && id.device == 0) || i >= 64 {
                break None;
            }
            if matches(id, &f) {
                break Some(id as *const PciDeviceId);
            }
            i += 1;
        };
        let Some(id) = id else { continue };
        let mut starts = [0u64; 6];
        for (slot, bar) in starts.iter_mut().zip(f.bars.iter()) {
            *slot = match *bar {
                Bar::Memory { base, .. } => base,
                Bar::Io { port, .. } => u64::from(port),
                Bar::None => 0,
            };
        }
        let pdev = Box::into_raw(Box::new(PciDev {
            vendor: f.vendor,
            device: f.device,
            bus: f.bus,
            devfn: (f.dev << 3) | f.func,
            irq: f.irq_line,
            pad0: 0,
            resource_start: starts,
            nooks_private: 0,
        }));
        let domain = crate::domain::current();
        if let Some(slot) = domain.and_then(|d| PDEV_OF.get(d)) {
            slot.store(pdev as u64, core::sync::atomic::Ordering::Relaxed);
        }
        if let Some(id) = domain {
            // Its DMA reaches the domain's memory, from before the probe on.
            crate::iommu::attach(f.bus, (f.dev << 3) | f.func, id);
        }
        BINDINGS.lock().push(Binding {
            pdev,
            function: f,
            driver: drv as u64,
            remove,
            drvdata: 0,
            domain,
        });
        // The driver's probe, with a pci_dev it may keep (a fault fails it).
        let r = domain::call(probe, &[pdev as u64, id as u64]).map_or(-14, |r| r as i32);
        if r != 0 {
            crate::warn!(
                "probe of {:02x}:{:02x}.{} failed: {}",
                f.bus,
                f.dev,
                f.func,
                r
            );
            BINDINGS.lock().retain(|b| b.pdev != pdev);
            crate::iommu::detach(f.bus, (f.dev << 3) | f.func);
            if let Some(slot) = domain.and_then(|d| PDEV_OF.get(d)) {
                slot.store(0, core::sync::atomic::Ordering::Relaxed);
            }
            // SAFETY: allocated above; the failed probe must not keep it.
            drop(unsafe { Box::from_raw(pdev) });
        } else if domain.is_some() {
            // One device per domain: each instance of a driver gets its own.
            break;
        }
    }
    0
}

pub unsafe extern "C" fn pci_unregister_driver(drv: *mut PciDriver) {
    let me = domain::current();
    let mine: Vec<(*mut PciDev, Option<Entry>, crate::pci::Function)> = BINDINGS
        .lock()
        .iter()
        .filter(|b| b.driver == drv as u64 && (me.is_none() || b.domain == me))
        .map(|b| (b.pdev, b.remove, b.function))
        .collect();
    for (pdev, remove, f) in mine {
        if let Some(remove) = remove {
            // The driver's remove for a device it probed.
            let _ = domain::call(remove, &[pdev as u64]);
        }
        BINDINGS.lock().retain(|b| b.pdev != pdev);
        crate::iommu::detach(f.bus, (f.dev << 3) | f.func);
        for slot in &PDEV_OF {
            let _ = slot.compare_exchange(
                pdev as u64,
                0,
                core::sync::atomic::Ordering::Relaxed,
                core::sync::atomic::Ordering::Relaxed,
            );
        }
    }
}

pub extern "C" fn pci_enable_device(pdev: *mut PciDev) -> i32 {
    match function_of("pci_enable_device", pdev) {
        Some(f) => {
            f.enable(0x3);
            0
        }
        None => -19,
    }
}

pub extern "C" fn pci_disable_device(pdev: *mut PciDev) {
    if let Some(f) = function_of("pci_disable_device", pdev) {
        let cmd = f.read32(0x04);
        f.write32(0x04, cmd & 0xffff & !0x7);
    }
}

pub extern "C" fn pci_set_master(pdev: *mut PciDev) {
    if let Some(f) = function_of("pci_set_master", pdev) {
        f.enable(0x4);
    }
}

fn bar(export: &'static str, pdev: *mut PciDev, bar: i32) -> Option<Bar> {
    let f = function_of(export, pdev)?;
    f.bars.get(usize::try_from(bar).ok()?).copied()
}

pub extern "C" fn pci_resource_start(pdev: *mut PciDev, n: i32) -> u64 {
    match bar("pci_resource_start", pdev, n) {
        Some(Bar::Memory { base, .. }) => base,
        Some(Bar::Io { port, .. }) => u64::from(port),
        _ => 0,
    }
}

pub extern "C" fn pci_resource_len(pdev: *mut PciDev, n: i32) -> u64 {
    match bar("pci_resource_len", pdev, n) {
        Some(Bar::Memory { size, .. }) => size,
        Some(Bar::Io { size, .. }) => u64::from(size),
        _ => 0,
    }
}

/// Config registers a driver may write: not the BARs (0x10-0x27) nor the
/// expansion ROM base (0x30): moving a BAR over RAM would turn the device's
/// register window into a window on kernel memory.
fn writable_config(w: u8) -> bool {
    !(0x10..0x28).contains(&w) && !(0x30..0x34).contains(&w)
}

fn config_ok(where_: i32, width: i32) -> Option<u8> {
    let w = u8::try_from(where_).ok()?;
    (i32::from(w) % width == 0 && i32::from(w) + width <= 256).then_some(w)
}

/// The function and register a config access of `width` bytes at `where_`
/// through `pdev` names, if `pdev` is the caller's and the register is one
/// it may reach (for a write, not the BARs nor the ROM base: the caller
/// fails otherwise).
fn config_at(
    export: &'static str,
    pdev: *mut PciDev,
    where_: i32,
    width: i32,
    write: bool,
) -> Option<(Function, u8)> {
    let (f, w) = (function_of(export, pdev)?, config_ok(where_, width)?);
    if write && !writable_config(w) {
        domain::misuse(
            export,
            "where",
            u64::from(w),
            "the BARs and the expansion ROM address are the kernel's",
        );
        return None;
    }
    Some((f, w))
}

pub unsafe extern "C" fn pci_read_config_dword(
    pdev: *mut PciDev,
    where_: i32,
    val: *mut u32,
) -> i32 {
    let Some((f, w)) = config_at("pci_read_config_dword", pdev, where_, 4, false) else {
        return -22;
    };
    let Some(val) = UMem::of("pci_read_config_dword", "val", val) else {
        return -22;
    };
    val.write(0, f.read32(w));
    0
}

pub extern "C" fn pci_write_config_dword(pdev: *mut PciDev, where_: i32, val: u32) -> i32 {
    let Some((f, w)) = config_at("pci_write_config_dword", pdev, where_, 4, true) else {
        return -22;
    };
    f.write32(w, val);
    0
}

pub unsafe extern "C" fn pci_read_config_word(
    pdev: *mut PciDev,
    where_: i32,
    val: *mut u16,
) -> i32 {
    let Some((f, w)) = config_at("pci_read_config_word", pdev, where_, 2, false) else {
        return -22;
    };
    let Some(val) = UMem::of("pci_read_config_word", "val", val) else {
        return -22;
    };
    let dword = f.read32(w & !3);
    val.write(0, (dword >> (8 * (w & 2))) as u16);
    0
}

pub extern "C" fn pci_write_config_word(pdev: *mut PciDev, where_: i32, val: u16) -> i32 {
    let Some((f, w)) = config_at("pci_write_config_word", pdev, where_, 2, true) else {
        return -22;
    };
    let shift = 8 * u32::from(w & 2);
    let dword = f.read32(w & !3);
    f.write32(
        w & !3,
        (dword & !(0xffff << shift)) | (u32::from(val) << shift),
    );
    0
}

pub extern "C" fn pci_set_drvdata(pdev: *mut PciDev, data: u64) {
    if function_of("pci_set_drvdata", pdev).is_some()
        && let Some(b) = BINDINGS.lock().iter_mut().find(|b| b.pdev == pdev)
    {
        b.drvdata = data;
    }
}

pub extern "C" fn pci_get_drvdata(pdev: *mut PciDev) -> u64 {
    if function_of("pci_get_drvdata", pdev).is_none() {
        return 0;
    }
    BINDINGS
        .lock()
        .iter()
        .find(|b| b.pdev == pdev)
        .map_or(0, |b| b.drvdata)
}

/// Quiesces the devices a failed domain drove: bus mastering (DMA) and
/// decoding off, and their interrupt masked at the function (INTx disable),
/// so a shared line is not left asserted by a device nobody services.
pub fn stop_dma_of(domain: usize) {
    for b in BINDINGS.lock().iter().filter(|b| b.domain == Some(domain)) {
        let cmd = b.function.read32(0x04);
        b.function.write32(0x04, (cmd & 0xffff & !0x7) | 0x400);
    }
}

/// Releases the devices a failed domain bound, so a fresh instance can
/// probe them; returns how many.
pub fn unbind_domain(domain: usize) -> usize {
    if let Some(slot) = PDEV_OF.get(domain) {
        slot.store(0, core::sync::atomic::Ordering::Relaxed);
    }
    let mut b = BINDINGS.lock();
    let before = b.len();
    b.retain(|x| x.domain != Some(domain));
    before - b.len()
}

/// Checks that every `pci_dev` the kernel handed out still describes its
/// function (drivers may read it, never write it); names the first that
/// does not.
pub fn pdevs_intact() -> Result<(), alloc::string::String> {
    for b in BINDINGS.lock().iter() {
        let f = &b.function;
        // SAFETY: bound pci_devs are kernel allocations alive while bound.
        let p = unsafe { &*b.pdev };
        if p.vendor != f.vendor
            || p.device != f.device
            || p.bus != f.bus
            || p.devfn != ((f.dev << 3) | f.func)
            || p.irq != f.irq_line
        {
            return Err(alloc::format!(
                "pci_dev of {:02x}:{:02x}.{} was overwritten",
                f.bus,
                f.dev,
                f.func
            ));
        }
    }
    Ok(())
}

/// Unmasks INTx of the devices the current domain bound on `line`: called
/// when it registers a handler there, so a device a failed predecessor left
/// asserting cannot storm a shared line before someone services it.
pub fn unmask_intx(line: u8) {
    let domain = crate::domain::current();
    for b in BINDINGS
        .lock()
        .iter()
        .filter(|b| b.domain == domain && b.function.irq_line == line)
    {
        let cmd = b.function.read32(0x04) & 0xffff;
        if cmd & 0x400 != 0 {
            b.function.write32(0x04, cmd & !0x400);
        }
    }
}

/// How many devices domain `domain` has bound.
pub fn bound_by(domain: usize) -> usize {
    BINDINGS
        .lock()
        .iter()
        .filter(|b| b.domain == Some(domain))
        .count()
}

/// Whether `pdev` is bound to the calling domain; fails it otherwise.
pub fn is_mine(export: &'static str, pdev: *const PciDev) -> bool {
    let fast = crate::domain::current()
        .and_then(|d| PDEV_OF.get(d))
        .is_some_and(|slot| slot.load(core::sync::atomic::Ordering::Relaxed) == pdev as u64);
    fast || function_of(export, pdev).is_some()
}
