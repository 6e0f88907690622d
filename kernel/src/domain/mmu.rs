//! The MMU mechanism, Nooks' original one: each domain runs on page tables of
//! its own in which the kernel is mapped read-only, its window is writable,
//! and other domains' windows are absent. Crossing into the domain switches
//! stack and CR3 (see `gate`); every call it makes into the kernel goes
//! through a gate that switches back. With PCIDs each domain has its own, and
//! CR3 loads keep the TLB; without them every load flushes it.
//!
//! What page tables cannot see: a privileged instruction (the driver still
//! runs in ring 0), a jump into kernel text (mapped executable, the gates and
//! interrupt entry live there), stores into the interrupt stacks (the CPU
//! pushes interrupt frames there before the kernel can switch tables).

use crate::kassert;
use crate::memory::{INTERRUPT_STACKS, paging};
use core::sync::atomic::{AtomicU64, Ordering};

/// CR3 loads made by the mechanism (gates, interrupt entry and exit).
pub static CR3_WRITES: AtomicU64 = AtomicU64::new(0);
/// Whole-TLB flushes (every PCID) after kernel page-table changes.
pub static FULL_FLUSHES: AtomicU64 = AtomicU64::new(0);
/// Flushing CR3 loads made with PCIDs on (a domain's first entry).
static FRESH_FLUSHES: AtomicU64 = AtomicU64::new(0);

/// A domain's address space (its stacks are the domain's, see `domain`).
pub struct Space {
    tables: paging::AddressSpace,
    pcid: u64,
    fresh: bool,
}

/// Why a domain's address space could not be built.
#[derive(Debug, Clone, Copy)]
pub enum SpaceError {
    /// Page tables.
    Map(paging::MapError),
    /// No room for its stacks in its window.
    NoStack,
    /// No protection key for a `pks` domain.
    NoKey(super::pks::KeyError),
}

impl core::fmt::Display for SpaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpaceError::Map(e) => write!(f, "domain page tables: {e}"),
            SpaceError::NoStack => write!(f, "no room for the domain's stacks"),
            SpaceError::NoKey(e) => write!(f, "{e}"),
        }
    }
}

/// Builds domain `id`'s view of the kernel for the window [lo, hi).
pub fn build(id: usize, lo: u64, hi: u64) -> Result<Space, SpaceError> {
    let tables = paging::with_kernel(|k| k.domain_view(lo, hi, INTERRUPT_STACKS))
        .map_err(SpaceError::Map)?;
    Ok(Space {
        tables,
        pcid: if crate::arch::pcid_enabled() {
            (id as u64 + 1) & 0xfff
        } else {
            0
        },
        fresh: true,
    })
}

impl Space {
    /// The CR3 value that enters this space: its PCID, and the no-flush bit
    /// unless the PCID may hold stale entries (its first use).
    pub fn cr3(&mut self) -> u64 {
        let base = self.tables.root() | self.pcid;
        if !crate::arch::pcid_enabled() {
            return base;
        }
        if self.fresh {
            self.fresh = false;
            FRESH_FLUSHES.fetch_add(1, Ordering::Relaxed);
            return base;
        }
        base | crate::arch::CR3_NOFLUSH.load(Ordering::Relaxed)
    }
}

/// The mechanism's counters: (CR3 loads, TLB flushes). With PCIDs only real
/// flushes count; without them every CR3 load is a flush.
pub fn counters() -> (u64, u64) {
    let writes = CR3_WRITES.load(Ordering::Relaxed);
    let full = FULL_FLUSHES.load(Ordering::Relaxed);
    let flushes = if crate::arch::pcid_enabled() {
        full + FRESH_FLUSHES.load(Ordering::Relaxed)
    } else {
        writes + full
    };
    (writes, flushes)
}

/// The stack pointer of the running code.
pub fn rsp() -> u64 {
    let v: u64;
    // SAFETY: reading RSP has no side effects.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

crate::ktest! {
    fn a_domain_view_confines_writes_to_its_window() {
        use crate::memory::{DOMAIN_AREA, PAGE_SIZE, frames};
        // A window the tests own: the last one of the domain area.
        let lo = DOMAIN_AREA.1 - super::WINDOW;
        let page = lo + super::WRITABLE_OFFSET;
        paging::with_kernel(|k| k.prepare(lo, lo + super::WINDOW)).map_err(|e| alloc::format!("{e}"))?;
        let frame = frames::alloc_frame().ok_or("no frame")?;
        paging::kernel_map(page, frame, paging::flags::DATA).map_err(|e| alloc::format!("{e}"))?;
        let view = paging::with_kernel(|k| k.domain_view(lo, lo + super::WINDOW, INTERRUPT_STACKS))
            .map_err(|e| alloc::format!("{e}"))?;
        static KERNEL_DATA: AtomicU64 = AtomicU64::new(0);

        let data = &raw const KERNEL_DATA as u64;
        let gate = crate::driver_api::kernel_gate("kfree").ok_or("no gate")?;
        let text = crate::fault::catch::<(), fn()> as *const () as u64;
        let ist = crate::arch::gdt::ist_top(1) - 8;
        kassert!(view.access(page) == Some((true, false)), "own window: {:?}", view.access(page));
        kassert!(view.access(data) == Some((false, false)), "kernel data: {:?}", view.access(data));
        kassert!(view.access(lo - PAGE_SIZE).is_none() || lo - PAGE_SIZE < DOMAIN_AREA.0, "the window before is visible");
        kassert!(view.access(DOMAIN_AREA.0 + super::WRITABLE_OFFSET).is_none(), "another window is visible");
        kassert!(view.access(gate).is_some_and(|(w, x)| !w && x), "the gate: {:?}", view.access(gate));
        kassert!(view.access(text).is_some_and(|(w, x)| !w && !x), "kernel text: {:?}", view.access(text));
        kassert!(view.access(ist).is_some_and(|(w, _)| w), "interrupt landing pad: {:?}", view.access(ist));
        let handler_stack = ist.wrapping_add(crate::arch::gdt::IST_FRAME_DELTA.load(Ordering::Relaxed));
        kassert!(handler_stack != ist, "handlers run off the landing pads");
        kassert!(view.access(handler_stack) == Some((false, false)), "handler stack: {:?}", view.access(handler_stack));
        // The kernel's own view is unchanged.
        let own = paging::with_kernel(|k| (k.access(data), k.access(text)));
        kassert!(own == (Some((true, false)), Some((false, true))), "kernel view: {:?}", own);
        paging::kernel_unmap(page).map_err(|e| alloc::format!("{e}"))?;
        Ok(())
    }
}
