//! Loads x86-64 ELF relocatable driver objects into memory the kernel provides.
//!
//! `no_std` + `alloc`, so the same code runs in the kernel and in host tests.
//! Three steps, each a module:
//!
//! 1. [`Object::parse`] (`object`): read the ELF with goblin and validate every
//!    index and range the later steps use (sections inside the file, symbol and
//!    relocation indexes, alignments, sizes, supported relocation types). Input
//!    is untrusted: every defect is a [`LoadError`], never a panic.
//! 2. [`Layout::of`] (`layout`): place loaded sections into three areas — text
//!    (executable, never writable once loaded), rodata, data (copied data, then
//!    bss, COMMON blocks and the GOT) — so the kernel can map each with its own
//!    permissions.
//! 3. [`load`] (`load`, `relocate`): copy, zero, resolve imports through the
//!    kernel's [`Resolver`], apply relocations with overflow checks, and return
//!    the image's symbols.
//!
//! Weak undefined symbols the resolver lacks resolve to 0, as a static linker
//! would. The kernel writes through one mapping and runs through another, so
//! each area carries both its bytes and its run-time address.
//!
//! ```no_run
//! # fn demo(bytes: &[u8], text: &mut [u8], ro: &mut [u8], data: &mut [u8], rt: &mut [u8]) -> Result<(), nooks_loader::LoadError> {
//! use nooks_loader::{Layout, Object, Placement, Target, load};
//! let object = Object::parse(bytes)?;
//! let layout = Layout::of(&object);
//! let mut placement = Placement {
//!     text: Target { bytes: text, addr: 0xffff_ffff_c000_0000 },
//!     rodata: Target { bytes: ro, addr: 0xffff_ffff_c010_0000 },
//!     data: Target { bytes: data, addr: 0xffff_ffff_c020_0000 },
//!     runtime: Target { bytes: rt, addr: 0xffff_ffff_c030_0000 },
//! };
//! let image = load(&object, &layout, &mut placement, &|name: &str| (name == "printk").then_some(0xffff_ffff_8010_0000))?;
//! let init = image.symbol("init_module");
//! # Ok(()) }
//! ```
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
extern crate alloc;

pub mod archive;
pub mod error;
pub mod layout;
pub mod load;
pub mod object;
pub mod relocate;

pub use error::{LoadError, Name};
pub use layout::{AreaSize, Layout};
pub use load::{Image, ImageSymbol, Placement, Resolver, Target, load};
pub use object::{Area, Object};
