//! `nooks-cc`: rewrite x86-64 driver objects through Cranelift.
//!
//! ```text
//! nooks-cc -c driver.c -o driver.o [--isolation none|sfi] [cc flags...]   (a drop-in cc: see `compile`)
//! nooks-cc -r a.o b.o c.o -o driver.o [--isolation none|sfi]             (a partial link: see `partial_link`)
//! nooks-cc rewrite in.o -o out.o [--isolation none|sfi] [--emit clif|asm]
//! ```

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use nooks_sfi_compiler::{Isolation, Options};
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
    /// Verify sandboxed objects as the kernel's loader does: prove every
    /// store checked, every call and branch confined, every entry's
    /// invariants compared, without trusting nooks-cc.
    Verify {
        /// Objects rewritten with `--isolation sfi`.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
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

/// Options of the C compiler that take their value as the next argument.
const CC_VALUE_OPTIONS: &[&str] = &[
    "-o",
    "-MF",
    "-MT",
    "-MQ",
    "-x",
    "-include",
    "-imacros",
    "-isystem",
    "-idirafter",
    "-iquote",
    "-iprefix",
    "-iwithprefix",
    "-I",
    "-D",
    "-U",
    "-L",
    "-Xassembler",
    "-Xlinker",
    "-Xpreprocessor",
    "-aux-info",
    "--param",
];

/// What a compiler-driver invocation asked for, our options taken out.
#[derive(Default)]
struct Invocation {
    /// Everything for the C compiler, in order (sources included).
    cc: Vec<String>,
    /// Positions in `cc` of the inputs (sources or objects).
    inputs: Vec<usize>,
    /// `-o FILE` / `-oFILE`.
    output: Option<String>,
    /// Our options.
    isolation: Option<Iso>,
    emit: Option<Emit>,
    policy: Option<PathBuf>,
    /// `-c`, `-r`, `-S`, `-E`, `-M`/`-MM` (no compilation), dependency output.
    compile: bool,
    relocatable: bool,
    stop_early: bool,
    deps: bool,
    dep_file: bool,
    dep_target: bool,
}

/// Splits a `cc`-style command line into ours and the compiler's.
fn parse_invocation(args: &[String]) -> Result<Invocation> {
    let mut inv = Invocation::default();
    let mut it = args.iter().peekable();
    let value = |it: &mut std::iter::Peekable<std::slice::Iter<'_, String>>, what: &str| {
        it.next()
            .cloned()
            .with_context(|| format!("{what} needs a value"))
    };
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        match flag {
            "--isolation" => {
                let v = match inline {
                    Some(v) => v,
                    None => value(&mut it, "--isolation")?,
                };
                inv.isolation = Some(Iso::from_str(&v, true).map_err(anyhow::Error::msg)?);
            }
            "--emit" => {
                let v = match inline {
                    Some(v) => v,
                    None => value(&mut it, "--emit")?,
                };
                inv.emit = Some(Emit::from_str(&v, true).map_err(anyhow::Error::msg)?);
            }
            "--policy" => {
                inv.policy = Some(PathBuf::from(match inline {
                    Some(v) => v,
                    None => value(&mut it, "--policy")?,
                }))
            }
            "-c" => inv.compile = true,
            "-o" => inv.output = Some(value(&mut it, "-o")?),
            o if o.starts_with("-o") && o.len() > 2 => inv.output = Some(o[2..].to_string()),
            _ => {
                match a.as_str() {
                    "-r" => inv.relocatable = true,
                    "-S" | "-E" | "-M" | "-MM" => inv.stop_early = true,
                    "-MD" | "-MMD" => inv.deps = true,
                    "-MF" => inv.dep_file = true,
                    "-MT" | "-MQ" => inv.dep_target = true,
                    _ => {}
                }
                inv.cc.push(a.clone());
                if CC_VALUE_OPTIONS.contains(&a.as_str()) {
                    inv.cc.push(value(&mut it, a)?);
                } else if a == "-" || !a.starts_with('-') {
                    inv.inputs.push(inv.cc.len() - 1);
                }
            }
        }
    }
    Ok(inv)
}

/// The C compiler nooks-cc drives: `NOOKS_CC` (default gcc), never nooks-cc
/// itself (`make CC=nooks-cc` must not make it call itself forever).
fn real_compiler() -> Result<String> {
    let cc = std::env::var("NOOKS_CC").unwrap_or_else(|_| "gcc".into());
    if std::env::var_os("NOOKS_CC_ACTIVE").is_some() {
        bail!("NOOKS_CC (`{cc}`) runs nooks-cc again: name the real C compiler (gcc, clang)");
    }
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let resolved = which(&cc).and_then(|p| p.canonicalize().ok());
    if me.is_some() && me == resolved {
        bail!("NOOKS_CC (`{cc}`) is nooks-cc itself: name the real C compiler (gcc, clang)");
    }
    Ok(cc)
}

/// `cmd` as the shell would find it.
fn which(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(cmd))
            .find(|p| p.is_file())
    })
}

fn run_cc(cc: &str, args: &[String]) -> Result<()> {
    let status = std::process::Command::new(cc)
        .args(args)
        .env("NOOKS_CC_ACTIVE", "1")
        .status()
        .with_context(|| format!("running {cc}"))?;
    if !status.success() {
        // The compiler said why on stderr; its exit status is ours.
        bail!("{cc} failed ({status})");
    }
    Ok(())
}

/// Compiler-driver mode, a drop-in `cc` for Kbuild-style builds: with `-c`
/// each source is compiled by the real compiler (with the driver ABI's flags
/// first, so the build's own come after and win) into a temporary object,
/// which is rewritten into the object gcc would have written (`-o FILE` or
/// `-oFILE`; else the source's base name with `.o`, in the current
/// directory). `--isolation`, `--emit` and `--policy` (also `--x=v`) are
/// ours; everything else is the compiler's. `-E`, `-S`, `-M`, `-MM` and
/// invocations without `-c` (linking) are the compiler's alone. With
/// `-MD`/`-MMD` the dependency file is named after the real output, and
/// names it as its target.
fn compile(args: &[String]) -> Result<()> {
    let inv = parse_invocation(args)?;
    let cc = real_compiler()?;
    if inv.relocatable && !inv.compile && !inv.stop_early {
        return partial_link(&inv, &cc);
    }
    if inv.stop_early || !inv.compile {
        let mut all = inv.cc.clone();
        if inv.compile {
            all.push("-c".into());
        }
        if let Some(o) = &inv.output {
            all.extend(["-o".to_string(), o.clone()]);
        }
        return run_cc(&cc, &all);
    }
    if inv.inputs.is_empty() {
        bail!("no input files");
    }
    if inv.inputs.len() > 1 && inv.output.is_some() {
        bail!("cannot specify -o with -c and multiple files");
    }
    let mut opts = options(
        inv.isolation.unwrap_or(Iso::None),
        inv.emit,
        inv.policy.as_deref(),
    )?;
    opts.keep_original = true;
    for &i in &inv.inputs {
        let source = &inv.cc[i];
        let output = match &inv.output {
            Some(o) => PathBuf::from(o),
            None => PathBuf::from(
                Path::new(source)
                    .file_stem()
                    .map_or_else(|| "-".into(), |s| s.to_string_lossy().into_owned()),
            )
            .with_extension("o"),
        };
        // Every argument but the other inputs.
        let mut cc_args: Vec<String> = ["-c".to_string()]
            .into_iter()
            .chain(
                nooks_sfi_compiler::DRIVER_CFLAGS
                    .iter()
                    .map(|s| s.to_string()),
            )
            .chain(
                inv.cc
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j == i || !inv.inputs.contains(j))
                    .map(|(_, a)| a.clone()),
            )
            .collect();
        if inv.deps {
            if !inv.dep_file {
                cc_args.extend([
                    "-MF".into(),
                    output.with_extension("d").display().to_string(),
                ]);
            }
            if !inv.dep_target {
                cc_args.extend(["-MT".into(), output.display().to_string()]);
            }
        }
        let tmp = std::env::temp_dir().join(format!(
            "nooks-cc-{}-{}.o",
            std::process::id(),
            output.file_stem().and_then(|s| s.to_str()).unwrap_or("out")
        ));
        cc_args.extend(["-o".into(), tmp.display().to_string()]);
        let r = run_cc(&cc, &cc_args).and_then(|()| rewrite_file(&tmp, &output, &opts, None));
        let _ = std::fs::remove_file(&tmp);
        r?;
    }
    Ok(())
}

/// Partial-link mode (`nooks-cc -r a.o b.o -o driver.o`, what Kbuild does
/// with `ld -r` for a module of several files): the inputs' original objects
/// (each rewritten object carries its own, see `Options::keep_original`;
/// an object nooks-cc never saw is taken as it is) are linked by the real
/// compiler (`cc -r -nostdlib`), and the result is rewritten once. The
/// driver so gets one runtime state, one emulated stack and one table of
/// indirect-call targets for all its files, and a function pointer may
/// cross files. The isolation is `--isolation`'s, or else the one the
/// inputs were rewritten with (they must agree).
fn partial_link(inv: &Invocation, cc: &str) -> Result<()> {
    use object::{Object, ObjectSection};
    let output = inv
        .output
        .as_deref()
        .context("a partial link (-r) needs -o FILE")?;
    if inv.inputs.is_empty() {
        bail!("no input files");
    }
    let dir = std::env::temp_dir().join(format!("nooks-cc-{}-link", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut recorded: Option<String> = None;
    let mut args = Vec::new();
    let result = (|| {
        for (j, a) in inv.cc.iter().enumerate() {
            if !inv.inputs.contains(&j) {
                args.push(a.clone());
                continue;
            }
            let bytes = std::fs::read(a).with_context(|| format!("reading {a}"))?;
            let file =
                object::File::parse(&*bytes).with_context(|| format!("{a}: not an object"))?;
            let section = |name: &str| {
                file.section_by_name(name)
                    .and_then(|s| s.data().ok().map(<[u8]>::to_vec))
            };
            let Some(meta) = section(".nooks") else {
                args.push(a.clone());
                continue;
            };
            let isolation = String::from_utf8_lossy(&meta)
                .lines()
                .find_map(|l| l.strip_prefix("isolation ").map(str::to_string))
                .unwrap_or_default();
            match &recorded {
                Some(r) if *r != isolation => bail!(
                    "{a} was rewritten with --isolation {isolation}, an earlier input with {r}"
                ),
                _ => recorded = Some(isolation),
            }
            let original = section(nooks_sfi_compiler::ORIGINAL_SECTION).with_context(|| {
                format!(
                    "{a} was rewritten without its original object: rewrite it with `nooks-cc -c`, or link the objects the compiler wrote"
                )
            })?;
            let path = dir.join(format!("{j}.o"));
            std::fs::write(&path, original)
                .with_context(|| format!("writing {}", path.display()))?;
            args.push(path.display().to_string());
        }
        if !args.iter().any(|a| a == "-nostdlib") {
            args.push("-nostdlib".into());
        }
        let linked = dir.join("linked.o");
        args.extend(["-o".into(), linked.display().to_string()]);
        run_cc(cc, &args)?;
        let isolation = match (inv.isolation, recorded.as_deref()) {
            (Some(i), _) => i,
            (None, Some("sfi")) => Iso::Sfi,
            (None, Some("none") | None) => Iso::None,
            (None, Some(other)) => bail!(
                "the inputs were rewritten with isolation `{other}`: name one with --isolation"
            ),
        };
        let mut opts = options(isolation, inv.emit, inv.policy.as_deref())?;
        opts.keep_original = true;
        rewrite_file(&linked, Path::new(output), &opts, None)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Anything that is not one of our subcommands (or help/version) is a
    // compiler-driver invocation, as `cc` would take it.
    let ours = [
        "rewrite",
        "inject",
        "verify",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    if args.len() > 1 && !ours.contains(&args[1].as_str()) {
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
        Some(Cmd::Verify { inputs }) => {
            let mut refused = 0;
            for input in &inputs {
                let bytes =
                    std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
                let object = nooks_loader::Object::parse(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
                let t = std::time::Instant::now();
                match nooks_verifier::verify(&object) {
                    Ok(r) => println!(
                        "{}: verified: {} functions, {} instructions, {} bytes of code in {:.0} us",
                        input.display(),
                        r.functions,
                        r.instructions,
                        r.bytes,
                        t.elapsed().as_secs_f64() * 1e6
                    ),
                    Err(e) => {
                        eprintln!("{}: {e}", input.display());
                        refused += 1;
                    }
                }
            }
            if refused > 0 {
                bail!("{refused} of {} objects not verified", inputs.len());
            }
            Ok(())
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
