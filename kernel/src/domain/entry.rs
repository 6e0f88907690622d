//! Entries: the driver code the kernel may call.
//!
//! A driver hands the kernel code addresses to call back — its probe and
//! remove, its `net_device_ops`, interrupt handlers, timer callbacks — and
//! the kernel calls them from kernel context. An address taken at face value
//! would let a driver make the kernel call kernel code with the driver's
//! arguments, or jump into the middle of a rewritten function past the checks
//! before that point. So the kernel calls only an [`Entry`]: an address
//! checked, when the driver registered it, to be the start of one of the
//! registering domain's own functions, and kept in kernel memory from then
//! on (the kernel never calls an address it reads from driver memory later).

use super::{DOMAINS, current, misuse};

/// A checked entry point of a domain: the only thing [`super::call`] calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    addr: u64,
    domain: usize,
}

impl Entry {
    /// Its address.
    pub fn addr(self) -> u64 {
        self.addr
    }

    /// The domain it belongs to.
    pub fn domain(self) -> usize {
        self.domain
    }
}

/// The entry at `addr` of domain `id`, if it is one of its functions (for
/// the loader, which finds `init_module` by symbol).
pub fn of(id: usize, addr: u64) -> Option<Entry> {
    DOMAINS
        .lock()
        .get(id)
        .is_some_and(|d| d.is_entry(addr))
        .then_some(Entry { addr, domain: id })
}

/// Checks `addr`, which the current domain registers through `export`'s
/// argument `arg`: it must be one of that domain's entry points, or the
/// domain fails with a cause naming the export and the argument. A null
/// address is no entry (`None`, no failure). Called by the kernel itself
/// (no current domain), the address must be some domain's entry.
pub fn register(export: &'static str, arg: &'static str, addr: u64) -> Option<Entry> {
    if addr == 0 {
        return None;
    }
    let id = match current() {
        Some(id) => id,
        None => super::owning(addr)?,
    };
    if let Some(e) = of(id, addr) {
        return Some(e);
    }
    let why = match DOMAINS.lock().get(id) {
        Some(d) if d.is_function(addr) => "not an entry point the domain's policy declares",
        Some(d) if addr >= d.text.0 && addr < d.text.1 => {
            "not the start of one of the domain's functions"
        }
        _ => "not code of the registering domain",
    };
    misuse(export, arg, addr, why);
    None
}
