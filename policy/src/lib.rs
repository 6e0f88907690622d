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
    /// The `abi` line of `.nooks` for these values.
    pub const LINE: &str = "abi stack-args 12 estack 1048576";

    #[cfg(test)]
    mod tests {
        #[test]
        fn line_matches_the_constants() {
            let want = alloc::format!(
                "abi stack-args {} estack {}",
                super::STACK_ARGS,
                super::ESTACK_SIZE
            );
            assert_eq!(super::LINE, want);
        }
    }
}
