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

pub mod entry;
pub mod gate;
pub mod heap;
pub mod mmu;
pub mod pks;
pub mod sfi;
pub mod umem;

pub use entry::Entry;
pub use umem::UMem;

use crate::fault::{self, Fault};
use crate::memory::{DOMAIN_AREA, PAGE_SIZE, frames, paging, phys_to_virt};
use crate::sync::IrqMutex;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use nooks_policy::abi::FaultKind;
use nooks_policy::abi::state::SPAN;

/// Offset of the read-only data in the window (the text comes first).
pub const RODATA_OFFSET: u64 = 2 << 20;
/// Size of a domain's virtual window.
pub const WINDOW: u64 = 32 << 20;
/// Offset of a sandboxed object's runtime state (`.nooks.state`: its
/// `__nooks_sfi`) in the window: writable, but below the writable part, so
/// no store the object's checks allow can change its own bounds.
pub const RUNTIME_OFFSET: u64 = 3 << 20;
/// Largest runtime state an object may bring.
pub const STATE_MAX: u64 = 256 << 10;
/// Offset of the domain's real stacks (process, then interrupt context), each
/// above an unmapped guard: outside the writable part too, so under `sfi` no
/// checked store reaches a return address, and an overflow is a page fault
/// the kernel names "stack overflow" instead of a write into kernel memory.
pub const STACKS_OFFSET: u64 = RUNTIME_OFFSET + (512 << 10);
/// Unmapped bytes below every stack.
pub const GUARD: u64 = 64 << 10;
/// A domain's real stack for calls from process context.
pub const STACK: u64 = 64 << 10;
/// A domain's real stack for calls from interrupt context.
pub const IRQ_STACK: u64 = 32 << 10;
/// Offset of the writable part in the window.
pub const WRITABLE_OFFSET: u64 = 4 << 20;
/// RAM in the writable part: data + heap + DMA.
pub const RAM: u64 = 8 << 20;
/// A rewritten object's emulated stack (the original frames), which the
/// kernel provides at the top of the writable part, above a guard; and the
/// one its code runs on in interrupt context, below it.
pub const ESTACK: u64 = 1 << 20;
/// The emulated stack for interrupt context.
pub const IRQ_ESTACK: u64 = 64 << 10;
/// Virtual space for MMIO mappings after the RAM, up to the emulated stacks.
pub const MMIO: u64 = SPAN - RAM - ESTACK - IRQ_ESTACK - 2 * GUARD;
/// Bytes a rewritten native entry may copy below the emulated stack pointer
/// (its stack arguments): the pointer must leave that much of the stack.
const ESTACK_ARGS: u64 = 16 * 8;
/// Room left above the top of a real stack: a native entry reads up to 12
/// stack words of its caller there.
const STACK_TOP_ROOM: u64 = 256;
const _: () = assert!(WRITABLE_OFFSET + SPAN <= WINDOW && RAM < SPAN);
const _: () = assert!(STACKS_OFFSET + 2 * GUARD + STACK + IRQ_STACK <= WRITABLE_OFFSET);
const _: () = assert!(RUNTIME_OFFSET + STATE_MAX + GUARD <= STACKS_OFFSET);
// The load-time verifier bounds each function's frame by MAX_FRAME: a frame
// that deep, begun anywhere on a stack, ends in the guard below it.
const _: () = assert!(GUARD >= nooks_policy::abi::MAX_FRAME + PAGE_SIZE);

/// How a domain is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// No enforcement: the baseline.
    None,
    /// Software fault isolation: the object was rewritten by nooks-cc.
    Sfi,
    /// Hardware page tables per domain.
    Mmu,
    /// Protection keys for supervisor pages: one page table, a key per domain.
    Pks,
}

impl Mechanism {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::None => "none",
            Mechanism::Sfi => "sfi",
            Mechanism::Mmu => "mmu",
            Mechanism::Pks => "pks",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Mechanism::None),
            "sfi" => Some(Mechanism::Sfi),
            "mmu" => Some(Mechanism::Mmu),
            "pks" => Some(Mechanism::Pks),
            _ => None,
        }
    }
}

/// What the kernel spends on a domain's behalf, each bounded per domain: a
/// driver that asks without end fails with the limit named, instead of
/// exhausting kernel memory for everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Live heap blocks (`kmalloc`, skbs, net devices, coherent DMA).
    HeapBlock,
    /// Interrupt handlers registered.
    Irq,
    /// Timers set up.
    Timer,
    /// Net devices registered.
    NetDevice,
}

impl Resource {
    const ALL: usize = 4;

    /// The most a domain may hold.
    pub const fn limit(self) -> u32 {
        match self {
            Resource::HeapBlock => 16384,
            Resource::Irq => 4,
            Resource::Timer => 32,
            Resource::NetDevice => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Resource::HeapBlock => "live heap blocks",
            Resource::Irq => "interrupt handlers",
            Resource::Timer => "timers",
            Resource::NetDevice => "net devices",
        }
    }
}

/// A domain's real stacks: [lo, hi) of each.
#[derive(Clone, Copy)]
struct Stacks {
    process: (u64, u64),
    irq: (u64, u64),
}

impl Stacks {
    fn at(lo: u64, size: u64, irq_size: u64) -> Self {
        let process = (lo + GUARD, lo + GUARD + size);
        let irq = (process.1 + GUARD, process.1 + GUARD + irq_size);
        Stacks { process, irq }
    }

    fn contains(&self, addr: u64) -> bool {
        [self.process, self.irq]
            .iter()
            .any(|&(lo, hi)| addr >= lo && addr < hi)
    }

    fn in_guard(&self, addr: u64) -> bool {
        [self.process, self.irq]
            .iter()
            .any(|&(lo, _)| addr >= lo - GUARD && addr < lo)
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
    /// The driver's function symbols, for fault reports and entry checks.
    pub symbols: Vec<(u64, u64, String)>,
    /// Failed and stopped.
    pub failed: bool,
    /// I/O port ranges its policy allows (from its `.nooks` metadata).
    pub ports: Vec<(u16, u16)>,
    /// The entry points its policy declares (None: any of its functions).
    entries: Option<Vec<String>>,
    /// Its address space, under `mmu`.
    space: Option<mmu::Space>,
    /// Its protection key and the IA32_PKRS rights it runs under, under `pks`.
    key: Option<(u64, u64)>,
    heap: heap::Heap,
    mmio_next: u64,
    /// A rewritten object's `__nooks_esp` (its emulated stacks follow from
    /// the window: [`emulated_stacks`]).
    esp: Option<u64>,
    charges: [u32; Resource::ALL],
}

/// Domains whose object runs on emulated stacks the kernel mapped (one bit
/// per window): with the window's fixed layout, all [`owns_range`] needs.
static EMULATED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
const _: () = assert!((DOMAIN_AREA.1 - DOMAIN_AREA.0) / WINDOW <= 32);
// Per-window tables (`LOCKS`, `SFI_STATE`, `EMULATED`) have 32 slots.

/// Whether [addr, addr + len) is memory domain `id` may have the kernel
/// write for it: its RAM (data, heap) and its stacks — the real ones for an
/// original object, the emulated ones for a rewritten object. A rewritten
/// object's real stacks hold only its return addresses and the spill slots
/// of Cranelift's code, which the load-time verifier assumes nothing but
/// that code writes: a pointer into them handed to an export is refused.
/// Every range follows from the window's fixed layout, so this takes no lock
/// (it runs in every export that takes a pointer).
pub fn owns_range(id: usize, addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let base = DOMAIN_AREA.0 + id as u64 * WINDOW;
    let inside = |(lo, hi): (u64, u64)| addr >= lo && end <= hi;
    if inside((base + WRITABLE_OFFSET, base + WRITABLE_OFFSET + RAM)) {
        return true;
    }
    if EMULATED.load(Ordering::Relaxed) & (1 << id) != 0 {
        let e = emulated_stacks(base);
        return inside(e.process) || inside(e.irq);
    }
    let s = real_stacks(base);
    inside(s.process) || inside(s.irq)
}

/// The real stacks of the domain whose window is at `base`.
fn real_stacks(base: u64) -> Stacks {
    Stacks::at(base + STACKS_OFFSET, STACK, IRQ_STACK)
}

/// A rewritten object's emulated stacks in the window at `base`: the big
/// one (process context) at the top of the writable part, the interrupt
/// context's below it, each above a guard.
fn emulated_stacks(base: u64) -> Stacks {
    let top = base + WRITABLE_OFFSET + SPAN;
    let e = Stacks::at(top - ESTACK - IRQ_ESTACK - 2 * GUARD, IRQ_ESTACK, ESTACK);
    Stacks {
        process: e.irq,
        irq: e.process,
    }
}

impl Domain {
    /// Whether `addr` is the start of one of the domain's entry points: a
    /// function of its object (not the inner entries and runtime functions
    /// nooks-cc adds, which take another calling convention) — one its
    /// policy declares, when its policy names them (`init_module` and
    /// `cleanup_module` always are).
    fn is_entry(&self, addr: u64) -> bool {
        self.functions(addr).any(|name| {
            self.entries
                .as_ref()
                .is_none_or(|e| e.iter().any(|x| x == name) || nooks_policy::is_named_entry(name))
        })
    }

    /// The names of the object's own functions that start at `addr`.
    fn functions(&self, addr: u64) -> impl Iterator<Item = &str> {
        self.symbols
            .iter()
            .filter(move |(a, _, name)| *a == addr && nooks_policy::abi::is_entry_name(name))
            .map(|(_, _, name)| name.as_str())
    }

    /// Whether `addr` starts one of the object's own functions.
    fn is_function(&self, addr: u64) -> bool {
        self.functions(addr).next().is_some()
    }
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

/// Maps `size` bytes of fresh frames at `va` with `flags`.
fn map_fresh(va: u64, size: u64, flags: u64) -> Option<()> {
    for p in 0..size.div_ceil(PAGE_SIZE) {
        let frame = frames::alloc_frame()?;
        // SAFETY: a fresh frame, ours alone, reached through the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, PAGE_SIZE as usize) };
        paging::kernel_map(va + p * PAGE_SIZE, frame, flags).ok()?;
    }
    Some(())
}

/// Reserves a window for a new domain and maps its writable RAM and stacks.
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
    let stacks = real_stacks(base);
    for (lo, hi) in [stacks.process, stacks.irq] {
        map_fresh(lo, hi - lo, paging::flags::DATA)?;
    }
    domains.push(Domain {
        id,
        name: String::from(name),
        mechanism,
        base,
        text: (base, base),
        writable: (lo, lo + SPAN),
        symbols: Vec::new(),
        failed: false,
        ports: Vec::new(),
        entries: None,
        space: None,
        key: None,
        heap: heap::Heap::default(),
        mmio_next: lo + RAM,
        esp: None,
        charges: [0; Resource::ALL],
    });
    Some(Window { base, id })
}

/// What the loader tells a domain about its object.
pub struct Loaded {
    /// Code range.
    pub text: (u64, u64),
    /// End of its data and bss in the writable part.
    pub data_end: u64,
    /// Function symbols (address, size, name).
    pub symbols: Vec<(u64, u64, String)>,
    /// `__nooks_sfi`, for an SFI object.
    pub sfi_state: Option<u64>,
    /// `__nooks_esp`, for a rewritten object.
    pub esp: Option<u64>,
    /// I/O port ranges of its policy.
    pub ports: Vec<(u16, u16)>,
    /// The entry points its policy declares (None: any of its functions).
    pub entries: Option<Vec<String>>,
}

/// Finishes a domain once its object is loaded: code range, symbols, and the
/// heap over the RAM the data area left free; gives a rewritten object its
/// emulated stacks; confines an SFI object; builds an MMU domain's tables.
pub fn finish(id: usize, o: Loaded) -> Result<(), mmu::SpaceError> {
    let mut domains = DOMAINS.lock();
    let d = &mut domains[id];
    d.text = o.text;
    d.symbols = o.symbols;
    d.ports = o.ports;
    d.entries = o.entries;
    let heap_lo = (o.data_end + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    d.heap = heap::Heap::new(heap_lo, d.writable.0 + RAM);
    if let Some(esp) = o.esp {
        let e = emulated_stacks(d.base);
        for (lo, hi) in [e.process, e.irq] {
            map_fresh(lo, hi - lo, paging::flags::DATA).ok_or(mmu::SpaceError::NoStack)?;
        }
        d.esp = Some(esp);
        EMULATED.fetch_or(1 << id, Ordering::Relaxed);
    }
    if let (Mechanism::Sfi, Some(state)) = (d.mechanism, o.sfi_state) {
        let (lo, hi) = d.writable;
        debug_assert_eq!(hi - lo, SPAN);
        // SAFETY: `state` is the object's __nooks_sfi, in its runtime area
        // (checked by the loader's caller), `SIZE` bytes.
        let state = unsafe { sfi::State::new(state) };
        state.confine(lo, hi);
        SFI_STATE[id].store(state.addr(), Ordering::Relaxed);
    }
    if d.mechanism == Mechanism::Mmu {
        d.space = Some(mmu::build(id, d.base, d.base + WINDOW)?);
    }
    if d.mechanism == Mechanism::Pks {
        let key = pks::assign(d.base, d.base + WINDOW).map_err(mmu::SpaceError::NoKey)?;
        d.key = Some((key, pks::rights(key)));
    }
    Ok(())
}

/// Domain `id`'s RAM: (physical start, length), one contiguous run.
pub fn ram(id: usize) -> Option<(u64, u64)> {
    let base = DOMAIN_AREA.0 + id as u64 * WINDOW;
    paging::kernel_translate(base + WRITABLE_OFFSET).map(|(phys, _)| (phys, RAM))
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

/// Allocates `size` bytes in domain `id`'s heap (zeroed).
pub fn alloc(id: usize, size: usize, align: usize) -> *mut u8 {
    let mut domains = DOMAINS.lock();
    let Some(p) = domains[id].heap.alloc(size as u64, align as u64) else {
        return core::ptr::null_mut();
    };
    // SAFETY: a fresh block of the domain's heap, mapped RW, `size` bytes.
    unsafe { core::ptr::write_bytes(p as *mut u8, 0, size) };
    p as *mut u8
}

/// Frees a block [`alloc`] gave domain `id` for `size` and `align`; false
/// if the heap knows it is free already.
pub fn free(id: usize, p: *mut u8, size: usize, align: usize) -> bool {
    DOMAINS.lock()[id]
        .heap
        .free(p as u64, size as u64, align as u64)
        .is_ok()
}

/// Charges one `resource` to the current domain (nothing for the kernel):
/// past the domain's limit, the domain fails with the limit named.
pub fn charge(export: &'static str, resource: Resource) {
    let Some(id) = current() else { return };
    if !try_charge(id, resource) {
        abort(
            alloc::format!(
                "api: {export}: limit of {} {} per domain reached",
                resource.limit(),
                resource.name()
            ),
            0,
        );
    }
}

/// Charges one `resource` to domain `id` if it is under its limit.
pub fn try_charge(id: usize, resource: Resource) -> bool {
    let mut domains = DOMAINS.lock();
    let Some(d) = domains.get_mut(id) else {
        return false;
    };
    let n = &mut d.charges[resource as usize];
    if *n >= resource.limit() {
        return false;
    }
    *n += 1;
    true
}

/// Gives back one `resource` charged to domain `id`.
pub fn uncharge(id: Option<usize>, resource: Resource) {
    if let Some(id) = id
        && let Some(d) = DOMAINS.lock().get_mut(id)
    {
        let n = &mut d.charges[resource as usize];
        *n = n.saturating_sub(1);
    }
}

/// Maps device memory into the current domain's window.
pub fn ioremap(id: usize, phys: u64, len: u64) -> Option<u64> {
    let mut domains = DOMAINS.lock();
    let d = &mut domains[id];
    let first = phys & !(PAGE_SIZE - 1);
    let pages = (phys.checked_add(len)? - first).div_ceil(PAGE_SIZE);
    let va = d.mmio_next;
    if va + pages * PAGE_SIZE > d.writable.0 + RAM + MMIO {
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
    if let Some((key, _)) = d.key {
        pks::extend(va, va + pages * PAGE_SIZE, key);
    }
    Some(va + (phys - first))
}

/// Whether `addr` lies in domain `id`'s MMIO mappings.
pub fn is_mmio_of(id: usize, addr: u64) -> bool {
    DOMAINS
        .lock()
        .get(id)
        .is_some_and(|d| addr >= d.writable.0 + RAM && addr < d.mmio_next)
}

/// Whether the current domain's policy allows I/O port `port`.
pub fn port_allowed(port: u16) -> bool {
    let Some(id) = current() else { return true };
    DOMAINS.lock()[id]
        .ports
        .iter()
        .any(|&(lo, hi)| port >= lo && port <= hi)
}

/// The locks each domain holds: the kernel's count, kept once for every
/// mechanism (an SFI object's runtime state mirrors it for its own entries
/// to compare). Per window, so the lock API counts without a lock.
static LOCKS: [core::sync::atomic::AtomicI64; 32] =
    [const { core::sync::atomic::AtomicI64::new(0) }; 32];
/// Each domain's SFI runtime state (0: none): read without a lock by the
/// lock API, and by the fault report.
static SFI_STATE: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

/// Domain `id`'s SFI runtime state, if it runs an SFI object.
fn sfi_state(id: usize) -> Option<sfi::State> {
    let state = SFI_STATE.get(id)?.load(Ordering::Relaxed);
    // SAFETY: recorded by `finish` from the object's checked __nooks_sfi.
    (state != 0).then(|| unsafe { sfi::State::new(state) })
}

/// Adds `delta` to the current domain's lock count (and, for an SFI domain,
/// to the count its rewritten entry points compare).
pub fn count_lock(delta: i64) {
    let Some(id) = current() else { return };
    LOCKS[id].fetch_add(delta, Ordering::Relaxed);
    if let Some(state) = sfi_state(id) {
        state.add_locks(delta);
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
static ABORTED: IrqMutex<Option<(String, u64)>> = IrqMutex::new(None);

/// Called by a wrapper (a kernel function a driver called) that found the
/// driver breaking the API's rules — a bad free, a pointer into memory that
/// is not its own, another domain's object: fails the current domain with
/// `cause`, unwinding the driver call like any other domain fault. Outside a
/// domain it returns (the kernel itself called).
pub fn abort(cause: impl Into<String>, address: u64) {
    if current().is_none() || !fault::armed() {
        return;
    }
    *ABORTED.lock() = Some((cause.into(), address));
    // SAFETY: raises #UD, which the armed catch frame turns into this
    // domain's failure; nothing after it runs.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
}

/// Fails domain `id` from kernel context (not inside a call into it) with
/// `cause` and the `address` it names, reported at driver code `rip`: for
/// rules the kernel checks around calls, such as where the driver left its
/// stack pointer or how much of the CPU its timer callbacks take.
pub fn fail_for(id: usize, cause: impl Into<String>, address: u64, rip: u64) {
    *ABORTED.lock() = Some((cause.into(), address));
    let fault = Fault {
        vector: 6,
        rip,
        ..Fault::default()
    };
    fail(id, &fault, None);
}

/// [`abort`] for an argument of an export: the cause names both.
pub fn misuse(export: &'static str, arg: &'static str, address: u64, why: &str) {
    abort(alloc::format!("api: {export}({arg}): {why}"), address);
}

/// Why a domain broke the rules at a return (checked by the wrapper for
/// every isolating mechanism; rewritten SFI code also checks its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Violation {
    LockHeld,
    InterruptsOff,
    InterruptsOn,
}

impl Violation {
    fn why(self) -> &'static str {
        match self {
            Violation::LockHeld => "returned holding a lock",
            Violation::InterruptsOff => "returned with interrupts disabled",
            Violation::InterruptsOn => "returned with interrupts enabled in an interrupt handler",
        }
    }
}

/// Where a call into a domain runs: its real stack, and for a rewritten
/// object the emulated stack pointer to start from.
struct Frame {
    /// Real stack top to switch to (0: stay, a nested call).
    stack: u64,
    /// `__nooks_esp` and the value to give it for this call, and the one to
    /// put back after (an outermost call starts at the top of its emulated
    /// stack whatever the driver left there).
    esp: Option<(u64, u64, u64)>,
}

impl Domain {
    /// The stacks a call from a context whose stack pointer is `rsp` runs
    /// on: the current ones if it is already on the domain's (a nested call
    /// back into the driver), the interrupt stacks when called from an
    /// interrupt (the driver may be running on its process stacks right
    /// now), else the process stacks. Err: a nested call whose emulated
    /// stack pointer the driver moved outside its emulated stacks.
    fn frame(&self, rsp: u64) -> Result<Frame, u64> {
        let stacks = real_stacks(self.base);
        let nested = stacks.contains(rsp - 1);
        let irq = !nested && crate::arch::gdt::ist_slot_of(rsp).is_some();
        let stack = match (nested, irq) {
            (true, _) => 0,
            (false, true) => stacks.irq.1 - STACK_TOP_ROOM,
            (false, false) => stacks.process.1 - STACK_TOP_ROOM,
        };
        let esp = match self.esp {
            None => None,
            Some(symbol) => {
                let e = emulated_stacks(self.base);
                // SAFETY: `symbol` is the object's __nooks_esp, a u64 the
                // loader placed in its runtime area (sfi) or its data (none).
                let now = unsafe { core::ptr::read_volatile(symbol as *const u64) };
                if nested {
                    let fits = |(lo, hi): (u64, u64)| now >= lo + ESTACK_ARGS && now <= hi;
                    if !fits(e.process) && !fits(e.irq) {
                        return Err(now);
                    }
                    None
                } else {
                    let top = if irq { e.irq.1 } else { e.process.1 };
                    Some((symbol, top - STACK_TOP_ROOM, now))
                }
            }
        };
        Ok(Frame { stack, esp })
    }
}

/// Calls driver code at `entry` with up to six integer arguments: the one
/// wrapper every kernel → driver call goes through, whatever the mechanism.
/// The entry was checked when it was registered (see [`Entry`]). It makes
/// the domain current (so allocations land in its window), arms a catch
/// frame and the watchdog, crosses through the gate onto the domain's own
/// stacks (and tables under `mmu`), checks the return invariants, and turns
/// a fault or a violation into a contained domain failure.
pub fn call(entry: Entry, args: &[u64]) -> Result<u64, Failure> {
    let mut regs = [0u64; 6];
    regs[..args.len().min(6)].copy_from_slice(&args[..args.len().min(6)]);
    let id = entry.domain();
    let (mechanism, frame, cr3, pkrs, locks) = {
        let mut domains = DOMAINS.lock();
        let d = &mut domains[id];
        if d.failed {
            return Err(Failure::AlreadyFailed);
        }
        let frame = match d.frame(mmu::rsp()) {
            Ok(f) => f,
            Err(esp) => {
                drop(domains);
                fail_for(
                    id,
                    "stack pivot: the emulated stack pointer left the domain's stacks",
                    esp,
                    entry.addr(),
                );
                return Err(Failure::Faulted);
            }
        };
        let cr3 = d.space.as_mut().map_or(0, |s| s.cr3());
        let pkrs = d.key.map_or(0, |(_, rights)| rights);
        (
            d.mechanism,
            frame,
            cr3,
            pkrs,
            LOCKS[id].load(Ordering::Relaxed),
        )
    };
    if !gate::has_room() {
        return Err(Failure::TooDeep);
    }
    ENTRIES.fetch_add(1, Ordering::Relaxed);
    if cr3 != 0 {
        mmu::CR3_WRITES.fetch_add(2, Ordering::Relaxed);
    }
    if pkrs != 0 {
        pks::PKRS_WRITES.fetch_add(2, Ordering::Relaxed);
    }
    if let Some((symbol, start, _)) = frame.esp {
        // SAFETY: the object's __nooks_esp; the driver is not running on
        // this context's emulated stack (an outermost call).
        unsafe { core::ptr::write_volatile(symbol as *mut u64, start) };
    }
    let previous = CURRENT.swap(id, Ordering::SeqCst);
    let previous_cr3 = gate::DOMAIN_CR3.load(Ordering::SeqCst);
    let previous_pkrs = gate::DOMAIN_PKRS.swap(pkrs, Ordering::SeqCst);
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
    let t0 = crate::arch::rdtsc();
    // SAFETY: `entry` is one of the domain's entry points (checked when it
    // was registered); the stack and tables are the domain's own.
    let r = fault::catch(|| unsafe { gate::call(entry.addr(), &regs, frame.stack, cr3, pkrs) });
    if outermost {
        INSIDE_CYCLES.fetch_add(crate::arch::rdtsc() - t0, Ordering::Relaxed);
    }
    crate::watchdog::restore(watchdog);
    gate::set_top(gate_top);
    gate::DOMAIN_CR3.store(previous_cr3, Ordering::SeqCst);
    gate::DOMAIN_PKRS.store(previous_pkrs, Ordering::SeqCst);
    CURRENT.store(previous, Ordering::SeqCst);
    if let Some((symbol, _, before)) = frame.esp {
        // SAFETY: as above: what an interrupted driver had published.
        unsafe { core::ptr::write_volatile(symbol as *mut u64, before) };
    }
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
    let held = LOCKS[id].load(Ordering::Relaxed);
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
                rip: entry.addr(),
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

/// What a page fault at `addr` inside an `mmu` or `pks` domain means, from
/// its error code (and, for a protection-key fault, the page's key).
fn page_fault_cause(error: u64, addr: u64) -> &'static str {
    const PROTECTION_KEY: u64 = 1 << 5;
    if error & PROTECTION_KEY != 0 {
        let key = paging::kernel_translate(addr).map_or(0, |(_, f)| (f & paging::flags::KEY) >> 59);
        return match (key, error & 2 != 0) {
            (0, true) => "store to kernel memory (key 0 is read-only)",
            (0, false) => "load from kernel memory",
            (_, true) => "store to another domain's memory",
            (_, false) => "load from another domain's memory",
        };
    }
    match (error & 1 != 0, error & 2 != 0, error & 0x10 != 0) {
        (true, _, true) => "jump to non-executable memory",
        (false, _, true) => "jump to unmapped memory",
        (true, true, _) => "store to a read-only page",
        (false, true, _) => "store to an unmapped page",
        (_, false, _) => "load from an unmapped page",
    }
}

/// Marks domain `id` failed, stops its interrupts and its devices' DMA, and reports.
fn fail(id: usize, fault: &Fault, violation: Option<Violation>) {
    if failed(id) {
        // Failed already (a nested call faulted first): one report, one recovery.
        crate::warn!("domain {id}: another fault after failing: {fault}");
        return;
    }
    let (report, id) = {
        let mut domains = DOMAINS.lock();
        let d = &mut domains[id];
        d.failed = true;
        let trap = sfi_state(id).map(sfi::State::trap);
        let kind = trap.map(|t| (t.address, t.kind));
        let aborted = ABORTED.lock().take();
        let overflow = fault.vector == 14
            && (real_stacks(d.base).in_guard(fault.cr2)
                || (d.esp.is_some() && emulated_stacks(d.base).in_guard(fault.cr2)));
        let m = d.mechanism.name();
        let (cause, address): (String, u64) = match (violation, fault.vector, kind) {
            (None, 6, _) if aborted.is_some() => aborted
                .as_ref()
                .map_or((String::from("api"), 0), |(c, a)| (c.clone(), *a)),
            (None, 14, _) if overflow => (String::from("stack overflow"), fault.cr2),
            (Some(v), _, _) => (alloc::format!("{m}: {}", v.why()), 0),
            (None, vector, kind) => match (vector, kind) {
                (6, Some((addr, Some(k)))) => match k {
                    FaultKind::WildStore => ("sfi: store outside the domain".into(), addr),
                    FaultKind::LocksHeld => ("sfi: returned holding a lock".into(), 0),
                    FaultKind::InterruptsOff => {
                        ("sfi: returned with interrupts disabled".into(), 0)
                    }
                    FaultKind::BadCallTarget => ("sfi: call to a forbidden target".into(), addr),
                    FaultKind::Port => ("sfi: I/O port outside the policy".into(), addr),
                },
                (14, _) if matches!(d.mechanism, Mechanism::Mmu | Mechanism::Pks) => (
                    alloc::format!("{m}: {}", page_fault_cause(fault.error, fault.cr2)),
                    fault.cr2,
                ),
                (14, _) => ("page fault".into(), fault.cr2),
                (crate::fault::WATCHDOG_VECTOR, _) => ("watchdog: runaway loop".into(), 0),
                (_, _) => (fault.cause().into(), fault.cr2),
            },
        };
        // A trap inside the SFI runtime: it recorded the driver code that called it.
        let mut site = fault.rip;
        if let Some(t) = trap.filter(|t| {
            matches!(
                t.kind,
                Some(FaultKind::WildStore | FaultKind::BadCallTarget)
            )
        }) && t.site >= d.text.0
            && t.site < d.text.1
        {
            site = t.site;
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
        (report, d.id)
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
    // Nothing calls into it again: its handlers and timers are gone.
    crate::driver_api::irq::silence(id);
    crate::driver_api::timer::forget(id);
    crate::driver_api::pci::stop_dma_of(id);
    crate::iommu::detach_domain(id);
    release_key(id);
    crate::info!("domain {id} contained; kernel still up");
    crate::recovery::failed(id);
}

/// Takes a failed `pks` domain's key back: its window becomes the kernel's.
fn release_key(id: usize) {
    let mut domains = DOMAINS.lock();
    let d = &mut domains[id];
    if let Some((key, _)) = d.key.take() {
        pks::release(d.base, d.base + WINDOW, key);
    }
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
