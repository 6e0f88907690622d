//! Loads x86-64 ELF relocatable driver objects into memory the kernel provides.
#![no_std]
#![deny(missing_docs)]
extern crate alloc;

pub mod archive;
