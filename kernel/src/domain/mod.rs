//! Protection domains: every loaded driver object runs in one.
//!
//! A domain is an aligned virtual window in the top 2 GiB holding the driver's
//! code, read-only data, and one contiguous writable part: its data and bss
//! (emulated stack included), a heap for everything the kernel allocates on
//! its behalf (`kmalloc`, net devices, skbs, coherent DMA memory — one
//! physically contiguous run, so any of it can be a DMA buffer), and its
//! devices' MMIO mappings. Because the writable part is contiguous, the SFI
//! fast path is one compare.
//!
//! Every call from the kernel into a driver goes through [`enter`]: it sets
//! the current domain (so allocations land in its window), runs the driver
//! under a catch frame, and turns a fault into a contained domain failure:
//! the domain is marked failed, its interrupts and its devices' DMA are
//! stopped, and the kernel carries on.
//!
//! Mechanisms, chosen per domain at load time behind the same wrappers
//! ([`call`] in, the export table out):
//! - `sfi` confines an object rewritten by nooks-cc by setting its
//!   `__nooks_sfi` window; the rewritten code checks its own stores, calls and
//!   invariants;
//! - `mmu` runs an original object on page tables of its own ([`mmu`]), its
//!   calls into the kernel through gates ([`gate`]); the real RFLAGS.IF and the
//!   lock count are checked when it returns;
//! - `none` runs an object in the same layout with no enforcement (the baseline).

pub mod gate;
pub mod mmu;

use crate::fault::{self, Fault};
use crate::memory::{DOMAIN_AREA, PAGE_SIZE, frames, paging, phys_to_virt};
use crate::sync::IrqMutex;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use linked_list_allocator::Heap;
use nooks_policy::abi::state as sfi;

/// Offset of the read-only data in the window (the text comes first).
pub const RODATA_OFFSET: u64 = 2 << 20;
/// Size of a domain's virtual window.
pub const WINDOW: u64 = 32 << 20;
/// Offset of a sandboxed object's runtime state (`.nooks.state`: its
/// `__nooks_sfi`) in the window: writable, but below the writable part, so
/// no store the object's checks allow can change its own bounds.
pub const RUNTIME_OFFSET: u64 = 3 << 20;
/// Offset of the writable part in the window.
pub const WRITABLE_OFFSET: u64 = 4 << 20;
/// RAM in the writable part: data + heap + DMA.
pub const RAM: u64 = 8 << 20;
/// Virtual space for MMIO mappings after the RAM: the rest of the writable
/// part, which is exactly the span the rewritten code's inline check assumes.
pub const MMIO: u64 = sfi::SPAN - RAM;
const _: () = assert!(WRITABLE_OFFSET + sfi::SPAN <= WINDOW && RAM < sfi::SPAN);

/// How a domain is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// No enforcement: the baseline.
    None,
    /// Software fault isolation: the object was rewritten by nooks-cc.
    Sfi,
    /// Hardware page tables per domain.
    Mmu,
}

impl Mechanism {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::None => "none",
            Mechanism::Sfi => "sfi",
            Mechanism::Mmu => "mmu",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Mechanism::None),
            "sfi" => Some(Mechanism::Sfi),
            "mmu" => Some(Mechanism::Mmu),
            _ => None,
        }
    }
}

/// A protection domain.
pub struct Domain {
    /// Index (and window number).
    pub id: usize,
    /// The object it runs.
    pub name: String,
    /// Enforcement.
    pub mechanism: Mechanism,
    /// Window base.
    pub base: u64,
    /// Code range.
    pub text: (u64, u64),
    /// Writable range [lo, hi).
    pub writable: (u64, u64),
    /// The driver's symbols, for fault reports.
    pub symbols: Vec<(u64, u64, String)>,
    /// `__nooks_sfi` of an SFI object.
    pub sfi_state: Option<u64>,
    /// Failed and stopped.
    pub failed: bool,
    /// Locks it holds (the kernel's count, kept for every mechanism).
    pub locks: i64,
    /// Its address space and stacks, under `mmu`.
    space: Option<mmu::Space>,
    heap: Heap,
    mmio_next: u64,
}

static DOMAINS: IrqMutex<Vec<Domain>> = IrqMutex::new(Vec::new());
const KERNEL: usize = usize::MAX;
static CURRENT: AtomicUsize = AtomicUsize::new(KERNEL);

/// Memory for one domain: (window base, writable bytes view, writable phys).
pub struct Window {
    /// Window base.
    pub base: u64,
    /// Index.
    pub id: usize,
}

/// Reserves a window for a new domain and maps its writable RAM.
pub fn create(name: &str, mechanism: Mechanism) -> Option<Window> {
    let mut domains = DOMAINS.lock();
    let id = domains.len();
    let base = DOMAIN_AREA.0 + id as u64 * WINDOW;
    if base + WINDOW > DOMAIN_AREA.1 {
        return None;
    }
    // Every last-level table of the window exists from the start: an MMU
    // domain's tables share them, so later mappings (MMIO) appear in both.
    paging::with_kernel(|k| k.prepare(base, base + WINDOW)).ok()?;
    let phys = frames::alloc_contiguous(RAM / PAGE_SIZE, 2 << 20)?;
    let lo = base + WRITABLE_OFFSET;
    for p in 0..RAM / PAGE_SIZE {
        paging::kernel_map(
            lo + p * PAGE_SIZE,
            phys + p * PAGE_SIZE,
            paging::flags::DATA,
        )
        .ok()?;
    }
    domains.push(Domain {
        id,
        name: String::from(name),
        mechanism,
        base,
        text: (base, base),
        writable: (lo, lo + RAM + MMIO),
        symbols: Vec::new(),
        sfi_state: None,
        failed: false,
        locks: 0,
        space: None,
        heap: Heap::empty(),
        mmio_next: lo + RAM,
    });
    Some(Window { base, id })
}

/// Finishes a domain once its object is loaded: code range, symbols, and the
/// heap over the RAM the data area left free; confines an SFI object; builds
/// an MMU domain's page tables and stacks.
pub fn finish(
    id: usize,
    text: (u64, u64),
    data_end: u64,
    symbols: Vec<(u64, u64, String)>,
    sfi_state: Option<u64>,
) -> Result<(), mmu::SpaceError> {
    let mut domains = DOMAINS.lock();
    let d = &mut domains[id];
    d.text = text;
    d.symbols = symbols;
    let heap_lo = (data_end + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let heap_hi = d.writable.0 + RAM;
    // SAFETY: [heap_lo, heap_hi) is mapped RW, belongs to this domain alone and
    // nothing else uses it.
    unsafe {
        d.heap
            .init(heap_lo as *mut u8, (heap_hi - heap_lo) as usize)
    };
    if let (Mechanism::Sfi, Some(state)) = (d.mechanism, sfi_state) {
        let (lo, hi) = d.writable;
        debug_assert_eq!(hi - lo, sfi::SPAN);
        for (field, value) in [(sfi::LO, lo), (sfi::HI, hi)] {
            // SAFETY: `state` is the object's __nooks_sfi, in its runtime
            // area (checked by the loader's caller), `sfi::SIZE` bytes.
            unsafe { core::ptr::write_volatile((state + field as u64) as *mut u64, value) };
        }
        d.sfi_state = Some(state);
    }
    if d.mechanism == Mechanism::Mmu {
        let heap = &mut d.heap;
        let space = mmu::build(id, d.base, d.base + WINDOW, |size| {
            core::alloc::Layout::from_size_align(size, 16)
                .ok()
                .and_then(|l| heap.allocate_first_fit(l).ok())
                .map_or(core::ptr::null_mut(), |p| p.as_ptr())
        })?;
        d.space = Some(space);
    }
    Ok(())
}

/// The domain the CPU is executing for, if any.
pub fn current() -> Option<usize> {
    let c = CURRENT.load(Ordering::SeqCst);
    (c != KERNEL).then_some(c)
}

/// The domain whose code contains `addr`.
pub fn owning(addr: u64) -> Option<usize> {
    DOMAINS
        .lock()
        .iter()
        .find(|d| addr >= d.text.0 && addr < d.text.1)
        .map(|d| d.id)
}

/// The domain whose writable part contains `addr`.
pub fn holding(addr: u64) -> Option<usize> {
    DOMAINS
        .lock()
        .iter()
        .find(|d| addr >= d.writable.0 && addr < d.writable.1)
        .map(|d| d.id)
}

/// Allocates in the current domain's heap (zeroed).
pub fn alloc(id: usize, size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = core::alloc::Layout::from_size_align(size, align) else {
        return core::ptr::null_mut();
    };
    let mut domains = DOMAINS.lock();
    match domains[id].heap.allocate_first_fit(layout) {
        Ok(p) => {
            // SAFETY: freshly allocated, `size` bytes.
            unsafe { core::ptr::write_bytes(p.as_ptr(), 0, size) };
            p.as_ptr()
        }
        Err(()) => core::ptr::null_mut(),
    }
}

/// Frees a block of a domain's heap.
///
/// # Safety
/// `p` came from [`alloc`] for domain `id` with this size and alignment.
pub unsafe fn free(id: usize, p: *mut u8, size: usize, align: usize) {
    if let (Some(nn), Ok(layout)) = (
        core::ptr::NonNull::new(p),
        core::alloc::Layout::from_size_align(size, align),
    ) {
        // SAFETY: per the caller's contract.
        unsafe { DOMAINS.lock()[id].heap.deallocate(nn, layout) };
    }
}

/// Maps device memory into the current domain's window.
pub fn ioremap(id: usize, phys: u64, len: u64) -> Option<u64> {
    let mut domains = DOMAINS.lock();
    let d = &mut domains[id];
    let first = phys & !(PAGE_SIZE - 1);
    let pages = (phys + len - first).div_ceil(PAGE_SIZE);
    let va = d.mmio_next;
    if va + pages * PAGE_SIZE > d.writable.1 {
        return None;
    }
    for p in 0..pages {
        paging::kernel_map(
            va + p * PAGE_SIZE,
            first + p * PAGE_SIZE,
            paging::flags::MMIO,
        )
        .ok()?;
    }
    d.mmio_next = va + (pages + 1) * PAGE_SIZE;
    Some(va + (phys - first))
}

/// Adds `delta` to the current domain's lock count (and, for an SFI domain,
/// to the count its rewritten entry points compare).
pub fn count_lock(delta: i64) {
    let Some(id) = current() else { return };
    let mut domains = DOMAINS.lock();
    let d = &mut domains[id];
    d.locks += delta;
    if let Some(state) = d.sfi_state {
        let p = (state + sfi::LOCKS as u64) as *mut u32;
        // SAFETY: the 32-bit LOCKS field of the object's __nooks_sfi.
        unsafe { p.write_volatile(p.read_volatile().wrapping_add(delta as u32)) };
    }
}

/// Calls into domains (every mechanism): kernel → driver crossings.
pub static ENTRIES: AtomicU64 = AtomicU64::new(0);
/// TSC cycles spent inside outermost calls into domains (the driver's code,
/// the kernel functions it calls, the crossings): under QEMU's `-icount` the
/// guest instructions of the driver path.
pub static INSIDE_CYCLES: AtomicU64 = AtomicU64::new(0);

/// Why a call into a domain did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The domain had already failed.
    AlreadyFailed,
    /// It faulted just now.
    Faulted,
    /// Crossings nested too deeply (a recursion through the gates).
    TooDeep,
}

/// A rule a wrapper found broken inside a driver call, waiting for the fault
/// that unwinds it (see [`abort`]).
static ABORTED: IrqMutex<Option<(&'static str, u64)>> = IrqMutex::new(None);

/// Called by a wrapper (a kernel function a driver called) that found the
/// driver breaking the API's rules — a bad free, say: fails the current
/// domain with `cause`, unwinding the driver call like any other domain
/// fault. Outside a domain it returns (the kernel itself called).
pub fn abort(cause: &'static str, address: u64) {
    if current().is_none() || !fault::armed() {
        return;
    }
    *ABORTED.lock() = Some((cause, address));
    // SAFETY: raises #UD, which the armed catch frame turns into this
    // domain's failure; nothing after it runs.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
}

/// Why a domain broke the rules at a return (checked by the MMU mechanism;
/// rewritten SFI code checks its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Violation {
    LockHeld,
    InterruptsOff,
    InterruptsOn,
}

/// Calls driver code at `entry` with up to six integer arguments, on behalf
/// of the domain whose code contains it: the one wrapper every kernel →
/// driver call goes through, whatever the mechanism. It makes the domain
/// current (so allocations land in its window), arms a catch frame and the
/// watchdog, crosses through the gate (switching stack and tables under
/// `mmu`), checks the return invariants, and turns a fault or a violation
/// into a contained domain failure. Kernel code at `entry` is just called.
pub fn call(entry: u64, args: &[u64]) -> Result<u64, Failure> {
    let mut regs = [0u64; 6];
    regs[..args.len().min(6)].copy_from_slice(&args[..args.len().min(6)]);
    let Some(id) = owning(entry) else {
        // SAFETY: kernel code called through the gate with its own arguments.
        return Ok(unsafe { gate::call(entry, &regs, 0, 0) }.value);
    };
    let (mechanism, stack, cr3, locks) = {
        let mut domains = DOMAINS.lock();
        let d = &mut domains[id];
        if d.failed {
            return Err(Failure::AlreadyFailed);
        }
        match d.space.as_mut() {
            Some(space) => (
                d.mechanism,
                space.stack_for(mmu::rsp()),
                space.cr3(),
                d.locks,
            ),
            None => (d.mechanism, 0, 0, d.locks),
        }
    };
    if !gate::has_room() {
        return Err(Failure::TooDeep);
    }
    ENTRIES.fetch_add(1, Ordering::Relaxed);
    if cr3 != 0 {
        mmu::CR3_WRITES.fetch_add(2, Ordering::Relaxed);
    }
    let previous = CURRENT.swap(id, Ordering::SeqCst);
    let previous_cr3 = gate::DOMAIN_CR3.load(Ordering::SeqCst);
    if cr3 != 0 {
        gate::DOMAIN_CR3.store(
            cr3 | crate::arch::CR3_NOFLUSH.load(Ordering::Relaxed),
            Ordering::SeqCst,
        );
    }
    let gate_top = gate::top();
    let interrupts = crate::arch::interrupts_enabled();
    let outermost = previous == KERNEL;
    let watchdog = crate::watchdog::arm(2000);
    // SAFETY: `entry` is the domain's code (it lies in its text); the stack
    // and tables are the domain's own, from its Space.
    let t0 = crate::arch::rdtsc();
    let r = fault::catch(|| unsafe { gate::call(entry, &regs, stack, cr3) });
    if outermost {
        INSIDE_CYCLES.fetch_add(crate::arch::rdtsc() - t0, Ordering::Relaxed);
    }
    crate::watchdog::restore(watchdog);
    gate::set_top(gate_top);
    gate::DOMAIN_CR3.store(previous_cr3, Ordering::SeqCst);
    CURRENT.store(previous, Ordering::SeqCst);
    let returned = match r {
        Ok(returned) => returned,
        Err(fault) => {
            fail(id, &fault, None);
            return Err(Failure::Faulted);
        }
    };
    // The wrapper's own checks, for every isolating mechanism: the real
    // interrupt flag (the lock API's irqsave/irqrestore change it on the
    // driver's behalf, which no virtual flag sees) and the kernel's lock count.
    if mechanism == Mechanism::None {
        return Ok(returned.value);
    }
    let returned_interrupts = returned.rflags & (1 << 9) != 0;
    // Interrupts are restored only after a violating domain has failed (and
    // its handlers are gone): a pending interrupt must not re-enter it.
    let restore = || {
        if returned_interrupts != interrupts {
            if interrupts {
                crate::arch::interrupts_enable();
            } else {
                crate::arch::interrupts_disable();
            }
        }
    };
    let held = DOMAINS.lock()[id].locks;
    let violation = if held != locks {
        Some(Violation::LockHeld)
    } else if interrupts && !returned_interrupts {
        Some(Violation::InterruptsOff)
    } else if !interrupts && returned_interrupts {
        Some(Violation::InterruptsOn)
    } else {
        None
    };
    match violation {
        None => {
            restore();
            Ok(returned.value)
        }
        Some(v) => {
            let fault = Fault {
                vector: 0,
                rip: entry,
                ..Fault::default()
            };
            fail(id, &fault, Some(v));
            restore();
            Err(Failure::Faulted)
        }
    }
}

fn symbolise(d: &Domain, addr: u64) -> String {
    d.symbols
        .iter()
        .filter(|(a, s, _)| addr >= *a && addr < *a + (*s).max(1))
        .map(|(a, _, n)| alloc::format!("{n}+{:#x}", addr - a))
        .next()
        .unwrap_or_else(|| alloc::format!("{addr:#x}"))
}

/// What a page fault inside an MMU domain means, from its error code.
fn page_fault_cause(error: u64) -> &'static str {
    match (error & 1 != 0, error & 2 != 0, error & 0x10 != 0) {
        (true, _, true) => "mmu: jump to non-executable memory",
        (false, _, true) => "mmu: jump to unmapped memory",
        (true, true, _) => "mmu: store to a read-only page",
        (false, true, _) => "mmu: store to an unmapped page",
        (_, false, _) => "mmu: load from an unmapped page",
    }
}

/// Marks domain `id` failed, stops its interrupts and its devices' DMA, and reports.
fn fail(id: usize, fault: &Fault, violation: Option<Violation>) {
    if failed(id) {
        // Failed already (a nested call faulted first): one report, one recovery.
        crate::warn!("domain {id}: another fault after failing: {fault}");
        return;
    }
    let (report, text, id) = {
        let mut domains = DOMAINS.lock();
        let d = &mut domains[id];
        d.failed = true;
        let kind = d.sfi_state.map(|s| {
            // SAFETY: FAULT_ADDR and FAULT_KIND of the object's __nooks_sfi.
            unsafe {
                (
                    core::ptr::read_volatile((s + sfi::FAULT_ADDR as u64) as *const u64),
                    core::ptr::read_volatile((s + sfi::FAULT_KIND as u64) as *const u64),
                )
            }
        });
        let aborted = ABORTED.lock().take();
        let (cause, address) = match (violation, fault.vector, kind) {
            (None, 6, _) if aborted.is_some() => aborted.unwrap_or(("api", 0)),
            (Some(Violation::LockHeld), _, _) if d.mechanism == Mechanism::Sfi => {
                ("sfi: returned holding a lock", 0)
            }
            (Some(Violation::InterruptsOff), _, _) if d.mechanism == Mechanism::Sfi => {
                ("sfi: returned with interrupts disabled", 0)
            }
            (Some(Violation::InterruptsOn), _, _) if d.mechanism == Mechanism::Sfi => (
                "sfi: returned with interrupts enabled in an interrupt handler",
                0,
            ),
            (Some(Violation::InterruptsOn), _, _) => (
                "mmu: returned with interrupts enabled in an interrupt handler",
                0,
            ),
            (Some(Violation::LockHeld), _, _) => ("mmu: returned holding a lock", 0),
            (Some(Violation::InterruptsOff), _, _) => ("mmu: returned with interrupts disabled", 0),
            (None, vector, kind) => match (vector, kind) {
                (6, Some((addr, 1))) => ("sfi: store outside the domain", addr),
                (6, Some((_, 2))) => ("sfi: returned holding a lock", 0),
                (6, Some((_, 3))) => ("sfi: returned with interrupts disabled", 0),
                (6, Some((addr, 4))) => ("sfi: call to a forbidden target", addr),
                (6, Some((port, 5))) => ("sfi: I/O port outside the policy", port),
                (14, _) if d.mechanism == Mechanism::Mmu => {
                    (page_fault_cause(fault.error), fault.cr2)
                }
                (14, _) => ("page fault", fault.cr2),
                (crate::fault::WATCHDOG_VECTOR, _) => ("watchdog: runaway loop", 0),
                (_, _) => (fault.cause(), fault.cr2),
            },
        };
        // A trap inside the SFI runtime: it recorded the driver code that called it.
        let mut site = fault.rip;
        if let (Some((_, 1 | 4)), Some(state)) = (kind, d.sfi_state) {
            // SAFETY: FAULT_SITE of the object's __nooks_sfi.
            let recorded =
                unsafe { core::ptr::read_volatile((state + sfi::FAULT_SITE as u64) as *const u64) };
            if recorded >= d.text.0 && recorded < d.text.1 {
                site = recorded;
            }
        }
        let report = alloc::format!(
            "{{\"nooks\":\"fault\",\"domain\":\"{}\",\"mechanism\":\"{}\",\"cause\":\"{}\",\"address\":\"{:#x}\",\"function\":\"{}\",\"vector\":{}}}",
            d.name,
            d.mechanism.name(),
            cause,
            address,
            symbolise(d, site),
            fault.vector
        );
        (report, d.text, d.id)
    };
    match violation {
        Some(v) => crate::error!(
            "domain {id} failed: {v:?} at the return of {:#x}",
            fault.rip
        ),
        None => crate::error!("domain {id} failed: {fault}"),
    }
    crate::println!("{report}");
    if mechanism_of(id) == Mechanism::None {
        // No isolation: nothing stands between the fault and the kernel,
        // which goes down as a native kernel would.
        panic!("driver fault with isolation=none: the kernel goes down with it");
    }
    crate::driver_api::irq::silence(text);
    crate::driver_api::pci::stop_dma_of(id);
    crate::info!("domain {id} contained; kernel still up");
    crate::recovery::failed(id);
}

/// Patches `bytes` into the code of every live domain running original
/// (not rewritten) code that has function `symbol`, at `offset` into it —
/// fault injection into running drivers, as Nooks' experiments did. Returns
/// how many domains were patched.
pub fn patch_text(symbol: &str, offset: u64, bytes: &[u8]) -> usize {
    let domains = DOMAINS.lock();
    let mut n = 0;
    for d in domains
        .iter()
        .filter(|d| !d.failed && d.mechanism != Mechanism::Sfi)
    {
        let Some((addr, size, _)) = d.symbols.iter().find(|(_, _, name)| name == symbol) else {
            continue;
        };
        if offset + bytes.len() as u64 > *size {
            continue;
        }
        for (i, b) in bytes.iter().enumerate() {
            let va = addr + offset + i as u64;
            let Some((phys, _)) = paging::kernel_translate(va) else {
                continue;
            };
            // SAFETY: the byte is the domain's own code, reached through the
            // direct map (its text mapping is read-only); the CPU (and QEMU)
            // notice the change on their next fetch of it.
            unsafe { core::ptr::write_volatile(phys_to_virt(phys) as *mut u8, *b) };
        }
        n += 1;
    }
    n
}

/// The code range of domain `id`.
pub fn text_of(id: usize) -> (u64, u64) {
    DOMAINS.lock().get(id).map_or((0, 0), |d| d.text)
}

/// The mechanism of domain `id`.
pub fn mechanism_of(id: usize) -> Mechanism {
    DOMAINS
        .lock()
        .get(id)
        .map_or(Mechanism::None, |d| d.mechanism)
}

/// Whether domain `id` has failed.
pub fn failed(id: usize) -> bool {
    DOMAINS.lock().get(id).is_some_and(|d| d.failed)
}

/// (name, mechanism, failed) of every domain.
pub fn list() -> Vec<(String, Mechanism, bool)> {
    DOMAINS
        .lock()
        .iter()
        .map(|d| (d.name.clone(), d.mechanism, d.failed))
        .collect()
}

/// Writable bytes view of a domain's RAM at `offset` (for the loader).
pub fn ram_view(window: &Window, offset: u64, len: u64) -> Option<&'static mut [u8]> {
    if offset + len > RAM {
        return None;
    }
    let va = window.base + WRITABLE_OFFSET + offset;
    let phys = paging::kernel_translate(va)?.0;
    // SAFETY: the domain's RAM is one contiguous run reached through the direct map.
    Some(unsafe { core::slice::from_raw_parts_mut(phys_to_virt(phys) as *mut u8, len as usize) })
}

/// The mechanism of the domain whose code contains `addr` (`none` for kernel code).
pub fn mechanism_at(addr: u64) -> Mechanism {
    DOMAINS
        .lock()
        .iter()
        .find(|d| addr >= d.text.0 && addr < d.text.1)
        .map_or(Mechanism::None, |d| d.mechanism)
}
