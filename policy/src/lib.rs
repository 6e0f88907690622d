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
    /// The `abi` line of `.nooks` for these values.
    pub const LINE: &str = "abi stack-args 12 estack 1048576 state 328 shared-limit 4096";

    /// The layout of a sandboxed object's runtime state, `__nooks_sfi`: byte
    /// offsets of its 64-bit fields. The kernel sets the window (`LO`, `HI`
    /// and `LIMIT` together, see [`state::limit`]) and maintains `LOCKS`; the
    /// rewritten code keeps `VIF` and records refused stores and calls.
    pub mod state {
        /// Lowest writable address of the window.
        pub const LO: i32 = 0;
        /// One past the highest writable address.
        pub const HI: i32 = 8;
        /// The virtual interrupt flag (1 = enabled).
        pub const VIF: i32 = 16;
        /// Locks held by the domain (maintained by the kernel's lock wrappers).
        pub const LOCKS: i32 = 24;
        /// The address of the last refused store or call.
        pub const FAULT_ADDR: i32 = 32;
        /// Which check failed (see nooks-cc's `FaultKind`).
        pub const FAULT_KIND: i32 = 40;
        /// The return address into the driver code whose store or call was refused.
        pub const FAULT_SITE: i32 = 48;
        /// Number of grants in use.
        pub const NGRANTS: i32 = 56;
        /// Grants: (lo, hi) pairs.
        pub const GRANTS: i32 = 64;
        /// Capacity of the grant table.
        pub const MAX_GRANTS: usize = 16;
        /// The inline check's bound for ranges of up to [`SHARED_LIMIT`] bytes:
        /// `off = addr - LO` passes when `off < LIMIT`.
        pub const LIMIT: i32 = GRANTS + 16 * MAX_GRANTS as i32;
        /// Size of the state.
        pub const SIZE: usize = LIMIT as usize + 8;
        /// The longest range the inline check compares against `LIMIT`: a
        /// page, so a struct's fields or two parallel arrays indexed alike
        /// (`skb[i]`, `map[i]`) share one plain check; only stores in the
        /// window's last page take the slow path for it, which accepts them.
        pub const SHARED_LIMIT: u64 = 4096;

        /// `LIMIT` for the window `[lo, hi)`: a range of up to
        /// [`SHARED_LIMIT`] bytes at `lo + off` lies inside it when `off <
        /// limit` (near the window's end a smaller store fails this
        /// conservative test and the slow path accepts it).
        pub const fn limit(lo: u64, hi: u64) -> u64 {
            let span = hi.wrapping_sub(lo);
            if hi >= lo && span >= SHARED_LIMIT {
                span - SHARED_LIMIT + 1
            } else {
                0
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn line_matches_the_constants() {
            let want = alloc::format!(
                "abi stack-args {} estack {} state {} shared-limit {}",
                super::STACK_ARGS,
                super::ESTACK_SIZE,
                super::state::SIZE,
                super::state::SHARED_LIMIT
            );
            assert_eq!(super::LINE, want);
        }

        #[test]
        fn the_limit_admits_exactly_the_ranges_inside_the_window() {
            use super::state::{SHARED_LIMIT, limit};
            let (lo, hi) = (0x1000u64, 0x2000u64);
            let l = limit(lo, hi);
            assert_eq!(l, 0x1000 - SHARED_LIMIT + 1);
            // The last offset that passes still has SHARED_LIMIT bytes of room.
            assert!((l - 1) + SHARED_LIMIT <= hi - lo);
            assert_eq!(
                limit(lo, lo + SHARED_LIMIT - 1),
                0,
                "too small: nothing passes"
            );
            assert_eq!(limit(hi, lo), 0, "an inverted window admits nothing");
            assert_eq!(limit(0, u64::MAX), u64::MAX - SHARED_LIMIT + 1);
        }
    }
}
