//! The SFI mechanism's kernel side: the runtime state (`__nooks_sfi`) of an
//! object nooks-cc rewrote, which its code reads (the window's bounds for the
//! slow path, the lock count its entries compare at return) and writes (the
//! virtual interrupt flag, a refused store's address and cause). The kernel
//! places it in the object's runtime area, outside the window's writable
//! part, so no store the object's checks allow can change it.

use nooks_policy::abi::state as layout;

/// An SFI object's `__nooks_sfi`.
#[derive(Debug, Clone, Copy)]
pub struct State(u64);

/// What the object's code recorded when it trapped.
#[derive(Debug, Clone, Copy)]
pub struct Trap {
    /// The refused address (or port).
    pub address: u64,
    /// Which check (None: the object recorded no kind the ABI knows).
    pub kind: Option<nooks_policy::abi::FaultKind>,
    /// The driver code that asked.
    pub site: u64,
}

impl State {
    /// The state at `addr`.
    ///
    /// # Safety
    /// `addr` is the object's `__nooks_sfi`, `layout::SIZE` bytes inside its
    /// runtime area, mapped read-write for as long as the domain exists (a
    /// failed domain's window is never unmapped).
    pub unsafe fn new(addr: u64) -> State {
        State(addr)
    }

    /// Its address.
    pub fn addr(self) -> u64 {
        self.0
    }

    fn field<T>(self, offset: i32) -> *mut T {
        (self.0 + offset as u64) as *mut T
    }

    /// Gives the slow path the window's bounds.
    pub fn confine(self, lo: u64, hi: u64) {
        for (field, value) in [(layout::LO, lo), (layout::HI, hi)] {
            // SAFETY: a u64 field of the state (`new`'s contract).
            unsafe { self.field::<u64>(field).write_volatile(value) };
        }
    }

    /// Adds `delta` to the lock count the object's entries compare.
    pub fn add_locks(self, delta: i64) {
        let p = self.field::<u32>(layout::LOCKS);
        // SAFETY: the 32-bit LOCKS field of the state (`new`'s contract).
        unsafe { p.write_volatile(p.read_volatile().wrapping_add(delta as u32)) };
    }

    /// What the object's code recorded at its last trap.
    pub fn trap(self) -> Trap {
        // SAFETY: u64 fields of the state (`new`'s contract).
        unsafe {
            Trap {
                address: self.field::<u64>(layout::FAULT_ADDR).read_volatile(),
                kind: nooks_policy::abi::FaultKind::from_recorded(
                    self.field::<u64>(layout::FAULT_KIND).read_volatile(),
                ),
                site: self.field::<u64>(layout::FAULT_SITE).read_volatile(),
            }
        }
    }
}
