//! The driver interface and the isolation policy, as data.
//!
//! One list of the kernel functions a driver may import, read alike by the
//! kernel (which implements and wraps them), the loader (which refuses an
//! object importing anything else) and nooks-cc (which checks indirect calls
//! against it).
#![no_std]
#![deny(missing_docs)]
