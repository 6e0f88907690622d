//! `nooks-cc`: rewrite x86-64 driver objects through Cranelift.
//!
//! ```text
//! nooks-cc -c driver.c -o driver.o [--isolation none|sfi] [cc flags...]
//! nooks-cc rewrite in.o -o out.o [--isolation none|sfi] [--emit clif|asm]
//! ```

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use nooks_sfi_compiler::{DRIVER_CFLAGS, Isolation, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nooks-cc",
    version,
    about = "Rewrite x86-64 driver objects through Cranelift (software fault isolation)"
)]
#[command(
    after_help = "Compiler-driver mode: nooks-cc -c file.c -o file.o [--isolation none|sfi] [--emit clif|asm] [cc flags...]"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Rewrite an existing object.
    Rewrite {
        /// Input object.
        input: PathBuf,
        /// Output object.
        #[arg(short = 'o')]
        output: PathBuf,
        /// Protection for the output.
        #[arg(long, value_enum, default_value_t = Iso::None)]
        isolation: Iso,
        /// Also print the lifted IR or the output disassembly.
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// Inject a fault into the input first: KIND:SEED (see `nooks-cc inject`).
        #[arg(long)]
        inject: Option<String>,
        /// The driver's policy file (I/O port ranges for in/out under sfi).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Inject one fault into an original object (same length, same layout):
    /// store-address, store-value, null-pointer, random-pointer, off-by-one,
    /// skip-unlock, irq-off, remove-instruction, infinite-loop, bad-free.
    Inject {
        /// Input object.
        input: PathBuf,
        /// Output object.
        #[arg(short = 'o')]
        output: PathBuf,
        /// The kind of fault.
        #[arg(long)]
        fault: String,
        /// Chooses the site, reproducibly.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only sites in this function.
        #[arg(long)]
        function: Option<String>,
    },
}

/// Parses KIND:SEED.
fn parse_injection(spec: &str) -> Result<(nooks_sfi_compiler::inject::FaultKind, u64)> {
    let (kind, seed) = spec.split_once(':').unwrap_or((spec, "0"));
    let kind = nooks_sfi_compiler::inject::FaultKind::parse(kind)
        .with_context(|| format!("unknown fault kind `{kind}`"))?;
    let seed = seed.parse().with_context(|| format!("bad seed `{seed}`"))?;
    Ok((kind, seed))
}

fn inject_bytes(
    bytes: &[u8],
    kind: nooks_sfi_compiler::inject::FaultKind,
    seed: u64,
    function: Option<&str>,
) -> Result<Vec<u8>> {
    let (out, what) = nooks_sfi_compiler::inject::inject_in(bytes, kind, seed, function)?;
    eprintln!("nooks-cc: injected {what}");
    eprintln!(
        "nooks-cc: in a running kernel: {} inject_at=<frame>",
        what.boot_option()
    );
    Ok(out)
}

#[derive(Clone, Copy, ValueEnum)]
enum Iso {
    None,
    Sfi,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Emit {
    Clif,
    Asm,
}

fn options(isolation: Iso, emit: Option<Emit>, policy: Option<&Path>) -> Result<Options> {
    let policy = match policy {
        None => nooks_policy::file::Policy::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            nooks_policy::file::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?
        }
    };
    Ok(Options {
        isolation: match isolation {
            Iso::None => Isolation::None,
            Iso::Sfi => Isolation::Sfi,
        },
        emit_clif: emit == Some(Emit::Clif),
        emit_asm: emit == Some(Emit::Asm),
        policy,
        ..Options::default()
    })
}

fn rewrite_file(input: &Path, output: &Path, opts: &Options, inject: Option<&str>) -> Result<()> {
    let mut bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    if let Some(spec) = inject {
        let (kind, seed) = parse_injection(spec)?;
        bytes = inject_bytes(&bytes, kind, seed, None)?;
    }
    let out = match nooks_sfi_compiler::rewrite(&bytes, opts) {
        Ok(o) => o,
        Err(e) => return Err(Diagnostic(e.diagnostic(&input.display().to_string())).into()),
    };
    for (name, text) in out.clif.iter().chain(out.asm.iter()) {
        println!("; {name}\n{text}");
    }
    std::fs::write(output, &out.object).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

/// Compiler-driver mode: `-c`, `-o FILE`, `--isolation X` and `--emit X` are
/// ours wherever they appear; every other argument goes to the C compiler.
fn compile(args: &[String]) -> Result<()> {
    let mut output = None;
    let mut isolation = Iso::None;
    let mut emit = None;
    let mut policy = None;
    let mut cc_args = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => {}
            "-o" => output = Some(PathBuf::from(it.next().context("-o needs a file")?)),
            "--isolation" => {
                isolation = Iso::from_str(it.next().context("--isolation needs none or sfi")?, true)
                    .map_err(anyhow::Error::msg)?
            }
            "--policy" => policy = Some(PathBuf::from(it.next().context("--policy needs a file")?)),
            "--emit" => {
                emit = Some(
                    Emit::from_str(it.next().context("--emit needs clif or asm")?, true)
                        .map_err(anyhow::Error::msg)?,
                )
            }
            other => cc_args.push(other.to_string()),
        }
    }
    let source = cc_args
        .iter()
        .find(|a| a.ends_with(".c"))
        .context("no .c source given")?
        .clone();
    let output = output.unwrap_or_else(|| PathBuf::from(&source).with_extension("o"));
    let tmp = std::env::temp_dir().join(format!(
        "nooks-cc-{}-{}.o",
        std::process::id(),
        output.file_stem().and_then(|s| s.to_str()).unwrap_or("out")
    ));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = std::process::Command::new(&cc)
        .arg("-c")
        .args(DRIVER_CFLAGS)
        .args(&cc_args)
        .arg("-o")
        .arg(&tmp)
        .status()
        .with_context(|| format!("running {cc}"))?;
    if !status.success() {
        bail!("{cc} failed ({status})");
    }
    let r = options(isolation, emit, policy.as_deref())
        .and_then(|opts| rewrite_file(&tmp, &output, &opts, None));
    let _ = std::fs::remove_file(&tmp);
    r
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().skip(1).any(|a| a == "-c") && args.get(1).is_none_or(|a| a != "rewrite") {
        return compile(&args[1..]);
    }
    match Cli::parse().command {
        Some(Cmd::Rewrite {
            input,
            output,
            isolation,
            emit,
            inject,
            policy,
        }) => rewrite_file(
            &input,
            &output,
            &options(isolation, emit, policy.as_deref())?,
            inject.as_deref(),
        ),
        Some(Cmd::Inject {
            input,
            output,
            fault,
            seed,
            function,
        }) => {
            let (kind, _) = parse_injection(&fault)?;
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let out = inject_bytes(&bytes, kind, seed, function.as_deref())?;
            std::fs::write(&output, out).with_context(|| format!("writing {}", output.display()))
        }
        None => bail!(
            "nothing to do: use `nooks-cc -c file.c -o file.o` or `nooks-cc rewrite in.o -o out.o`"
        ),
    }
}

/// A rewrite error already in the compilers' `file:line: error:` form.
#[derive(Debug)]
struct Diagnostic(String);

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Diagnostic {}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<Diagnostic>() {
                Some(d) => eprintln!("{d}"),
                None => eprintln!("nooks-cc: error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
