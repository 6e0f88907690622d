//! The driver interface and the isolation policy, as data.
//!
//! One list of the kernel functions a driver may import ([`EXPORTS`]), read
//! alike by the kernel (which implements and wraps them), the loader's caller
//! (which refuses an object importing anything else) and nooks-cc (which checks
//! indirect calls against it); the driver entry points and the invariants that
//! hold at their return ([`entries`]); and per-driver policies ([`file`]):
//! which imports a driver may use and which I/O ports it may touch.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
extern crate alloc;

pub mod entries;
pub mod exports;
pub mod file;

pub use exports::{Category, EXPORTS, Export, export, is_exported};

/// Whether `name` is an entry point the kernel finds by symbol
/// (`init_module`, `cleanup_module`): every driver has them, whatever its
/// policy's `entry` lines say.
pub fn is_named_entry(name: &str) -> bool {
    entries::NAMED_ENTRIES.iter().any(|(n, _)| *n == name)
}

/// The ABI between nooks-cc's output and the kernel, checked through the
/// `.nooks` metadata section so a mismatched object is refused, not run.
pub mod abi {
    /// Caller stack words a native entry copies (and a call to native code passes).
    pub const STACK_ARGS: usize = 12;
    /// Bytes of emulated stack a rewritten object carries.
    pub const ESTACK_SIZE: usize = 1 << 20;
    /// The section of a sandboxed object that holds its runtime state
    /// (`__nooks_sfi`): nooks-cc puts it there, the loader gives it an area of
    /// its own, and the kernel places that area outside the window's writable
    /// part.
    pub const STATE_SECTION: &str = ".nooks.state";
    /// The symbol whose value is minus the window's lowest writable address
    /// (`-LO`): every store check's displacement is relocated against it, so
    /// the bound is an immediate in each domain's copy of the code. A
    /// sandboxed object defines it weak and absolute, 0; the kernel's loader
    /// gives it the domain's value.
    pub const WINDOW_SYMBOL: &str = "__nooks_window";
    /// The runtime state of a sandboxed object (global, in [`STATE_SECTION`]).
    pub const STATE_SYMBOL: &str = "__nooks_sfi";
    /// The emulated stack pointer (8 bytes in [`STATE_SECTION`]).
    pub const ESP_SYMBOL: &str = "__nooks_esp";
    /// The indirect-call targets: a count, then that many addresses.
    pub const TARGETS_SYMBOL: &str = "__nooks_sfi_targets";
    /// The store check's out-of-line slow path, `(addr - lo, size)`, which
    /// returns only if the range is writable (and preserves every register).
    pub const SLOW_PATH: &str = "__nooks_sfi_slow";
    /// The indirect-call check, `(target)`, which returns only if the target
    /// is in [`TARGETS_SYMBOL`]'s table.
    pub const CHECK_CALL: &str = "__nooks_sfi_check_call";
    /// Bytes of real stack one function of a sandboxed object may use below
    /// its return address: every domain stack sits above an unmapped guard at
    /// least this large plus a page, so a deeper frame faults in the guard
    /// instead of writing below it.
    pub const MAX_FRAME: u64 = 32 << 10;

    /// Whether the kernel may enter a driver's function of this name from
    /// outside (an entry point or callback): not nooks-cc's runtime
    /// (`__nooks*`) nor a rewritten function's inner body (`*.nooks*`), which
    /// only the object's own code calls.
    pub fn is_entry_name(name: &str) -> bool {
        !name.starts_with("__nooks") && !name.contains(".nooks")
    }

    /// The `abi` line of `.nooks` for these values.
    pub const LINE: &str =
        "abi stack-args 12 estack 1048576 state 312 span 29360128 window __nooks_window";

    /// Why a rewritten object's check trapped: what it stores in
    /// `__nooks_sfi`'s [`state::FAULT_KIND`] before it traps (with trap code
    /// `10 + kind`), and what the kernel reads back to name the cause.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum FaultKind {
        /// A store outside the window and every grant.
        WildStore = 1,
        /// An entry point returned holding a different number of locks.
        LocksHeld = 2,
        /// An entry point returned with the virtual interrupt flag changed.
        InterruptsOff = 3,
        /// An indirect call to something that is neither an entry nor an import.
        BadCallTarget = 4,
        /// `in`/`out` on a port outside the policy's ranges.
        Port = 5,
    }

    impl FaultKind {
        /// Every kind.
        pub const ALL: [FaultKind; 5] = [
            FaultKind::WildStore,
            FaultKind::LocksHeld,
            FaultKind::InterruptsOff,
            FaultKind::BadCallTarget,
            FaultKind::Port,
        ];

        /// The kind a recorded `FAULT_KIND` value names, if any.
        pub fn from_recorded(v: u64) -> Option<FaultKind> {
            Self::ALL.into_iter().find(|k| *k as u64 == v)
        }
    }

    /// The x86-64 ELF relocation types nooks-cc reads and writes (System V
    /// psABI numbers), by name.
    pub mod reloc {
        /// `S + A`, 64 bits.
        pub const R_X86_64_64: u32 = 1;
        /// `S + A - P`, 32 bits signed.
        pub const R_X86_64_PC32: u32 = 2;
        /// `L + A - P` (a call or jump), 32 bits signed.
        pub const R_X86_64_PLT32: u32 = 4;
        /// `S + A`, 32 bits zero-extended.
        pub const R_X86_64_32: u32 = 10;
        /// `S + A`, 32 bits sign-extended.
        pub const R_X86_64_32S: u32 = 11;
    }

    /// The layout of a sandboxed object's runtime state, `__nooks_sfi`: byte
    /// offsets of its fields. The kernel sets the window (`LO`, `HI`) and
    /// maintains `LOCKS`; the rewritten code keeps `VIF` and records refused
    /// stores and calls.
    ///
    /// The rewritten code has `-LO` as a link-time constant
    /// ([`WINDOW_SYMBOL`]) and compares against a constant: every window is
    /// [`state::SPAN`] bytes, so a store's check is
    /// `lea off, [addr - LO]; cmp off, imm; jae`, and holds no register
    /// across the function. `LO` here serves the slow path, which must agree.
    pub mod state {
        /// Lowest writable address of the window.
        pub const LO: i32 = 0;
        /// One past the highest writable address: `LO + SPAN` for a kernel
        /// window (the inline check assumes `HI - LO >= SPAN`; the slow path
        /// reads `HI`).
        pub const HI: i32 = 8;
        /// The virtual interrupt flag (1 = enabled), 32 bits.
        pub const VIF: i32 = 16;
        /// Locks held by the domain (maintained by the kernel's lock
        /// wrappers), 32 bits, beside `VIF`: an entry point's return compares
        /// the one 64-bit word [`INVARIANTS`] against its value at entry.
        pub const LOCKS: i32 = 20;
        /// `VIF` and `LOCKS` as one 64-bit word.
        pub const INVARIANTS: i32 = VIF;
        /// The address of the last refused store or call.
        pub const FAULT_ADDR: i32 = 24;
        /// Which check failed (see nooks-cc's `FaultKind`).
        pub const FAULT_KIND: i32 = 32;
        /// The return address into the driver code whose store or call was refused.
        pub const FAULT_SITE: i32 = 40;
        /// Number of grants in use.
        pub const NGRANTS: i32 = 48;
        /// Grants: (lo, hi) pairs.
        pub const GRANTS: i32 = 56;
        /// Capacity of the grant table.
        pub const MAX_GRANTS: usize = 16;
        /// Size of the state.
        pub const SIZE: usize = GRANTS as usize + 16 * MAX_GRANTS;
        /// Bytes of every domain's writable window, `HI - LO`: the kernel's
        /// windows are this size, and the inline check compares against a
        /// constant derived from it.
        pub const SPAN: u64 = 28 << 20;
        /// The inline check's bound for a range of `len` bytes, an immediate
        /// in the code: the range at `lo + off` lies inside a window of
        /// [`SPAN`] bytes when `off < limit(len)`; 0 (nothing passes inline:
        /// the slow path decides) for a range longer than the window.
        pub const fn limit(len: u64) -> u64 {
            if len <= SPAN { SPAN - len + 1 } else { 0 }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn line_matches_the_constants() {
            let want = alloc::format!(
                "abi stack-args {} estack {} state {} span {} window {}",
                super::STACK_ARGS,
                super::ESTACK_SIZE,
                super::state::SIZE,
                super::state::SPAN,
                super::WINDOW_SYMBOL
            );
            assert_eq!(super::LINE, want);
        }

        #[test]
        fn the_limit_admits_exactly_the_ranges_inside_the_window() {
            use super::state::{SPAN, limit};
            // The last offset that passes still has room for the whole range.
            for len in [1, 8, 4096, SPAN] {
                assert!((limit(len) - 1) + len <= SPAN, "{len}");
            }
            assert_eq!(limit(SPAN + 1), 0, "longer than the window: nothing passes");
        }

        #[test]
        fn the_invariants_are_one_word() {
            use super::state::{INVARIANTS, LOCKS, VIF};
            assert_eq!((VIF, LOCKS), (INVARIANTS, INVARIANTS + 4));
        }
    }
}
