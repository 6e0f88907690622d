//! Loading driver objects: parse with `nooks-loader`, check every import
//! against the policy's exports (reporting all offenders at once), place text,
//! rodata and data in their own pages with their own permissions in the top
//! 2 GiB (the drivers' `-mcmodel=kernel` needs it), relocate, and call
//! `init_module` under a catch frame, so a bad object is an error message and
//! the kernel stays up.

use crate::memory::{MODULE_AREA, PAGE_SIZE, frames, paging, phys_to_virt};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use nooks_loader::{Area, Layout, Object, Placement, Target};

/// Why a driver did not load.
#[derive(Debug, Clone)]
pub enum DriverError {
    /// The object is malformed or cannot be relocated.
    Load(nooks_loader::LoadError),
    /// It imports functions the kernel does not export.
    NotExported(Vec<String>),
    /// It has no `init_module`.
    NoInit,
    /// Out of memory or address space.
    NoMemory,
    /// `init_module` returned an error.
    InitFailed(i32),
    /// `init_module` faulted.
    InitFaulted(crate::fault::Fault),
}

impl core::fmt::Display for DriverError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DriverError::Load(e) => write!(f, "{e}"),
            DriverError::NotExported(names) => {
                write!(
                    f,
                    "imports functions the kernel does not export: {}",
                    names.join(", ")
                )
            }
            DriverError::NoInit => write!(f, "no init_module symbol"),
            DriverError::NoMemory => write!(f, "out of memory for the image"),
            DriverError::InitFailed(r) => write!(f, "init_module returned {r}"),
            DriverError::InitFaulted(fault) => write!(f, "init_module faulted: {fault}"),
        }
    }
}

/// A loaded driver.
pub struct Driver {
    /// The archive member it came from.
    pub name: String,
    /// Its symbols at their run-time addresses.
    pub image: nooks_loader::Image,
    /// Its text range, for fault reports.
    pub text: (u64, u64),
}

static NEXT_VA: AtomicU64 = AtomicU64::new(MODULE_AREA.0);

/// A rewritten object's emulated stack pointer (`__nooks_esp`) and the
/// separate emulated stack its code gets in interrupt context: an interrupt can
/// arrive while the driver runs on its own emulated stack, below the pointer
/// the object publishes, so handlers must not start from that pointer.
#[derive(Clone, Copy)]
struct EmulatedStack {
    text: (u64, u64),
    esp: u64,
    irq_top: u64,
}

static EMULATED: crate::sync::IrqMutex<Vec<EmulatedStack>> = crate::sync::IrqMutex::new(Vec::new());

const IRQ_ESTACK: u64 = 64 * 1024;

/// Runs `f` (driver code at `entry`, called from interrupt context) with the
/// owning object's emulated stack pointer moved to its interrupt stack.
pub fn in_irq_context<R>(entry: u64, f: impl FnOnce() -> R) -> R {
    let found = EMULATED
        .lock()
        .iter()
        .find(|e| entry >= e.text.0 && entry < e.text.1)
        .copied();
    let Some(e) = found else { return f() };
    // SAFETY: `esp` is the object's own __nooks_esp, a u64 in its data area.
    let saved = unsafe { core::ptr::read_volatile(e.esp as *const u64) };
    // SAFETY: as above; interrupts are off in interrupt context, so no nesting.
    unsafe { core::ptr::write_volatile(e.esp as *mut u64, e.irq_top) };
    let r = f();
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(e.esp as *mut u64, saved) };
    r
}

/// Maps `size` bytes of fresh contiguous frames at the next module-area
/// address with `flags`; returns (run-time address, writable view).
fn area(size: u64, flags: u64) -> Result<(u64, &'static mut [u8]), DriverError> {
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    let phys = frames::alloc_contiguous(pages, PAGE_SIZE).ok_or(DriverError::NoMemory)?;
    let va = NEXT_VA.fetch_add((pages + 1) * PAGE_SIZE, Ordering::SeqCst); // + guard page
    if va + pages * PAGE_SIZE > MODULE_AREA.1 {
        return Err(DriverError::NoMemory);
    }
    for p in 0..pages {
        paging::kernel_map(va + p * PAGE_SIZE, phys + p * PAGE_SIZE, flags)
            .map_err(|_| DriverError::NoMemory)?;
    }
    // SAFETY: the frames are ours alone; the direct map reaches them.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(phys_to_virt(phys) as *mut u8, (pages * PAGE_SIZE) as usize)
    };
    Ok((va, bytes))
}

/// Loads `bytes` (archive member `name`) and runs its `init_module`.
pub fn load(name: &str, bytes: &[u8]) -> Result<Driver, DriverError> {
    let object = Object::parse(bytes).map_err(DriverError::Load)?;
    let missing: Vec<String> = object
        .imports()
        .into_iter()
        .filter(|n| !nooks_policy::is_exported(n))
        .map(String::from)
        .collect();
    if !missing.is_empty() {
        return Err(DriverError::NotExported(missing));
    }
    let layout = Layout::of(&object);
    let (ta, tb) = area(layout.area(Area::Text).size, paging::flags::CODE)?;
    let (ra, rb) = area(layout.area(Area::Rodata).size, paging::flags::RODATA)?;
    let (da, db) = area(layout.area(Area::Data).size, paging::flags::DATA)?;
    let mut placement = Placement {
        text: Target {
            bytes: tb,
            addr: ta,
        },
        rodata: Target {
            bytes: rb,
            addr: ra,
        },
        data: Target {
            bytes: db,
            addr: da,
        },
    };
    let image = nooks_loader::load(
        &object,
        &layout,
        &mut placement,
        &crate::driver_api::resolve,
    )
    .map_err(DriverError::Load)?;
    let init = image.symbol("init_module").ok_or(DriverError::NoInit)?;
    let text = (ta, ta + layout.area(Area::Text).size);
    if let Some(esp) = image
        .symbols
        .iter()
        .find(|s| s.name == "__nooks_esp")
        .map(|s| s.addr)
    {
        let pages = IRQ_ESTACK / PAGE_SIZE;
        let phys = frames::alloc_contiguous(pages, PAGE_SIZE).ok_or(DriverError::NoMemory)?;
        let irq_top = phys_to_virt(phys) + IRQ_ESTACK;
        EMULATED.lock().push(EmulatedStack { text, esp, irq_top });
        crate::info!(
            "{name}: rewritten object: emulated stack pointer at {esp:#x}, interrupt emulated stack {IRQ_ESTACK} bytes"
        );
    }
    let driver = Driver {
        name: String::from(name),
        image,
        text: (ta, ta + layout.area(Area::Text).size),
    };
    crate::info!(
        "{name}: text at {ta:#x}, rodata at {ra:#x}, data at {da:#x}; calling init_module"
    );
    // SAFETY: init_module is the driver's `int init_module(void)`, relocated above.
    let init: extern "C" fn() -> i32 = unsafe { core::mem::transmute(init) };
    match crate::fault::catch(|| init()) {
        Ok(0) => Ok(driver),
        Ok(r) => Err(DriverError::InitFailed(r)),
        Err(f) => Err(DriverError::InitFaulted(f)),
    }
}

/// Loads every `.o` member of the boot archive, reporting each as a JSON record.
pub fn load_all(members: &[nooks_loader::archive::Member<'static>]) -> Vec<Driver> {
    let mut loaded = Vec::new();
    for m in members.iter().filter(|m| m.name.ends_with(".o")) {
        match load(m.name, m.data) {
            Ok(d) => {
                crate::println!(
                    "{{\"nooks\":\"load\",\"module\":\"{}\",\"ok\":true}}",
                    m.name
                );
                loaded.push(d);
            }
            Err(e) => {
                let msg = alloc::format!("{e}").replace('"', "'");
                crate::error!("{}: not loaded: {}", m.name, msg);
                crate::println!(
                    "{{\"nooks\":\"load\",\"module\":\"{}\",\"ok\":false,\"error\":\"{}\"}}",
                    m.name,
                    msg
                );
                crate::info!("kernel still up after refusing {}", m.name);
            }
        }
    }
    loaded
}
