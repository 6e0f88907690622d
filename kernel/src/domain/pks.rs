//! The protection-key mechanism (Intel PKS, protection keys for supervisor
//! pages): one page table for everyone, a 4-bit key in every page, and a
//! register, IA32_PKRS, that says per key whether supervisor code may read
//! and write pages of that key. Kernel pages keep key 0; each `pks` domain's
//! window gets a key of its own; crossing into the domain loads rights that
//! leave its own key writable, the kernel's (key 0) read-only and every other
//! domain's inaccessible, and crossing back loads 0 (everything allowed). A
//! crossing is one `wrmsr` instead of a CR3 load, and the TLB survives it.
//!
//! Where the rights change: the kernel → driver gate (`gate::call`, in and
//! out), the driver → kernel gates (`nooks_pkgate_<export>`, out and back in),
//! and the interrupt entry path (an interrupt or fault inside a domain runs
//! its handler with the kernel's rights and returns with the domain's).
//!
//! Key 15 belongs to the interrupt landing pads: the CPU pushes an interrupt's
//! frame there before any kernel code runs, so every domain's rights leave it
//! writable (the entry path copies the frame to a handler stack of key 0
//! before it trusts anything, as for `mmu`). Keys 1-14 go to domains: at most
//! 14 `pks` domains live at once; the 15th is refused (its load fails with
//! the reason), and a failed domain's key comes back when its window is given
//! key 0.
//!
//! What keys cannot see: execution (PKS governs data accesses only, so a
//! driver can jump into kernel text, which then runs with the driver's
//! rights: its first store to kernel data faults, but loads, port I/O and
//! privileged instructions run) and privileged instructions themselves — a
//! driver in ring 0 can `wrmsr` IA32_PKRS to 0. `sfi` closes both for
//! rewritten code (checked indirect calls, privileged instructions refused at
//! build time); for original objects, CET indirect-branch tracking would
//! close jumps into the middle of kernel functions (not modelled by TCG).

use crate::memory::{INTERRUPT_STACKS, paging};
use crate::sync::IrqMutex;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The interrupt landing pads' key, writable under every domain's rights.
pub const IST_KEY: u64 = 15;
/// Keys domains may have: 1..=14.
const DOMAIN_KEYS: core::ops::RangeInclusive<u64> = 1..=14;

/// The CPU has PKS and the kernel turned it on.
static AVAILABLE: AtomicBool = AtomicBool::new(false);
/// A `pks` domain exists: the interrupt entry path saves and switches
/// IA32_PKRS (read by the entry path's assembly).
#[unsafe(no_mangle)]
pub static NOOKS_PKS_IN_USE: AtomicBool = AtomicBool::new(false);
/// IA32_PKRS writes made by the mechanism (gates, interrupt entry and exit).
pub static PKRS_WRITES: AtomicU64 = AtomicU64::new(0);

/// Keys in use: bit k for key k.
static KEYS: IrqMutex<u16> = IrqMutex::new(0);

/// Turns PKS on if the CPU has it and gives the interrupt landing pads their
/// key; says whether `pks` domains can exist.
pub fn init() -> bool {
    if !crate::arch::enable_pks() {
        return false;
    }
    paging::kernel_set_key(INTERRUPT_STACKS, INTERRUPT_STACKS + (1 << 30), IST_KEY);
    AVAILABLE.store(true, Ordering::SeqCst);
    true
}

/// Whether `pks` domains can exist here.
pub fn available() -> bool {
    AVAILABLE.load(Ordering::SeqCst)
}

/// Why a `pks` domain could not get a key.
#[derive(Debug, Clone, Copy)]
pub enum KeyError {
    /// The CPU has no PKS (or the kernel did not turn it on).
    Unavailable,
    /// Keys 1-14 are all taken.
    Exhausted,
}

impl core::fmt::Display for KeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeyError::Unavailable => {
                write!(
                    f,
                    "the CPU has no protection keys for supervisor pages (PKS)"
                )
            }
            KeyError::Exhausted => write!(
                f,
                "no protection key left: at most 14 pks domains live at once (keys 1-14; 0 is the kernel's, 15 the interrupt stacks')"
            ),
        }
    }
}

/// Gives the window [lo, hi) a free key; returns the key.
pub fn assign(lo: u64, hi: u64) -> Result<u64, KeyError> {
    if !available() {
        return Err(KeyError::Unavailable);
    }
    let key = {
        let mut keys = KEYS.lock();
        let key = DOMAIN_KEYS
            .clone()
            .find(|k| *keys & (1 << k) == 0)
            .ok_or(KeyError::Exhausted)?;
        *keys |= 1 << key;
        key
    };
    paging::kernel_set_key(lo, hi, key);
    NOOKS_PKS_IN_USE.store(true, Ordering::SeqCst);
    Ok(key)
}

/// Gives the pages of [lo, hi) mapped since the window got `key` (MMIO)
/// that key too.
pub fn extend(lo: u64, hi: u64, key: u64) {
    paging::kernel_set_key(lo, hi, key);
}

/// Takes `key` back from a failed domain: its window [lo, hi) becomes the
/// kernel's (key 0: read-only to every domain), and the key is free again.
pub fn release(lo: u64, hi: u64, key: u64) {
    paging::kernel_set_key(lo, hi, 0);
    *KEYS.lock() &= !(1 << key);
}

/// Access disable, write disable for key `k`.
const fn ad(k: u64) -> u64 {
    1 << (2 * k)
}
const fn wd(k: u64) -> u64 {
    1 << (2 * k + 1)
}

/// The IA32_PKRS value a domain with `key` runs under: its own pages and the
/// interrupt landing pads writable, the kernel's read-only, everything else
/// (other domains, unassigned keys) inaccessible.
pub fn rights(key: u64) -> u64 {
    (0..16u64)
        .filter(|&k| k != key && k != IST_KEY)
        .map(|k| if k == 0 { wd(0) } else { ad(k) | wd(k) })
        .fold(0, |a, b| a | b)
}

crate::ktest! {
    fn protection_key_rights_leave_a_domain_its_own_pages() {
        use crate::kassert;
        let r = rights(3);
        kassert!(r & (ad(3) | wd(3)) == 0, "own key restricted: {:#x}", r);
        kassert!(r & wd(0) != 0 && r & ad(0) == 0, "kernel not read-only: {:#x}", r);
        kassert!(r & (ad(4) | wd(4)) == ad(4) | wd(4), "another key accessible: {:#x}", r);
        kassert!(r & (ad(IST_KEY) | wd(IST_KEY)) == 0, "landing pads not writable: {:#x}", r);
        kassert!(r >> 32 == 0, "reserved bits set: {:#x}", r);
        Ok(())
    }
}
