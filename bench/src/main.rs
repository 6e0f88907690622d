//! `nooks-bench`: the host-side runner. One subcommand per job.

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use nooks_bench::{artifacts, qemu, serial};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "nooks-bench",
    about = "Build, boot and measure the nooks kernel in QEMU"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The main job: build the kernel and e1000 (gcc), rewrite e1000 with nooks-cc,
    /// boot each object in QEMU, move frames, and compare.
    Run {
        /// Seconds before a boot counts as hung.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Frames per run.
        #[arg(long, default_value_t = 10_000)]
        frames: u32,
    },
    /// Build and boot the kernel in test mode: run every in-kernel test.
    Ktest {
        /// Only tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Seconds before the run counts as hung.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
    /// Benchmark nooks-cc: rewriting speed, code size, host run time against native.
    RewriteBench {
        /// Iterations of each host kernel.
        #[arg(long, default_value_t = 2000)]
        iters: u64,
    },
    /// Boot the kernel with a command line and boot modules of your choosing.
    Boot {
        /// Kernel command line (the archive checksum words are appended).
        #[arg(long, default_value = "mode=info")]
        cmdline: String,
        /// Object files to put in the boot archive.
        modules: Vec<PathBuf>,
        /// Seconds before the boot counts as hung.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Dump NIC traffic to build/boot-nic<N>.pcap.
        #[arg(long)]
        pcap: bool,
        /// Count guest instructions exactly (QEMU -icount; TCG only).
        #[arg(long)]
        icount: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run { timeout, frames } => main_job(timeout, frames),
        Cmd::Ktest { filter, timeout } => {
            let cmdline = match filter {
                Some(f) => format!("mode=test filter={f}"),
                None => "mode=test".to_string(),
            };
            let outcome = boot("ktest", &cmdline, &[], timeout, true, None, false)?;
            let report = serial::KtestReport::parse(&outcome.log);
            match report.summary {
                Some((p, f)) => println!("ktest: {p} passed, {f} failed"),
                None => println!("ktest: the kernel printed no result line"),
            }
            verdict(&outcome)
        }
        Cmd::RewriteBench { iters } => {
            let report = nooks_bench::rewrite::measure(iters)?;
            let json = nooks_bench::rewrite::print(&report);
            let dir = artifacts::repo_root().join("results");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join("rewrite.json"),
                serde_json::to_string_pretty(&json)?,
            )?;
            println!("wrote results/rewrite.json");
            Ok(())
        }
        Cmd::Boot {
            cmdline,
            modules,
            timeout,
            pcap,
            icount,
        } => {
            let pcap = pcap.then(|| artifacts::build_dir().join("boot"));
            let outcome = boot("boot", &cmdline, &modules, timeout, true, pcap, icount)?;
            verdict(&outcome)
        }
    }
}

/// Builds the kernel, packs the archive, boots once.
fn boot(
    name: &str,
    cmdline: &str,
    modules: &[PathBuf],
    timeout: u64,
    echo: bool,
    pcap: Option<PathBuf>,
    icount: bool,
) -> Result<qemu::Outcome> {
    eprintln!("building the kernel ...");
    let kernel = artifacts::build_kernel()?;
    let mut members = Vec::new();
    for m in modules {
        let bytes =
            std::fs::read(m).map_err(|e| anyhow::anyhow!("reading {}: {e}", m.display()))?;
        let file = m
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("module.o")
            .to_string();
        members.push((file, bytes));
    }
    let members: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let archive = artifacts::boot_archive(name, &kernel, &members)?;
    let mut b = qemu::Boot::new(
        kernel,
        Some(archive.path.clone()),
        format!("{cmdline} {}", archive.cmdline()),
    );
    b.timeout = Duration::from_secs(timeout);
    b.pcap_prefix = pcap;
    b.echo = echo;
    b.icount = icount;
    eprintln!("booting: {:?}", qemu::command(&b));
    qemu::run(&b)
}

fn verdict(outcome: &qemu::Outcome) -> Result<()> {
    match outcome.verdict {
        qemu::Verdict::Success => Ok(()),
        v => {
            eprintln!("---- serial log ----\n{}--------------------", outcome.log);
            bail!(
                "the kernel did not succeed: {v:?} after {:.1} s",
                outcome.elapsed.as_secs_f64()
            )
        }
    }
}

/// The main job (see `Cmd::Run`).
fn main_job(timeout: u64, frames: u32) -> Result<()> {
    use nooks_sfi_compiler::{Isolation, Options, rewrite};
    eprintln!("[1/4] building the kernel and drivers/e1000 (gcc)");
    let kernel = artifacts::build_kernel()?;
    let original = std::fs::read(artifacts::build_driver("e1000")?)?;
    eprintln!("[2/4] rewriting e1000.o with nooks-cc (--isolation none, sfi)");
    let mut objects: Vec<(String, &str, Vec<u8>)> =
        vec![("e1000.o".into(), "gcc, original", original.clone())];
    for (iso, label) in [
        (Isolation::None, "nooks-cc --isolation none"),
        (
            Isolation::Sfi,
            "nooks-cc --isolation sfi, one confined SFI domain per NIC",
        ),
    ] {
        let t = std::time::Instant::now();
        let out = rewrite(
            &original,
            &Options {
                isolation: iso,
                ..Options::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("nooks-cc: {e}"))?;
        let name = if iso == Isolation::None {
            "e1000.none.o"
        } else {
            "e1000.sfi.o"
        };
        eprintln!(
            "      {name}: {} functions, {} instructions, {} store checks, text {} -> {} bytes, {:.1} ms",
            out.stats.functions,
            out.stats.instructions,
            out.stats.checks,
            out.stats.input_text,
            out.stats.output_text,
            t.elapsed().as_secs_f64() * 1000.0
        );
        std::fs::write(
            artifacts::build_dir().join("drivers").join(name),
            &out.object,
        )?;
        objects.push((name.into(), label, out.object));
    }
    eprintln!(
        "[3/4] booting the kernel once per object ({frames} frames eth0 -> eth1 each, QEMU TCG)"
    );
    let mut rows = Vec::new();
    let mut info_printed = false;
    for (name, label, bytes) in &objects {
        let archive = artifacts::boot_archive(
            &format!("run-{name}"),
            &kernel,
            &[(name.as_str(), bytes.clone())],
        )?;
        let mut b = qemu::Boot::new(
            kernel.clone(),
            Some(archive.path.clone()),
            format!("mode=net frames={frames} {}", archive.cmdline()),
        );
        b.timeout = Duration::from_secs(timeout);
        let outcome = qemu::run(&b)?;
        if !info_printed {
            for line in outcome
                .log
                .lines()
                .filter(|l| l.contains(" pci: ") || l.contains("memory:") || l.contains("82540EM"))
            {
                println!("  {line}");
            }
            info_printed = true;
        }
        let records = serial::records(&outcome.log);
        let Some(w) = records.iter().find(|r| r["nooks"] == "workload").cloned() else {
            eprintln!("---- serial log ----\n{}", outcome.log);
            bail!("{name}: no workload result ({:?})", outcome.verdict);
        };
        eprintln!(
            "      {name}: {} of {} frames received",
            w["received"], w["sent"]
        );
        rows.push((name.clone(), label.to_string(), w));
    }
    eprintln!("[4/4] host-native cost of the rewritten code (real CPU time)");
    let host = nooks_bench::rewrite::measure(1000)?;

    println!();
    println!(
        "e1000 in the nooks kernel: {frames} frames of 64..1514 bytes, eth0 -> hub -> eth1, interrupt-driven"
    );
    println!("(guest cycles are TSC cycles under QEMU TCG: emulated time, not hardware time)");
    println!(
        "  {:<14} {:>9} {:>6} {:>5} {:>14} {:>12} {:>8}  object",
        "object", "received", "lost", "bad", "cycles/frame", "frames/s", "irqs"
    );
    let base = rows[0].2["cycles"].as_u64().unwrap_or(1).max(1) as f64;
    for (name, label, w) in &rows {
        let cycles = w["cycles"].as_u64().unwrap_or(0);
        let received = w["received"].as_u64().unwrap_or(0).max(1);
        println!(
            "  {:<14} {:>9} {:>6} {:>5} {:>14} {:>12} {:>8}  {} ({:.2}x gcc cycles)",
            name,
            w["received"].as_u64().unwrap_or(0),
            w["lost"].as_u64().unwrap_or(0),
            w["bad"].as_u64().unwrap_or(0),
            cycles / received,
            w["fps"].as_u64().unwrap_or(0),
            w["irqs"].as_u64().unwrap_or(0),
            label,
            cycles as f64 / base
        );
    }
    println!();
    let host_json = nooks_bench::rewrite::print(&host);
    let dir = artifacts::repo_root().join("results");
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::json!({
        "frames": frames,
        "guest": rows.iter().map(|(n, l, w)| serde_json::json!({"object": n, "label": l, "workload": w})).collect::<Vec<_>>(),
        "host": host_json,
    });
    std::fs::write(dir.join("main.json"), serde_json::to_string_pretty(&json)?)?;
    let mut csv = String::from("object,received,lost,bad,cycles,fps,irqs\n");
    for (n, _, w) in &rows {
        csv.push_str(&format!(
            "{n},{},{},{},{},{},{}\n",
            w["received"], w["lost"], w["bad"], w["cycles"], w["fps"], w["irqs"]
        ));
    }
    std::fs::write(dir.join("main.csv"), csv)?;
    println!("wrote results/main.json and results/main.csv");
    println!("not yet measured here: MMU domains (issue 6); in-guest instruction counts (issue 8)");
    Ok(())
}
