//! The PCI part of the driver API: drivers register with an ID table, the
//! kernel probes them for every matching function, and resources and config
//! space are reached through the `pci_dev` the kernel owns.

use super::abi::{PciDev, PciDeviceId, PciDriver};
use crate::pci::{Bar, Function};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::vec::Vec;

struct Binding {
    pdev: *mut PciDev,
    function: Function,
    driver: *const PciDriver,
    drvdata: u64,
    /// The protection domain that probed it.
    domain: Option<usize>,
}

// SAFETY: single CPU; the raw pointers are only dereferenced under the kernel's control.
unsafe impl Send for Binding {}

static BINDINGS: IrqMutex<Vec<Binding>> = IrqMutex::new(Vec::new());

fn function_of(pdev: *const PciDev) -> Option<Function> {
    BINDINGS
        .lock()
        .iter()
        .find(|b| b.pdev as *const PciDev == pdev)
        .map(|b| b.function)
}

const ANY: u32 = !0;

fn matches(id: &PciDeviceId, f: &Function) -> bool {
    (id.vendor == ANY || id.vendor == u32::from(f.vendor))
        && (id.device == ANY || id.device == u32::from(f.device))
}

/// Pointers to the `pci_dev`s bound to a driver object (for the kernel's bookkeeping).
pub fn bound_devices() -> Vec<(*mut PciDev, Function)> {
    BINDINGS
        .lock()
        .iter()
        .map(|b| (b.pdev, b.function))
        .collect()
}

pub unsafe extern "C" fn pci_register_driver(drv: *mut PciDriver) -> i32 {
    if drv.is_null() {
        return -22;
    }
    // SAFETY: the driver passes its own pci_driver; read its fields once.
    let (ids, probe) = unsafe { ((*drv).id_table, (*drv).probe) };
    let Some(probe) = probe else { return -22 };
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
        BINDINGS.lock().push(Binding {
            pdev,
            function: f,
            driver: drv,
            drvdata: 0,
            domain,
        });
        // The driver's probe, with a pci_dev it may keep (a fault fails it).
        let r = crate::domain::call(probe as usize as u64, &[pdev as u64, id as u64])
            .map_or(-14, |r| r as i32);
        if r != 0 {
            crate::warn!(
                "probe of {:02x}:{:02x}.{} failed: {}",
                f.bus,
                f.dev,
                f.func,
                r
            );
            BINDINGS.lock().retain(|b| b.pdev != pdev);
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
    let mine: Vec<*mut PciDev> = BINDINGS
        .lock()
        .iter()
        .filter(|b| b.driver == drv as *const _)
        .map(|b| b.pdev)
        .collect();
    // SAFETY: the driver passes its own pci_driver.
    let remove = unsafe { drv.as_ref().and_then(|d| d.remove) };
    for pdev in mine {
        if let Some(remove) = remove {
            // The driver's remove for a device it probed.
            let _ = crate::domain::call(remove as usize as u64, &[pdev as u64]);
        }
        BINDINGS.lock().retain(|b| b.pdev != pdev);
    }
}

pub extern "C" fn pci_enable_device(pdev: *mut PciDev) -> i32 {
    match function_of(pdev) {
        Some(f) => {
            f.enable(0x3);
            0
        }
        None => -19,
    }
}

pub extern "C" fn pci_disable_device(pdev: *mut PciDev) {
    if let Some(f) = function_of(pdev) {
        let cmd = f.read32(0x04);
        f.write32(0x04, cmd & 0xffff & !0x7);
    }
}

pub extern "C" fn pci_set_master(pdev: *mut PciDev) {
    if let Some(f) = function_of(pdev) {
        f.enable(0x4);
    }
}

fn bar(pdev: *mut PciDev, bar: i32) -> Option<Bar> {
    let f = function_of(pdev)?;
    f.bars.get(usize::try_from(bar).ok()?).copied()
}

pub extern "C" fn pci_resource_start(pdev: *mut PciDev, n: i32) -> u64 {
    match bar(pdev, n) {
        Some(Bar::Memory { base, .. }) => base,
        Some(Bar::Io { port, .. }) => u64::from(port),
        _ => 0,
    }
}

pub extern "C" fn pci_resource_len(pdev: *mut PciDev, n: i32) -> u64 {
    match bar(pdev, n) {
        Some(Bar::Memory { size, .. }) => size,
        Some(Bar::Io { size, .. }) => u64::from(size),
        _ => 0,
    }
}

fn config_ok(where_: i32, width: i32) -> Option<u8> {
    let w = u8::try_from(where_).ok()?;
    (i32::from(w) % width == 0 && i32::from(w) + width <= 256).then_some(w)
}

pub unsafe extern "C" fn pci_read_config_dword(
    pdev: *mut PciDev,
    where_: i32,
    val: *mut u32,
) -> i32 {
    let (Some(f), Some(w)) = (function_of(pdev), config_ok(where_, 4)) else {
        return -22;
    };
    // SAFETY: the driver passes a pointer to its own u32.
    unsafe { val.write(f.read32(w)) };
    0
}

pub extern "C" fn pci_write_config_dword(pdev: *mut PciDev, where_: i32, val: u32) -> i32 {
    let (Some(f), Some(w)) = (function_of(pdev), config_ok(where_, 4)) else {
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
    let (Some(f), Some(w)) = (function_of(pdev), config_ok(where_, 2)) else {
        return -22;
    };
    let dword = f.read32(w & !3);
    // SAFETY: the driver passes a pointer to its own u16.
    unsafe { val.write((dword >> (8 * (w & 2))) as u16) };
    0
}

pub extern "C" fn pci_write_config_word(pdev: *mut PciDev, where_: i32, val: u16) -> i32 {
    let (Some(f), Some(w)) = (function_of(pdev), config_ok(where_, 2)) else {
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
    if let Some(b) = BINDINGS.lock().iter_mut().find(|b| b.pdev == pdev) {
        b.drvdata = data;
    }
}

pub extern "C" fn pci_get_drvdata(pdev: *mut PciDev) -> u64 {
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
