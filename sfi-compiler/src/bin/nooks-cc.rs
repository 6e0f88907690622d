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
    },
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

fn options(isolation: Iso, emit: Option<Emit>) -> Options {
    Options {
        isolation: match isolation {
            Iso::None => Isolation::None,
            Iso::Sfi => Isolation::Sfi,
        },
        emit_clif: emit == Some(Emit::Clif),
        emit_asm: emit == Some(Emit::Asm),
    }
}

fn rewrite_file(input: &Path, output: &Path, opts: &Options) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let out = match nooks_sfi_compiler::rewrite(&bytes, opts) {
        Ok(o) => o,
        Err(e) => bail!("{}: {e}", input.display()),
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
    let r = rewrite_file(&tmp, &output, &options(isolation, emit));
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
        }) => rewrite_file(&input, &output, &options(isolation, emit)),
        None => bail!(
            "nothing to do: use `nooks-cc -c file.c -o file.o` or `nooks-cc rewrite in.o -o out.o`"
        ),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nooks-cc: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
