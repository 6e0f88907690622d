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
