//! The rewrite benchmark: how fast nooks-cc rewrites (KiB of input text per
//! second over real objects, and e1000 end to end), how much code it emits
//! against gcc's, and how fast rewritten code runs against native code on the
//! host (compute- and store-heavy kernels in `bench/kernels/`, each linked with
//! the same native timing `main`).

use crate::artifacts::{build_dir, build_driver, repo_root, run};
use anyhow::{Context, Result, bail};
use nooks_sfi_compiler::{Options, rewrite};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The driver ABI flags (nooks-cc's own list) at -O2, as the kernels are built for host timing.
fn flags() -> impl Iterator<Item = &'static str> {
    std::iter::once("-O2").chain(nooks_sfi_compiler::DRIVER_CFLAGS.iter().copied())
}

/// One host kernel, native against rewritten.
#[derive(Debug, Clone)]
pub struct KernelTiming {
    /// Kernel name.
    pub name: String,
    /// Native time, ns: the median over processes (three in each of four code
    /// layouts) of each one's best of 7 runs.
    pub native_ns: u64,
    /// Rewritten time, ns (the same way).
    pub rewritten_ns: u64,
    /// Time rewritten with `--isolation sfi` (window open: checks run, none fail), ns.
    pub sfi_ns: u64,
    /// Time under `sfi` without its store checks but the frame's at entry
    /// (`Options::entry_checks_only`), ns: what the entry's work costs alone.
    pub entry_ns: u64,
}

impl KernelTiming {
    /// rewritten / native.
    pub fn ratio(&self) -> f64 {
        self.rewritten_ns as f64 / self.native_ns.max(1) as f64
    }

    /// sfi / none: the cost of the checks alone.
    pub fn sfi_overhead(&self) -> f64 {
        self.sfi_ns as f64 / self.rewritten_ns.max(1) as f64
    }

    /// sfi without its store checks / none: the entry's work alone (frame
    /// and invariant checks); `sfi_overhead` over this is the store checks'.
    pub fn entry_overhead(&self) -> f64 {
        self.entry_ns as f64 / self.rewritten_ns.max(1) as f64
    }
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct RewriteReport {
    /// Input text bytes rewritten per run over all objects.
    pub input_text: usize,
    /// Output text bytes.
    pub output_text: usize,
    /// Seconds for one rewrite of all objects (best of 3).
    pub seconds: f64,
    /// e1000.o end to end (read, lift, compile, emit), ms (best of 3).
    pub e1000_ms: f64,
    /// e1000 input and output text bytes.
    pub e1000_text: (usize, usize),
    /// Host kernels.
    pub kernels: Vec<KernelTiming>,
}

impl RewriteReport {
    /// KiB of input text rewritten per second.
    pub fn kib_per_second(&self) -> f64 {
        self.input_text as f64 / 1024.0 / self.seconds.max(1e-9)
    }
}

fn gcc_c(src: &Path, out: &Path) -> Result<()> {
    run(Command::new("gcc")
        .arg("-c")
        .args(flags())
        .arg("-I")
        .arg(repo_root().join("drivers/include"))
        .arg(src)
        .arg("-o")
        .arg(out))
}

fn c_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    v.retain(|p| p.extension().is_some_and(|e| e == "c"));
    v.sort();
    Ok(v)
}

/// Processes per kernel, variant and code layout (the median over all of a
/// variant's processes is reported).
const ROUNDS: usize = 3;

/// Code layouts every variant is timed in: the kernel object's text starts
/// this many bytes past a 64-byte boundary. Where a hot loop falls relative
/// to the 64-byte fetch and op-cache lines moves a short kernel by up to 40%
/// on its own (the `hash` kernel's probe loop, identical in `none` and `sfi`,
/// ran 1.39x slower in one link than in the other); timing each variant in
/// the same four placements measures the code, not where the linker put it.
const LAYOUTS: [usize; 4] = [0, 16, 32, 48];

/// An object whose text, 64-byte aligned, is `64 + shift` bytes long:
/// linked right before a kernel object (16-byte aligned text), it starts
/// that object `shift` bytes past a 64-byte boundary.
fn pad_object(dir: &Path, shift: usize) -> Result<PathBuf> {
    let src = dir.join(format!("pad{shift}.s"));
    std::fs::write(
        &src,
        format!(
            ".text\n.p2align 6\nnooks_bench_pad{shift}:\n.skip {}, 0x90\n.section .note.GNU-stack,\"\",@progbits\n",
            64 + shift
        ),
    )?;
    let obj = dir.join(format!("pad{shift}.o"));
    run(Command::new("as").arg(&src).arg("-o").arg(&obj))?;
    Ok(obj)
}

/// Runs the benchmark; `iters` scales the host kernels.
pub fn measure(iters: u64) -> Result<RewriteReport> {
    let dir = build_dir().join("rewrite-bench");
    std::fs::create_dir_all(&dir)?;
    let kernels_dir = repo_root().join("bench/kernels");
    // Objects to rewrite: the differential corpus, the kernels, and e1000.
    let mut objects = Vec::new();
    for src in c_files(&repo_root().join("sfi-compiler/tests/corpus"))?
        .into_iter()
        .chain(c_files(&kernels_dir)?)
    {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        if stem == "harness" || stem == "timer_main" || stem.ends_with(".shim") {
            continue;
        }
        let o = dir.join(format!("{stem}.o"));
        gcc_c(&src, &o)?;
        objects.push((stem, std::fs::read(&o)?));
    }
    let e1000 = std::fs::read(build_driver("e1000")?)?;
    let opts = Options::default();

    let mut best = f64::MAX;
    let (mut input_text, mut output_text) = (0, 0);
    for _ in 0..3 {
        let t = Instant::now();
        let (mut i, mut o) = (0, 0);
        for (name, bytes) in &objects {
            let r = rewrite(bytes, &opts).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            i += r.stats.input_text;
            o += r.stats.output_text;
        }
        best = best.min(t.elapsed().as_secs_f64());
        (input_text, output_text) = (i, o);
    }
    let mut e1000_ms = f64::MAX;
    let mut e1000_text = (0, 0);
    for _ in 0..3 {
        let t = Instant::now();
        let r = rewrite(&e1000, &opts).map_err(|e| anyhow::anyhow!("e1000: {e}"))?;
        e1000_ms = e1000_ms.min(t.elapsed().as_secs_f64() * 1000.0);
        e1000_text = (r.stats.input_text, r.stats.output_text);
    }

    let timer = dir.join("timer_main.o");
    run(Command::new("gcc")
        .args(["-c", "-O2"])
        .arg(kernels_dir.join("timer_main.c"))
        .arg("-o")
        .arg(&timer))?;
    let pads = LAYOUTS
        .iter()
        .map(|&shift| Ok((shift, pad_object(&dir, shift)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut kernels = Vec::new();
    for src in c_files(&kernels_dir)? {
        let name = src.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "timer_main" || name.ends_with(".shim") {
            continue;
        }
        // A kernel may come with `<name>.shim.c`: native code it calls (the
        // driver API for e1000_path), linked as is, never rewritten.
        let shim_src = kernels_dir.join(format!("{name}.shim.c"));
        let shim = shim_src
            .exists()
            .then(|| dir.join(format!("{name}.shim.o")));
        if let Some(o) = &shim {
            gcc_c(&shim_src, o)?;
        }
        let obj = dir.join(format!("{name}.o"));
        let rw = dir.join(format!("{name}.rewritten.o"));
        let r =
            rewrite(&std::fs::read(&obj)?, &opts).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        std::fs::write(&rw, &r.object)?;
        let sfi = dir.join(format!("{name}.sfi.o"));
        let sfi_opts = Options {
            isolation: nooks_sfi_compiler::Isolation::Sfi,
            ..Options::default()
        };
        let r = rewrite(&std::fs::read(&obj)?, &sfi_opts)
            .map_err(|e| anyhow::anyhow!("{name} (sfi): {e}"))?;
        std::fs::write(&sfi, &r.object)?;
        let entry = dir.join(format!("{name}.sfi-entry.o"));
        let entry_opts = Options {
            entry_checks_only: true,
            ..sfi_opts
        };
        let r = rewrite(&std::fs::read(&obj)?, &entry_opts)
            .map_err(|e| anyhow::anyhow!("{name} (sfi, entry checks only): {e}"))?;
        std::fs::write(&entry, &r.object)?;
        // Every variant in every layout, timed in rounds interleaved across
        // variants, so that a slow spell of the machine falls on all of
        // them; each round is one process's best of 7 runs (a process's own
        // layout — its stack, its heap — moves a kernel this short by several
        // percent too).
        let mut rounds: [Vec<u64>; 4] = Default::default();
        let mut checks: [String; 4] = Default::default();
        for (shift, pad) in &pads {
            let mut exes = Vec::new();
            for (o, tag) in [
                (&obj, "native"),
                (&rw, "rewritten"),
                (&sfi, "sfi"),
                (&entry, "sfi-entry"),
            ] {
                let exe = dir.join(format!("{name}.{tag}{}", layout_suffix(*shift)));
                let mut link = Command::new("gcc");
                link.arg("-no-pie").arg(&timer).arg(pad).arg(o);
                if let Some(s) = &shim {
                    // The driver's module plumbing (probe, request_irq...) is never called here.
                    link.arg(s).arg("-Wl,--unresolved-symbols=ignore-all");
                }
                run(link.arg("-o").arg(&exe))?;
                exes.push(exe);
            }
            for _ in 0..ROUNDS {
                for (k, exe) in exes.iter().enumerate() {
                    let out = Command::new(exe)
                        .arg(iters.to_string())
                        .arg("7")
                        .output()
                        .with_context(|| format!("running {}", exe.display()))?;
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    let mut parts = text.split_whitespace();
                    let ns: u64 = parts
                        .next()
                        .and_then(|v| v.parse().ok())
                        .context("kernel timing output")?;
                    rounds[k].push(ns);
                    checks[k] = parts.next().unwrap_or("").to_string();
                }
            }
        }
        let times: Vec<(u64, String)> = rounds
            .iter_mut()
            .zip(checks)
            .map(|(r, check)| {
                r.sort_unstable();
                (r[r.len() / 2], check)
            })
            .collect();
        for (k, variant) in [(1, "rewritten"), (2, "sfi"), (3, "sfi (entry checks only)")] {
            if times[k].1 != times[0].1 {
                bail!(
                    "{name}: {variant} result {} differs from native {}",
                    times[k].1,
                    times[0].1
                );
            }
        }
        kernels.push(KernelTiming {
            name,
            native_ns: times[0].0,
            rewritten_ns: times[1].0,
            sfi_ns: times[2].0,
            entry_ns: times[3].0,
        });
    }
    Ok(RewriteReport {
        input_text,
        output_text,
        seconds: best,
        e1000_ms,
        e1000_text,
        kernels,
    })
}

/// The executable name's suffix for a layout: none for the first, so the
/// plain `<kernel>.<variant>` files stay there for profiling.
fn layout_suffix(shift: usize) -> String {
    if shift == LAYOUTS[0] {
        String::new()
    } else {
        format!(".at{shift}")
    }
}

/// Prints the report as a table; returns it as JSON.
pub fn print(r: &RewriteReport) -> serde_json::Value {
    println!("nooks-cc rewrite benchmark (host, real CPU time)");
    println!(
        "  rewriting speed      {:>10.1} KiB of input text/s  ({} B in {:.3} s)",
        r.kib_per_second(),
        r.input_text,
        r.seconds
    );
    println!(
        "  output/input text    {:>10.2} x  ({} B -> {} B)",
        r.output_text as f64 / r.input_text.max(1) as f64,
        r.input_text,
        r.output_text
    );
    println!(
        "  e1000.o end to end   {:>10.1} ms  (text {} B -> {} B)",
        r.e1000_ms, r.e1000_text.0, r.e1000_text.1
    );
    println!(
        "  {:<10} {:>12} {:>12} {:>12} {:>9} {:>9} {:>10}",
        "kernel", "native ns", "none ns", "sfi ns", "none/nat", "sfi/none", "entry/none"
    );
    for k in &r.kernels {
        println!(
            "  {:<10} {:>12} {:>12} {:>12} {:>8.2}x {:>8.2}x {:>9.2}x",
            k.name,
            k.native_ns,
            k.rewritten_ns,
            k.sfi_ns,
            k.ratio(),
            k.sfi_overhead(),
            k.entry_overhead()
        );
    }
    println!(
        "  targets: none/native <= 1.15; sfi/none <= 1.10 (store-heavy kernels), <= 1.03 (e1000_path)"
    );
    println!(
        "  entry/none: sfi without its store checks (the entry's frame and invariant checks only;"
    );
    println!("  an object the kernel refuses): what is left of the sfi cost without them");
    serde_json::json!({
        "kib_per_second": r.kib_per_second(),
        "input_text": r.input_text,
        "output_text": r.output_text,
        "e1000_ms": r.e1000_ms,
        "e1000_text_in": r.e1000_text.0,
        "e1000_text_out": r.e1000_text.1,
        "kernels": r.kernels.iter().map(|k| serde_json::json!({"name": k.name, "native_ns": k.native_ns, "rewritten_ns": k.rewritten_ns, "sfi_ns": k.sfi_ns, "entry_ns": k.entry_ns, "ratio": k.ratio(), "sfi_overhead": k.sfi_overhead(), "entry_overhead": k.entry_overhead()})).collect::<Vec<_>>(),
    })
}
