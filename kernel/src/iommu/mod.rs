//! The IOMMU: each device reaches its domain's memory and nothing else.
//!
//! No store check and no page table sees a device's DMA: a driver that
//! writes a kernel address into a descriptor makes its device write there.
//! So every PCI function a domain's driver binds is attached to that
//! domain's I/O page tables in the platform's DMA remapping unit (Intel
//! VT-d, found from ACPI), and a function bound to no domain has no DMA.
//! What the tables map depends on the mode (`iommu=` on the command line):
//!
//! - `on` (the default): the domain's RAM, once, when its first device is
//!   attached (bus address = physical address). Everything a driver can
//!   hand a device lives there — its coherent buffers, its skbs, and the
//!   buffers of the frames the kernel gives it to send (built in its RAM:
//!   `net::skb`) — so a frame costs no mapping at all;
//! - `strict`: nothing until the driver maps it: `dma_alloc_coherent` and
//!   `dma_map_single` map the pages of the buffer (which must be the
//!   domain's RAM), `dma_unmap_single` and `dma_free_coherent` unmap them
//!   and invalidate the unit's cached translation — what strictness costs;
//! - `off`: translation off, DMA unconfined (the comparison).
//!
//! A DMA outside the tables is recorded by the unit; [`poll`] (every timer
//! tick) reads the records and fails the domain of the device that made it
//! with "DMA outside the domain" and the address, and recovery gives the
//! fresh instance fresh tables (under `none`, the baseline, the fault is
//! logged and the driver goes on, as a native kernel's IOMMU driver does). A failing domain's devices are detached at
//! once. The granularity is a page: a buffer shares its pages' fate with
//! whatever else of the domain's lies in them.

pub mod vtd;

use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use vtd::{PageTable, Unit};

/// How device DMA is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not at all.
    Off,
    /// Each device to its domain's RAM, mapped once.
    On,
    /// Each device to the buffers its driver has mapped, page by page.
    Strict,
}

impl Mode {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::On => "on",
            Mode::Strict => "strict",
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// The mode in force.
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::On,
        2 => Mode::Strict,
        _ => Mode::Off,
    }
}

/// What the IOMMU did, for the benchmarks.
pub struct Counters {
    /// Pages mapped for DMA.
    pub maps: AtomicU64,
    /// Pages unmapped.
    pub unmaps: AtomicU64,
    /// IOTLB and context-cache invalidations.
    pub invalidations: AtomicU64,
    /// DMA faults recorded.
    pub faults: AtomicU64,
}

/// The counters.
pub static COUNTERS: Counters = Counters {
    maps: AtomicU64::new(0),
    unmaps: AtomicU64::new(0),
    invalidations: AtomicU64::new(0),
    faults: AtomicU64::new(0),
};

/// A domain's I/O address space.
struct Space {
    /// Its id in the unit's context entries (domain index + 1).
    did: u16,
    tables: PageTable,
    /// Its RAM (physical start, length): what it may have mapped.
    ram: (u64, u64),
    /// Strict mode: mapped page → mappings using it.
    pages: BTreeMap<u64, u32>,
}

struct Iommu {
    unit: Unit,
    /// What ACPI says of it (the devices it translates for).
    described: crate::acpi::RemappingUnit,
    spaces: BTreeMap<usize, Space>,
    /// Attached functions: source id → domain.
    devices: BTreeMap<u16, usize>,
}

static IOMMU: IrqMutex<Option<Iommu>> = IrqMutex::new(None);
/// Faults read from the unit, not yet turned into failures: (domain, record).
static PENDING: IrqMutex<Vec<(Option<usize>, vtd::FaultRecord)>> = IrqMutex::new(Vec::new());

const PAGE: u64 = crate::memory::PAGE_SIZE;

/// Finds the remapping unit and turns translation on, unless `iommu=off`;
/// says what it did.
pub fn init(cmdline: &str, rsdp: u64) {
    let wanted = match crate::cmdline::get(cmdline, "iommu") {
        Some("off") => Mode::Off,
        Some("strict") => Mode::Strict,
        Some("on") | None => Mode::On,
        Some(other) => {
            crate::warn!("iommu={other}: not off, on or strict; using on");
            Mode::On
        }
    };
    if wanted == Mode::Off {
        crate::info!("off (device DMA is not confined)");
        return;
    }
    let units = match crate::acpi::remapping_units(rsdp) {
        Ok(u) => u,
        Err(e) => {
            crate::warn!("none ({e}); device DMA is not confined");
            return;
        }
    };
    let Some(first) = units.into_iter().find(|u| u.segment == 0) else {
        crate::warn!("no remapping unit for PCI segment 0; device DMA is not confined");
        return;
    };
    let regs = match crate::memory::paging::ioremap(first.registers, PAGE) {
        Ok(v) => v,
        Err(e) => {
            crate::warn!("mapping its registers: {e}");
            return;
        }
    };
    // SAFETY: the unit's register page, just mapped uncached for the kernel.
    let unit = unsafe { Unit::new(regs) }.and_then(|mut u| u.enable().map(|()| u));
    match unit {
        Ok(unit) => {
            let (cap, ecap) = unit.capabilities();
            crate::info!(
                "VT-d at {:#x} (cap {cap:#x} ecap {ecap:#x}, {}), mode {}: each device reaches only its domain's memory",
                first.registers,
                if first.include_all {
                    alloc::string::String::from("all devices")
                } else {
                    alloc::format!("{} device scopes", first.scopes.len())
                },
                wanted.name()
            );
            *IOMMU.lock() = Some(Iommu {
                unit,
                described: first,
                spaces: BTreeMap::new(),
                devices: BTreeMap::new(),
            });
            MODE.store(wanted as u8, Ordering::Relaxed);
        }
        Err(e) => crate::warn!(
            "VT-d at {:#x}: {e}; device DMA is not confined",
            first.registers
        ),
    }
}

/// A function's source id.
fn source(bus: u8, devfn: u8) -> u16 {
    (u16::from(bus) << 8) | u16::from(devfn)
}

fn invalidated(r: Result<(), vtd::VtdError>) {
    COUNTERS.invalidations.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = r {
        crate::error!("{e}");
    }
}

impl Iommu {
    /// Domain `id`'s space, built on first use (mapping its RAM in `on`).
    fn space(&mut self, id: usize) -> Result<&mut Space, vtd::VtdError> {
        if !self.spaces.contains_key(&id) {
            let ram = crate::domain::ram(id).ok_or(vtd::VtdError::OutOfMemory)?;
            let mut tables = PageTable::new(self.unit.coherent())?;
            if mode() == Mode::On {
                for p in (0..ram.1).step_by(PAGE as usize) {
                    tables.map(ram.0 + p, ram.0 + p)?;
                }
            }
            self.spaces.insert(
                id,
                Space {
                    did: id as u16 + 1,
                    tables,
                    ram,
                    pages: BTreeMap::new(),
                },
            );
        }
        Ok(self.spaces.get_mut(&id).expect("inserted"))
    }
}

/// Attaches PCI function `bus:devfn` to domain `id`'s tables: from now on
/// its DMA reaches that domain's memory only.
pub fn attach(bus: u8, devfn: u8, id: usize) {
    let mut guard = IOMMU.lock();
    let Some(m) = guard.as_mut() else { return };
    let sid = source(bus, devfn);
    if !m.described.serves(bus, devfn >> 3, devfn & 7) {
        crate::error!(
            "{bus:02x}:{:02x}.{} is outside the remapping unit's scope: its DMA is not confined",
            devfn >> 3,
            devfn & 7
        );
        return;
    }
    let r = m
        .space(id)
        .map(|s| (s.tables.root(), s.did))
        .and_then(|tables| m.unit.set_context(sid, Some(tables)));
    match r {
        Ok(()) => {
            m.devices.insert(sid, id);
            invalidated(m.unit.invalidate_contexts());
        }
        Err(e) => crate::error!("attaching {bus:02x}:{devfn:02x} to domain {id}: {e}"),
    }
}

/// Detaches PCI function `bus:devfn` (its driver let it go): no DMA.
pub fn detach(bus: u8, devfn: u8) {
    let mut guard = IOMMU.lock();
    let Some(m) = guard.as_mut() else { return };
    let sid = source(bus, devfn);
    if m.devices.remove(&sid).is_some() {
        if let Err(e) = m.unit.set_context(sid, None) {
            crate::error!("detaching {sid:#x}: {e}");
        }
        invalidated(m.unit.invalidate_contexts());
        invalidated(m.unit.invalidate_all());
    }
}

/// Detaches every device of domain `id` (it failed, or is gone) and drops
/// its tables: its devices have no DMA until a fresh instance binds them.
pub fn detach_domain(id: usize) {
    let mut guard = IOMMU.lock();
    let Some(m) = guard.as_mut() else { return };
    let mine: Vec<u16> = m
        .devices
        .iter()
        .filter(|&(_, &d)| d == id)
        .map(|(&s, _)| s)
        .collect();
    for sid in &mine {
        if let Err(e) = m.unit.set_context(*sid, None) {
            crate::error!("detaching {sid:#x}: {e}");
        }
        m.devices.remove(sid);
    }
    if !mine.is_empty() {
        invalidated(m.unit.invalidate_contexts());
    }
    if let Some(space) = m.spaces.remove(&id) {
        invalidated(m.unit.invalidate_domain(space.did));
        space.tables.free();
    }
}

/// The bus address through which domain `id`'s devices reach the buffer at
/// physical [phys, phys + len); in `strict` its pages are mapped now. None:
/// not the domain's RAM (with the IOMMU on, the device could not reach it).
pub fn map(id: usize, phys: u64, len: u64) -> Option<u64> {
    let mode = mode();
    if mode == Mode::Off {
        return Some(phys);
    }
    let mut guard = IOMMU.lock();
    let m = guard.as_mut()?;
    let s = m.space(id).ok()?;
    let end = phys.checked_add(len.max(1))?;
    if phys < s.ram.0 || end > s.ram.0 + s.ram.1 {
        return None;
    }
    if mode == Mode::Strict {
        let mut page = phys & !(PAGE - 1);
        while page < end {
            let refs = s.pages.entry(page).or_insert(0);
            if *refs == 0 {
                // Not present before: nothing cached to invalidate.
                s.tables.map(page, page).ok()?;
                COUNTERS.maps.fetch_add(1, Ordering::Relaxed);
            }
            *refs += 1;
            page += PAGE;
        }
    }
    Some(phys)
}

/// Ends a mapping [`map`] gave domain `id` (strict: unmaps the pages no
/// other mapping uses and invalidates them). False: no such mapping.
pub fn unmap(id: usize, bus: u64, len: u64) -> bool {
    if mode() != Mode::Strict {
        return true;
    }
    let mut guard = IOMMU.lock();
    let Some(m) = guard.as_mut() else { return true };
    let Some(s) = m.spaces.get_mut(&id) else {
        return false;
    };
    let Some(end) = bus.checked_add(len.max(1)) else {
        return false;
    };
    let first = bus & !(PAGE - 1);
    if (first..end)
        .step_by(PAGE as usize)
        .any(|p| !s.pages.contains_key(&p))
    {
        return false;
    }
    let did = s.did;
    let mut gone = Vec::new();
    for page in (first..end).step_by(PAGE as usize) {
        let refs = s.pages.get_mut(&page).expect("checked");
        *refs -= 1;
        if *refs == 0 {
            s.pages.remove(&page);
            s.tables.unmap(page);
            gone.push(page);
        }
    }
    for page in gone {
        COUNTERS.unmaps.fetch_add(1, Ordering::Relaxed);
        invalidated(m.unit.invalidate_page(did, page));
    }
    true
}

/// Reads the unit's fault records; outside any domain's code, fails the
/// domain of each faulting device (from inside one — an interrupted driver
/// — the failures wait for the next tick in kernel context).
pub fn poll() {
    if mode() == Mode::Off {
        return;
    }
    {
        let guard = IOMMU.lock();
        let Some(m) = guard.as_ref() else { return };
        let records = m.unit.take_faults();
        if !records.is_empty() {
            let mut pending = PENDING.lock();
            for r in records {
                COUNTERS.faults.fetch_add(1, Ordering::Relaxed);
                pending.push((m.devices.get(&r.source).copied(), r));
            }
        }
    }
    if crate::domain::current().is_some() {
        return;
    }
    let faults = core::mem::take(&mut *PENDING.lock());
    for (domain, r) in faults {
        let what = if r.read { "read" } else { "write" };
        let (bus, dev, func) = (r.source >> 8, (r.source >> 3) & 31, r.source & 7);
        match domain {
            // No isolation: a native kernel's IOMMU driver logs the fault
            // (the device's access was refused all the same) and goes on.
            Some(id) if crate::domain::mechanism_of(id) == crate::domain::Mechanism::None => {
                crate::warn!(
                    "{bus:02x}:{dev:02x}.{func} (domain {id}, no isolation) {what} of {:#x} refused (reason {:#x})",
                    r.address,
                    r.reason
                );
            }
            Some(id) if !crate::domain::failed(id) => {
                crate::warn!(
                    "{bus:02x}:{dev:02x}.{func} (domain {id}) {what} of {:#x} refused (reason {:#x})",
                    r.address,
                    r.reason
                );
                crate::domain::fail_for(
                    id,
                    alloc::format!("DMA outside the domain (device {what})"),
                    r.address,
                    0,
                );
            }
            Some(_) => {}
            None => crate::warn!(
                "{bus:02x}:{dev:02x}.{func} (no domain) {what} of {:#x} refused (reason {:#x})",
                r.address,
                r.reason
            ),
        }
    }
}
