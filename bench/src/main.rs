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
    /// The main job: build everything, boot the kernel and print what it found.
    Run {
        /// Seconds before a boot counts as hung.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
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
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run { timeout } => {
            let outcome = boot("run", "mode=info", &[], timeout, false, None)?;
            let records = serial::records(&outcome.log);
            println!(
                "kernel booted and reported in {:.1} s (TCG wall time)",
                outcome.elapsed.as_secs_f64()
            );
            for r in &records {
                println!("{r}");
            }
            verdict(&outcome)
        }
        Cmd::Ktest { filter, timeout } => {
            let cmdline = match filter {
                Some(f) => format!("mode=test filter={f}"),
                None => "mode=test".to_string(),
            };
            let outcome = boot("ktest", &cmdline, &[], timeout, true, None)?;
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
        } => {
            let pcap = pcap.then(|| artifacts::build_dir().join("boot"));
            let outcome = boot("boot", &cmdline, &modules, timeout, true, pcap)?;
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
