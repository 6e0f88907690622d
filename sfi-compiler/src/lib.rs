//! nooks-cc: compiler-assisted software fault isolation for driver objects.
//!
//! An x86-64 ELF relocatable object goes in; an equivalent one comes out,
//! rebuilt through Cranelift IR. One module per stage:
//!
//! 1. [`read`]: sections, symbols, relocations, line table;
//! 2. [`decode`]: iced-x86 instructions and basic blocks per function;
//! 3. [`lift`]: Cranelift IR, registers as Variables, the frame on an emulated stack;
//! 4. [`instrument`]: the SFI pass (`--isolation sfi`);
//! 5. [`emit`]: compile, carry data over, write the object ([`window`]: the
//!    checks' window bound becomes a relocation).
//!
//! The output stays an ordinary relocatable object: each function keeps its
//! name and a SysV signature (6 register and 12 stack words in, rax:rdx out),
//! so native code calls rewritten functions — and rewritten code calls native
//! ones — exactly as before. The object carries its own emulated stack
//! (`__nooks_estack`, pointer `__nooks_esp`), so linking needs no runtime.
//!
//! ```no_run
//! let input = std::fs::read("driver.o")?;
//! let out = nooks_sfi_compiler::rewrite(&input, &nooks_sfi_compiler::Options::default())?;
//! std::fs::write("driver.rewritten.o", out.object)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bounds;
pub mod decode;
pub mod dwarf;
pub mod emit;
pub mod error;
pub mod inject;
pub mod instrument;
pub mod lift;
pub mod loops;
pub mod params;
pub mod read;
pub mod stack_args;
pub mod unwind;
pub mod window;

/// Hash maps and sets with a fixed hasher. std's default is seeded per
/// process, which made the order in which nooks-cc declares sections and
/// functions — and so its output — differ from run to run; with a fixed
/// one the order depends on the input alone, and the same input and flags
/// give byte-identical objects.
pub type HashMap<K, V> = std::collections::HashMap<K, V, FixedState>;
/// See [`HashMap`].
pub type HashSet<K> = std::collections::HashSet<K, FixedState>;
/// The fixed hasher of [`HashMap`] and [`HashSet`].
pub type FixedState = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

pub use emit::{Rewritten, Stats};
pub use error::{ErrorKind, Result, RewriteError};

/// Which protection the output gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// A pure rewrite: same behaviour, no checks.
    #[default]
    None,
    /// Stores sandboxed, privileged instructions virtualised, invariants checked.
    Sfi,
}

/// What to produce.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Protection.
    pub isolation: Isolation,
    /// Keep the lifted Cranelift IR of each function.
    pub emit_clif: bool,
    /// Keep the output disassembly of each function.
    pub emit_asm: bool,
    /// The driver's policy: under `sfi`, `in`/`out` are allowed only on its
    /// port ranges (a constant port outside them is refused at rewrite time,
    /// a computed one is checked at run time).
    pub policy: nooks_policy::file::Policy,
    /// Under `sfi`, leave out every store check but the frame's at entry
    /// (the invariants, call checks and the rest stay): only for measuring
    /// what the store checks cost (`rewrite-bench`). The metadata then says
    /// `isolation sfi-entry-only`, which the kernel refuses to load.
    pub entry_checks_only: bool,
    /// Carry the input object in the output's `.nooks.original` section
    /// (not loaded), so that a partial link of several rewritten objects
    /// (`nooks-cc -r`) can link the originals and rewrite the whole once:
    /// one runtime state, one emulated stack and one table of call targets
    /// per driver.
    pub keep_original: bool,
}

/// The section that carries the original object (see
/// [`Options::keep_original`]).
pub const ORIGINAL_SECTION: &str = ".nooks.original";

/// Rewrites an object file's bytes.
pub fn rewrite(bytes: &[u8], opts: &Options) -> Result<Rewritten> {
    let input = read::read(bytes)?;
    check_policy(&input, &opts.policy)?;
    emit::rewrite(&input, opts, opts.keep_original.then_some(bytes))
}

/// What the policy says of the object as a whole: every import is one it
/// allows (`import` lines), and every entry it names (`entry` lines) is a
/// function of the object. The kernel checks the same again at load and at
/// registration (`.nooks` carries the policy's lists).
fn check_policy(input: &read::Input, policy: &nooks_policy::file::Policy) -> Result<()> {
    let name = policy.driver.as_deref().unwrap_or("default");
    let mut refused: Vec<&str> = input
        .symbols
        .iter()
        .filter(|s| s.is_undefined && !s.name.is_empty() && !s.name.starts_with("__nooks"))
        .map(|s| s.name.as_str())
        .filter(|n| match &policy.imports {
            // Every export — or, linked into a host program, anything: the
            // kernel's loader refuses what it does not export.
            nooks_policy::file::Imports::All => false,
            nooks_policy::file::Imports::Only(names) => !names.iter().any(|a| a == n),
        })
        .collect();
    refused.sort_unstable();
    refused.dedup();
    if !refused.is_empty() {
        return Err(RewriteError::new(ErrorKind::Forbidden(format!(
            "policy `{name}` does not allow importing {}",
            refused.join(", ")
        ))));
    }
    if let Some(missing) = policy
        .entries
        .iter()
        .find(|e| !input.functions.iter().any(|f| &f.name == *e))
    {
        return Err(RewriteError::new(ErrorKind::Forbidden(format!(
            "policy `{name}` names entry `{missing}`, which is not a function of the object"
        ))));
    }
    Ok(())
}

/// The flags the compiler driver passes to the C compiler (before the
/// build's own, which win): general registers only (no SSE for the lifter
/// to meet), no red zone, no PIC (jump tables are then tables of addresses,
/// which the lifter takes), no stack protector or CET, and line info.
pub const DRIVER_CFLAGS: &[&str] = &[
    "-ffreestanding",
    "-mgeneral-regs-only",
    "-mno-red-zone",
    "-fno-pic",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fcf-protection=none",
    "-fno-common",
    "-g",
];
