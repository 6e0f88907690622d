//! Loading driver objects: parse with `nooks-loader`, check every import
//! against the policy's exports (reporting all offenders at once), place text,
//! rodata and data in their own pages with their own permissions in the top
//! 2 GiB (the drivers' `-mcmodel=kernel` needs it), relocate, and call
//! `init_module` under a catch frame, so a bad object is an error message and
//! the kernel stays up.

use crate::domain::{self, Mechanism};
use crate::memory::{PAGE_SIZE, frames, paging, phys_to_virt};
use alloc::string::String;
use alloc::vec::Vec;
use nooks_loader::{Area, Layout, Object, Placement, Target};

/// Why a driver did not load.
#[derive(Debug, Clone)]
pub enum DriverError {
    /// The object is malformed or cannot be relocated.
    Load(nooks_loader::LoadError),
    /// It imports functions the kernel does not export.
    NotExported(Vec<String>),
    /// It imports functions its policy does not allow.
    Forbidden(Vec<String>),
    /// It has no `init_module`.
    NoInit,
    /// Out of memory or address space.
    NoMemory,
    /// `init_module` returned an error.
    InitFailed(i32),
    /// `init_module` faulted (contained; the domain reported the fault).
    InitFaulted,
    /// The `.nooks` metadata does not match what this kernel runs.
    Metadata(String),
    /// The protection domain could not be set up.
    Domain(String),
    /// An `sfi` object the load-time verifier refused.
    Unverified(nooks_verifier::Rejection),
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
            DriverError::Forbidden(names) => write!(
                f,
                "imports functions its policy does not allow: {}",
                names.join(", ")
            ),
            DriverError::NoInit => write!(f, "no init_module symbol"),
            DriverError::NoMemory => write!(f, "out of memory for the image"),
            DriverError::InitFailed(r) => write!(f, "init_module returned {r}"),
            DriverError::InitFaulted => write!(f, "init_module faulted; the domain was contained"),
            DriverError::Metadata(m) => write!(f, "bad .nooks metadata: {m}"),
            DriverError::Domain(m) => write!(f, "protection domain: {m}"),
            DriverError::Unverified(r) => write!(f, "{r}"),
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
    /// Its protection domain.
    pub domain: usize,
    /// How the domain is enforced.
    pub mechanism: Mechanism,
}

/// Maps `size` bytes of fresh contiguous frames at `va` with `flags`;
/// returns (run-time address, writable view through the direct map).
fn area(va: u64, size: u64, flags: u64) -> Result<(u64, &'static mut [u8]), DriverError> {
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    let phys = frames::alloc_contiguous(pages, PAGE_SIZE).ok_or(DriverError::NoMemory)?;
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

/// Where every loaded instance came from: what recovery reloads.
#[derive(Clone, Copy)]
pub struct Origin {
    /// The domain it runs in.
    pub domain: usize,
    /// The archive member.
    pub name: &'static str,
    /// The object to load again on recovery: the archive member itself, or
    /// its `<name>.clean` sibling when there is one (a fault-injection run
    /// loads an injected object and recovers with the clean one, as Nooks'
    /// experiments injected faults into the running driver and reloaded it
    /// from disk).
    pub bytes: &'static [u8],
    /// Its `init_module` returned: it was running when it failed.
    pub running: bool,
    /// What recovery would reload differs from what failed.
    pub clean: bool,
}

static ORIGINS: crate::sync::IrqMutex<Vec<Origin>> = crate::sync::IrqMutex::new(Vec::new());

/// How many instances of archive member `name` were ever loaded.
pub fn instances_of(name: &str) -> usize {
    ORIGINS.lock().iter().filter(|o| o.name == name).count()
}

/// Where domain `id`'s object came from.
pub fn origin(id: usize) -> Option<Origin> {
    ORIGINS.lock().iter().find(|o| o.domain == id).copied()
}

/// Loads `bytes` (archive member `name`) into a fresh protection domain and
/// runs its `init_module`.
pub fn load(
    name: &'static str,
    bytes: &'static [u8],
    reload: &'static [u8],
    instance: usize,
) -> Result<Driver, DriverError> {
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
    let Metadata {
        mechanism,
        ports,
        imports,
        entries,
    } = metadata(&object)?;
    if let Some(allowed) = imports {
        let refused: Vec<String> = object
            .imports()
            .into_iter()
            .filter(|n| !allowed.iter().any(|a| a == n) && !n.starts_with("__nooks"))
            .map(String::from)
            .collect();
        if !refused.is_empty() {
            return Err(DriverError::Forbidden(refused));
        }
    }
    // An object that runs under `sfi` is proved safe first: nothing nooks-cc
    // claimed (its `.nooks` line included) is taken on trust.
    if mechanism == Mechanism::Sfi {
        let t0 = crate::arch::rdtsc();
        let verified = nooks_verifier::verify(&object);
        let cycles = crate::arch::rdtsc().wrapping_sub(t0);
        match &verified {
            Ok(r) => crate::println!(
                "{{\"nooks\":\"verify\",\"module\":\"{name}\",\"ok\":true,\"functions\":{},\"instructions\":{},\"bytes\":{},\"cycles\":{cycles}}}",
                r.functions,
                r.instructions,
                r.bytes
            ),
            Err(e) => crate::println!(
                "{{\"nooks\":\"verify\",\"module\":\"{name}\",\"ok\":false,\"cycles\":{cycles},\"error\":\"{}\"}}",
                alloc::format!("{e}").replace('"', "'")
            ),
        }
        verified.map_err(DriverError::Unverified)?;
    }
    let layout = Layout::of(&object);
    let (tsize, rsize, dsize, ssize) = (
        layout.area(Area::Text).size,
        layout.area(Area::Rodata).size,
        layout.area(Area::Data).size,
        layout.area(Area::Runtime).size,
    );
    if tsize > domain::RODATA_OFFSET
        || rsize > domain::RUNTIME_OFFSET - domain::RODATA_OFFSET
        || ssize > domain::STATE_MAX
        || dsize > domain::RAM / 2
    {
        return Err(DriverError::NoMemory);
    }
    let window = domain::create(&alloc::format!("{name}#{instance}"), mechanism)
        .ok_or(DriverError::NoMemory)?;
    let (ta, tb) = area(window.base, tsize, paging::flags::CODE)?;
    let (ra, rb) = area(
        window.base + domain::RODATA_OFFSET,
        rsize,
        paging::flags::RODATA,
    )?;
    // The runtime state is writable, outside the window's writable part.
    let (sa, sb) = if ssize > 0 {
        area(
            window.base + domain::RUNTIME_OFFSET,
            ssize,
            paging::flags::DATA,
        )?
    } else {
        (window.base + domain::RUNTIME_OFFSET, &mut [][..])
    };
    let da = window.base + domain::WRITABLE_OFFSET;
    let db = domain::ram_view(&window, 0, dsize.max(1)).ok_or(DriverError::NoMemory)?;
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
        runtime: Target {
            bytes: sb,
            addr: sa,
        },
    };
    // Under SFI, the checks' bound is this copy's own: minus the writable
    // part's lowest address, which `domain::finish` also gives the slow path.
    let window_symbol = (mechanism == Mechanism::Sfi).then_some(da.wrapping_neg());
    let resolve = |name: &str| match window_symbol {
        Some(v) if name == nooks_policy::abi::WINDOW_SYMBOL => Some(v),
        _ => crate::driver_api::resolve_for(name, mechanism),
    };
    let image = nooks_loader::load(&object, &layout, &mut placement, &resolve)
        .map_err(DriverError::Load)?;
    // The checks must test this domain's window, not the object's default.
    if let Some(want) = window_symbol
        && image
            .symbol(nooks_policy::abi::WINDOW_SYMBOL)
            .is_some_and(|v| v != want)
    {
        return Err(DriverError::Metadata(String::from(
            "the window symbol did not take this domain's value",
        )));
    }
    let init = image.symbol("init_module").ok_or(DriverError::NoInit)?;
    let text = (ta, ta + tsize);
    let sfi_state = image.symbol("__nooks_sfi");
    if mechanism == Mechanism::Sfi
        && sfi_state
            .is_none_or(|s| s < sa || s + nooks_policy::abi::state::SIZE as u64 > sa + ssize)
    {
        return Err(DriverError::Metadata(String::from(
            "isolation sfi, but no __nooks_sfi state in the object's .nooks.state section",
        )));
    }
    let symbols = image
        .symbols
        .iter()
        .filter(|s| s.is_function)
        .map(|s| (s.addr, s.size, s.name.clone()))
        .collect();
    let esp = image
        .symbols
        .iter()
        .find(|s| s.name == "__nooks_esp")
        .map(|s| s.addr);
    domain::finish(
        window.id,
        domain::Loaded {
            text,
            data_end: da + dsize,
            symbols,
            sfi_state,
            esp,
            ports,
            entries,
        },
    )
    .map_err(|e| DriverError::Domain(alloc::format!("{e}")))?;
    let init = domain::entry::of(window.id, init).ok_or(DriverError::NoInit)?;
    // Where each section went, for a debugger (`nooks-bench boot --gdb`
    // turns this record into gdb's add-symbol-file).
    let area_base = |a: nooks_loader::Area| match a {
        nooks_loader::Area::Text => ta,
        nooks_loader::Area::Rodata => ra,
        nooks_loader::Area::Data => da,
        nooks_loader::Area::Runtime => sa,
    };
    let sections: Vec<String> = object
        .sections
        .iter()
        .enumerate()
        .filter_map(|(i, sec)| {
            let (area, offset) = layout.section(i)?;
            (sec.size > 0)
                .then(|| alloc::format!("\"{}\":\"{:#x}\"", sec.name, area_base(area) + offset))
        })
        .collect();
    crate::println!(
        "{{\"nooks\":\"sections\",\"module\":\"{name}\",\"domain\":{},\"sections\":{{{}}}}}",
        window.id,
        sections.join(",")
    );
    crate::info!(
        "{name}: domain {} ({}), window {:#x}: text {ta:#x}, rodata {ra:#x}, data {da:#x}; calling init_module",
        window.id,
        mechanism.name(),
        window.base
    );
    let driver = Driver {
        name: String::from(name),
        image,
        text,
        domain: window.id,
        mechanism,
    };
    ORIGINS.lock().push(Origin {
        domain: window.id,
        name,
        bytes: reload,
        running: false,
        clean: !core::ptr::eq(bytes, reload),
    });
    // init_module is the driver's `int init_module(void)`, relocated above.
    // A fault in a nested call (a probe) fails the domain but not the call.
    match domain::call(init, &[]).map(|r| r as i32) {
        Ok(_) if domain::failed(window.id) => Err(DriverError::InitFaulted),
        Ok(0) => {
            if let Some(o) = ORIGINS.lock().iter_mut().find(|o| o.domain == window.id) {
                o.running = true;
            }
            Ok(driver)
        }
        Ok(r) => Err(DriverError::InitFailed(r)),
        Err(_) => Err(DriverError::InitFaulted),
    }
}

/// What an object's `.nooks` metadata (or its absence) says.
struct Metadata {
    mechanism: Mechanism,
    /// I/O port ranges its policy allows.
    ports: Vec<(u16, u16)>,
    /// The imports its policy allows (None: every export).
    imports: Option<Vec<String>>,
    /// The entry points its policy declares (None: any of its functions).
    entries: Option<Vec<String>>,
}

/// A `policy-imports`/`policy-entries` list: `*` is everything.
fn list(words: &str) -> Option<Vec<String>> {
    (words.trim() != "*").then(|| words.split_whitespace().map(String::from).collect())
}

/// The mechanism an object runs under, and its policy. Its `.nooks` metadata
/// decides first: an object nooks-cc sandboxed runs under `sfi` (and must
/// match this kernel's ABI). An original object (no metadata) runs under
/// `mmu`, or under what the `isolation=` boot option forces (`none` for the
/// baseline), as does an object nooks-cc rewrote with `--isolation none`.
fn metadata(object: &Object<'_>) -> Result<Metadata, DriverError> {
    let forced = match crate::cmdline::get(crate::cmdline(), "isolation") {
        None => None,
        Some(name) => Some(Mechanism::parse(name).ok_or_else(|| {
            DriverError::Metadata(alloc::format!(
                "unknown isolation={name} (none, mmu, pks or sfi)"
            ))
        })?),
    };
    let mut m = Metadata {
        mechanism: Mechanism::Mmu,
        ports: Vec::new(),
        imports: None,
        entries: None,
    };
    let Some(section) = object.sections.iter().find(|s| s.name == ".nooks") else {
        m.mechanism = match forced {
            Some(Mechanism::Sfi) => {
                return Err(DriverError::Metadata(String::from(
                    "isolation=sfi needs an object rewritten by nooks-cc --isolation sfi; this one is original",
                )));
            }
            Some(f) => f,
            None => Mechanism::Mmu,
        };
        return Ok(m);
    };
    let text = core::str::from_utf8(section.data)
        .map_err(|_| DriverError::Metadata(String::from(".nooks is not text")))?;
    let mut lines = text.lines();
    if !lines.next().is_some_and(|l| l.starts_with("nooks-cc ")) {
        return Err(DriverError::Metadata(String::from(
            ".nooks does not name nooks-cc",
        )));
    }
    let mut mechanism = None;
    let mut abi_ok = false;
    for line in lines {
        match line.split_once(' ') {
            Some(("ports", ranges)) => {
                for r in ranges.split_whitespace() {
                    m.ports.push(parse_ports(r).ok_or_else(|| {
                        DriverError::Metadata(alloc::format!("bad port range {r}"))
                    })?);
                }
            }
            Some(("policy-imports", names)) => m.imports = list(names),
            Some(("policy-entries", names)) => m.entries = list(names),
            Some(("isolation", "sfi")) => mechanism = Some(Mechanism::Sfi),
            Some(("isolation", "none")) => mechanism = Some(Mechanism::None),
            Some(("isolation", other)) => {
                return Err(DriverError::Metadata(alloc::format!(
                    "unknown isolation {other}"
                )));
            }
            Some(("abi", _)) => abi_ok = line == nooks_policy::abi::LINE,
            _ => {}
        }
    }
    if !abi_ok {
        return Err(DriverError::Metadata(alloc::format!(
            "ABI differs from this kernel's `{}`",
            nooks_policy::abi::LINE
        )));
    }
    m.mechanism = match mechanism {
        None => {
            return Err(DriverError::Metadata(String::from(
                ".nooks names no isolation",
            )));
        }
        Some(Mechanism::Sfi) => Mechanism::Sfi,
        Some(_) => match forced {
            Some(m @ (Mechanism::Mmu | Mechanism::Pks)) => m,
            _ => Mechanism::None,
        },
    };
    Ok(m)
}

/// `0x80-0x8f` (or one port, `0x80`).
fn parse_ports(r: &str) -> Option<(u16, u16)> {
    let num = |s: &str| u16::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    match r.split_once('-') {
        Some((lo, hi)) => Some((num(lo)?, num(hi)?)),
        None => num(r).map(|p| (p, p)),
    }
}

/// Loads every `.o` member of the boot archive, one instance (one domain) per
/// device it drives, reporting each object as a JSON record.
pub fn load_all(members: &[nooks_loader::archive::Member<'static>]) -> Vec<Driver> {
    let mut loaded = Vec::new();
    for m in members.iter().filter(|m| m.name.ends_with(".o")) {
        let clean_name = alloc::format!("{}.clean", m.name);
        let reload = members
            .iter()
            .find(|c| c.name == clean_name)
            .map_or(m.data, |c| c.data);
        let mut instances = Vec::new();
        let mut error = None;
        let mut bytes = m.data;
        for instance in 0..8 {
            match load(m.name, bytes, reload, instance) {
                // An injected fault fired in init: recovery brings this
                // instance back from the clean copy now — before the next
                // instance can take its device or its name — and the next
                // instances are fresh copies too.
                Err(DriverError::InitFaulted) if !core::ptr::eq(bytes, reload) => {
                    crate::recovery::poll();
                    bytes = reload;
                }
                Ok(d) => {
                    let bound = crate::driver_api::pci::bound_by(d.domain);
                    instances.push(d);
                    if bound == 0 {
                        break;
                    }
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        match (instances.first(), error) {
            (Some(first), None) | (Some(first), Some(_)) => {
                crate::println!(
                    "{{\"nooks\":\"load\",\"module\":\"{}\",\"ok\":true,\"mechanism\":\"{}\",\"domains\":{}}}",
                    m.name,
                    first.mechanism.name(),
                    instances.len()
                );
            }
            (None, Some(e)) => {
                let msg = alloc::format!("{e}").replace('"', "'");
                crate::error!("{}: not loaded: {}", m.name, msg);
                crate::println!(
                    "{{\"nooks\":\"load\",\"module\":\"{}\",\"ok\":false,\"error\":\"{}\"}}",
                    m.name,
                    msg
                );
                crate::info!("kernel still up after refusing {}", m.name);
            }
            (None, None) => {}
        }
        loaded.extend(instances);
    }
    loaded
}
