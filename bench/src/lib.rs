//! The host side of nooks: build, boot, measure, report.
//!
//! The kernel speaks over its serial console (docs/ARCHITECTURE.md fixes the
//! protocol); this crate builds what QEMU boots ([`artifacts`]), packs boot
//! modules ([`archive`], [`symbols`]), boots QEMU with a timeout ([`qemu`]) and
//! reads the verdict and results back ([`serial`]). The `nooks-bench` binary
//! and the integration tests in `tests/` are thin layers over it.
#![deny(missing_docs)]

pub mod archive;
pub mod artifacts;
pub mod campaign;
pub mod compare;
pub mod faults;
pub mod feed;
pub mod plot;
pub mod qemu;
pub mod rewrite;
pub mod serial;
pub mod symbols;
pub mod verify;
