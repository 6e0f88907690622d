//! Intel VT-d, legacy (not scalable) mode, as QEMU's `intel-iommu` models
//! it: the unit's registers, the root and context tables that pick each PCI
//! function's translation, second-level page tables (bus address → physical,
//! read/write per 4 KiB page), register-based invalidation, and the fault
//! recording registers. Register offsets and bit positions are the VT-d
//! specification's (chapter 11; root/context entries 9.1-9.3, second-level
//! entries 9.8). Policy — which device reaches what — is `iommu`'s.

use crate::memory::{PAGE_SIZE, frames, phys_to_virt};
use alloc::vec::Vec;

const CAP: u64 = 0x08;
const ECAP: u64 = 0x10;
const GCMD: u64 = 0x18;
const GSTS: u64 = 0x1c;
const RTADDR: u64 = 0x20;
const CCMD: u64 = 0x28;
const FSTS: u64 = 0x34;
const FECTL: u64 = 0x38;

/// GCMD/GSTS: translation enable, set root table pointer.
const TE: u32 = 1 << 31;
const SRTP: u32 = 1 << 30;
/// GSTS bits that are one-shot commands, not state, in a GCMD write.
const ONE_SHOT: u32 = (1 << 30) | (1 << 29) | (1 << 27) | (1 << 24);
/// Invalidation registers: busy (set by software, cleared when done).
const BUSY: u64 = 1 << 63;
/// Second-level entry: read, write.
const READ: u64 = 1;
const WRITE: u64 = 2;
/// Context entry address width field: 39-bit, three-level tables.
const AW_39: u64 = 1;
/// SAGAW bit for three-level tables.
const SAGAW_39: u64 = 1 << 9;
/// Highest bus address three levels translate.
pub const IOVA_LIMIT: u64 = 1 << 39;

/// What went wrong with the unit.
#[derive(Debug, Clone, Copy)]
pub enum VtdError {
    /// It cannot walk three-level (39-bit) tables.
    NoThreeLevelTables,
    /// A command or an invalidation did not complete.
    Timeout(&'static str),
    /// No frame for a table.
    OutOfMemory,
    /// A bus address beyond what the tables translate.
    BeyondWidth(u64),
}

impl core::fmt::Display for VtdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VtdError::NoThreeLevelTables => write!(f, "the unit cannot walk 3-level tables"),
            VtdError::Timeout(what) => write!(f, "{what} did not complete"),
            VtdError::OutOfMemory => write!(f, "no memory for a translation table"),
            VtdError::BeyondWidth(a) => write!(f, "bus address {a:#x} beyond 39 bits"),
        }
    }
}

/// One recorded DMA fault.
#[derive(Debug, Clone, Copy)]
pub struct FaultRecord {
    /// The requester: bus << 8 | device << 3 | function.
    pub source: u16,
    /// The page the request addressed.
    pub address: u64,
    /// A read (the device fetching), else a write (the device storing).
    pub read: bool,
    /// The fault reason code (VT-d appendix A).
    pub reason: u8,
}

/// A zeroed frame for a table, and its virtual address.
fn table_frame() -> Result<(u64, *mut u64), VtdError> {
    let phys = frames::alloc_frame().ok_or(VtdError::OutOfMemory)?;
    let virt = phys_to_virt(phys) as *mut u64;
    // SAFETY: a fresh frame, the kernel's alone, reached through the direct map.
    unsafe { core::ptr::write_bytes(virt, 0, (PAGE_SIZE / 8) as usize) };
    Ok((phys, virt))
}

/// Writes entry word `index` of the table at `table` as the unit will read it.
///
/// # Safety
/// `table` is a table frame of this module (512 words), `index` < 512.
unsafe fn set(table: *mut u64, index: usize, value: u64, coherent: bool) {
    // SAFETY: in bounds of a table frame (caller); volatile because the
    // unit reads it behind the compiler's back.
    unsafe {
        let p = table.add(index);
        core::ptr::write_volatile(p, value);
        if !coherent {
            core::arch::asm!("clflush [{}]", in(reg) p, options(nostack));
        }
    }
}

/// A domain's second-level page tables: bus address → physical address,
/// three levels of 512 entries, 4 KiB pages.
pub struct PageTable {
    root: u64,
    /// Every frame of the tables (freed by [`PageTable::free`]).
    frames: Vec<u64>,
    coherent: bool,
}

impl PageTable {
    /// Empty tables: no bus address reaches anything.
    pub fn new(coherent: bool) -> Result<Self, VtdError> {
        let (root, _) = table_frame()?;
        Ok(PageTable {
            root,
            frames: alloc::vec![root],
            coherent,
        })
    }

    /// Physical address of the top-level table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The last-level entry for `iova`, building the tables above it if
    /// `create`.
    fn leaf(&mut self, iova: u64, create: bool) -> Result<Option<*mut u64>, VtdError> {
        if iova >= IOVA_LIMIT {
            return Err(VtdError::BeyondWidth(iova));
        }
        let mut table = phys_to_virt(self.root) as *mut u64;
        for shift in [30, 21] {
            let i = ((iova >> shift) & 511) as usize;
            // SAFETY: `table` is one of our table frames, i < 512.
            let e = unsafe { core::ptr::read_volatile(table.add(i)) };
            let next = if e & READ != 0 {
                e & 0x000f_ffff_ffff_f000
            } else if create {
                let (phys, _) = table_frame()?;
                self.frames.push(phys);
                // SAFETY: as above; a table entry grants what the levels below grant.
                unsafe { set(table, i, phys | READ | WRITE, self.coherent) };
                phys
            } else {
                return Ok(None);
            };
            table = phys_to_virt(next) as *mut u64;
        }
        // SAFETY: a last-level table frame, index < 512.
        Ok(Some(unsafe { table.add(((iova >> 12) & 511) as usize) }))
    }

    /// Maps the page at `iova` to the frame at `phys`, readable and writable.
    pub fn map(&mut self, iova: u64, phys: u64) -> Result<(), VtdError> {
        let entry = self.leaf(iova, true)?.expect("created");
        // SAFETY: a last-level entry of our tables.
        unsafe {
            set(
                entry,
                0,
                (phys & !(PAGE_SIZE - 1)) | READ | WRITE,
                self.coherent,
            )
        };
        Ok(())
    }

    /// Unmaps the page at `iova` (the unit may still cache it: invalidate).
    pub fn unmap(&mut self, iova: u64) {
        if let Ok(Some(entry)) = self.leaf(iova, false) {
            // SAFETY: a last-level entry of our tables.
            unsafe { set(entry, 0, 0, self.coherent) };
        }
    }

    /// Where the page at `iova` leads, if it is mapped.
    pub fn translate(&mut self, iova: u64) -> Option<u64> {
        let entry = self.leaf(iova, false).ok()??;
        // SAFETY: a last-level entry of our tables.
        let e = unsafe { core::ptr::read_volatile(entry) };
        (e & (READ | WRITE) != 0).then_some((e & 0x000f_ffff_ffff_f000) | (iova & (PAGE_SIZE - 1)))
    }

    /// Gives the tables' frames back (no context entry may point at them).
    pub fn free(self) {
        for f in self.frames {
            // SAFETY: our frames, no longer referenced by the unit.
            unsafe { frames::free_frame(f) };
        }
    }
}

/// One remapping unit, with its root table and the context tables below it.
pub struct Unit {
    regs: u64,
    cap: u64,
    ecap: u64,
    root: u64,
    /// Context table of each bus (physical; 0: none yet).
    contexts: [u64; 256],
    coherent: bool,
}

impl Unit {
    /// The unit whose registers are mapped (uncached) at `regs`.
    ///
    /// # Safety
    /// `regs` maps the unit's register page, the kernel's alone.
    pub unsafe fn new(regs: u64) -> Result<Self, VtdError> {
        let mut u = Unit {
            regs,
            cap: 0,
            ecap: 0,
            root: 0,
            contexts: [0; 256],
            coherent: false,
        };
        u.cap = u.r64(CAP);
        u.ecap = u.r64(ECAP);
        if u.cap & SAGAW_39 == 0 {
            return Err(VtdError::NoThreeLevelTables);
        }
        u.coherent = u.ecap & 1 != 0;
        u.root = table_frame()?.0;
        Ok(u)
    }

    /// Whether table writes need no cache flush.
    pub fn coherent(&self) -> bool {
        self.coherent
    }

    /// (CAP, ECAP), for the log.
    pub fn capabilities(&self) -> (u64, u64) {
        (self.cap, self.ecap)
    }

    fn r32(&self, off: u64) -> u32 {
        // SAFETY: a register of the unit's page (`new`'s contract).
        unsafe { core::ptr::read_volatile((self.regs + off) as *const u32) }
    }
    fn w32(&self, off: u64, v: u32) {
        // SAFETY: as in `r32`.
        unsafe { core::ptr::write_volatile((self.regs + off) as *mut u32, v) }
    }
    fn r64(&self, off: u64) -> u64 {
        // SAFETY: as in `r32`.
        unsafe { core::ptr::read_volatile((self.regs + off) as *const u64) }
    }
    fn w64(&self, off: u64, v: u64) {
        // SAFETY: as in `r32`.
        unsafe { core::ptr::write_volatile((self.regs + off) as *mut u64, v) }
    }

    /// Spins until `done` holds of the register at `off` (bounded).
    fn wait(&self, what: &'static str, done: impl Fn(&Self) -> bool) -> Result<(), VtdError> {
        for _ in 0..10_000_000 {
            if done(self) {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(VtdError::Timeout(what))
    }

    /// Issues a global command (`bit` of GCMD) and waits for its status.
    fn command(&self, what: &'static str, bit: u32, on: bool) -> Result<(), VtdError> {
        let state = self.r32(GSTS) & !ONE_SHOT;
        self.w32(GCMD, if on { state | bit } else { state & !bit });
        self.wait(what, |u| (u.r32(GSTS) & bit != 0) == on)
    }

    /// Installs the root table and turns translation on: from now on a
    /// function without a context entry has no DMA at all.
    pub fn enable(&mut self) -> Result<(), VtdError> {
        self.w32(FECTL, 1 << 31); // fault events masked: the kernel polls
        self.w64(RTADDR, self.root);
        self.command("setting the root table", SRTP, true)?;
        self.invalidate_contexts()?;
        self.invalidate_all()?;
        self.command("enabling translation", TE, true)
    }

    /// Turns translation off (DMA passes untranslated).
    pub fn disable(&mut self) -> Result<(), VtdError> {
        self.command("disabling translation", TE, false)
    }

    /// Points function `source` (bus << 8 | devfn) at `tables` under domain
    /// id `did`, or (None) at nothing; the caller invalidates.
    pub fn set_context(&mut self, source: u16, tables: Option<(u64, u16)>) -> Result<(), VtdError> {
        let bus = usize::from(source >> 8);
        if self.contexts[bus] == 0 {
            if tables.is_none() {
                return Ok(());
            }
            let (ctx, _) = table_frame()?;
            self.contexts[bus] = ctx;
            let root = phys_to_virt(self.root) as *mut u64;
            // SAFETY: root table frame, 2 words per bus entry (< 512).
            unsafe {
                set(root, bus * 2 + 1, 0, self.coherent);
                set(root, bus * 2, ctx | 1, self.coherent);
            }
        }
        let ctx = phys_to_virt(self.contexts[bus]) as *mut u64;
        let i = usize::from(source & 0xff) * 2;
        // SAFETY: a context table frame, 2 words per function (< 512). The
        // low word (present bit) goes last when setting, first when clearing.
        unsafe {
            match tables {
                Some((root, did)) => {
                    set(ctx, i, 0, self.coherent);
                    set(ctx, i + 1, AW_39 | (u64::from(did) << 8), self.coherent);
                    set(ctx, i, root | 1, self.coherent);
                }
                None => {
                    set(ctx, i, 0, self.coherent);
                    set(ctx, i + 1, 0, self.coherent);
                }
            }
        }
        Ok(())
    }

    /// Drops every cached context entry.
    pub fn invalidate_contexts(&self) -> Result<(), VtdError> {
        self.w64(CCMD, BUSY | (1 << 61));
        self.wait("context-cache invalidation", |u| u.r64(CCMD) & BUSY == 0)
    }

    fn iotlb(&self) -> u64 {
        ((self.ecap >> 8) & 0x3ff) * 16
    }

    fn invalidate_iotlb(&self, granularity: u64, did: u16) -> Result<(), VtdError> {
        let drain = ((self.cap >> 55) & 1) << 49 | ((self.cap >> 54) & 1) << 48;
        self.w64(
            self.iotlb() + 8,
            BUSY | (granularity << 60) | drain | (u64::from(did) << 32),
        );
        self.wait("IOTLB invalidation", |u| u.r64(u.iotlb() + 8) & BUSY == 0)
    }

    /// Drops every cached translation.
    pub fn invalidate_all(&self) -> Result<(), VtdError> {
        self.invalidate_iotlb(1, 0)
    }

    /// Drops domain `did`'s cached translations.
    pub fn invalidate_domain(&self, did: u16) -> Result<(), VtdError> {
        self.invalidate_iotlb(2, did)
    }

    /// Drops the cached translation of one page of domain `did` (the whole
    /// domain's where the unit cannot select pages).
    pub fn invalidate_page(&self, did: u16, iova: u64) -> Result<(), VtdError> {
        if self.cap & (1 << 39) == 0 {
            return self.invalidate_domain(did);
        }
        self.w64(self.iotlb(), iova & !(PAGE_SIZE - 1));
        self.invalidate_iotlb(3, did)
    }

    /// Takes (and clears) every recorded fault.
    pub fn take_faults(&self) -> Vec<FaultRecord> {
        let mut out = Vec::new();
        if self.r32(FSTS) & 0b11 == 0 {
            return out;
        }
        let base = ((self.cap >> 24) & 0x3ff) * 16;
        let count = ((self.cap >> 40) & 0xff) + 1;
        for i in 0..count {
            let rec = base + i * 16;
            let hi = self.r64(rec + 8);
            if hi & (1 << 63) == 0 {
                continue;
            }
            let lo = self.r64(rec);
            self.w32(rec + 12, 1 << 31); // F is write-1-to-clear
            out.push(FaultRecord {
                source: hi as u16,
                address: lo & !(PAGE_SIZE - 1),
                read: hi & (1 << 62) != 0,
                reason: (hi >> 32) as u8,
            });
        }
        self.w32(FSTS, 0b1); // clear a fault overflow
        out
    }
}
