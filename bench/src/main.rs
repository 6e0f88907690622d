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
    /// The fault-injection campaign: inject faults into e1000, boot each under
    /// none, mmu and sfi with traffic, classify, print a table in the form of
    /// Nooks', write results/campaign.json and results/campaign.svg.
    Campaign {
        /// Injected faults per mechanism.
        #[arg(long, default_value_t = 300)]
        injections: usize,
        /// Frames of traffic per boot.
        #[arg(long, default_value_t = 300)]
        frames: u32,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Boots in parallel (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Seconds before a boot counts as hung.
        #[arg(long, default_value_t = 30)]
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
        Cmd::Campaign {
            injections,
            frames,
            seed,
            jobs,
            timeout,
        } => campaign(injections, frames, seed, jobs, timeout),
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

/// The fault-injection campaign (see `Cmd::Campaign`).
fn campaign(
    injections: usize,
    frames: u32,
    seed: u64,
    jobs: Option<usize>,
    timeout: u64,
) -> Result<()> {
    use nooks_bench::campaign::{self, Settings};
    let settings = Settings {
        injections,
        frames,
        seed,
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        timeout: Duration::from_secs(timeout),
    };
    let bar = indicatif::ProgressBar::new(campaign::boots(&settings) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} boots, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let t = std::time::Instant::now();
    let c = campaign::run(&settings, |done| bar.set_position(done as u64))?;
    bar.finish();
    println!(
        "fault injection into e1000: {injections} faults per mechanism, {frames} frames of traffic per boot, {:.0} s",
        t.elapsed().as_secs_f64()
    );
    print!("{}", c.table());
    if c.no_site > 0 {
        println!(
            "  ({} faults had no suitable site and were not run)",
            c.no_site
        );
    }
    println!(
        "Nooks (SOSP 2003), for comparison: 2,000 injections, 317 native crashes, 313 avoided (99%)."
    );
    let dir = artifacts::repo_root().join("results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("campaign.json"),
        serde_json::to_string_pretty(&c.json())?,
    )?;
    std::fs::write(dir.join("campaign.svg"), c.svg())?;
    println!("wrote results/campaign.json and results/campaign.svg");
    Ok(())
}

/// The main job (see `Cmd::Run`).
fn main_job(timeout: u64, frames: u32) -> Result<()> {
    use nooks_bench::compare::{self, ANCHORS, CR3_WRITE_CYCLES, MECHANISMS, Plan};
    let steps = 6;
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("building the kernel, e1000 (gcc) and e1000 (nooks-cc --isolation sfi)");
    let plan = Plan {
        frames: 2000,
        wall_frames: frames,
        timeout: Duration::from_secs(timeout),
    };
    let mut comparison = compare::run(&plan, |done| {
        bar.inc(1);
        bar.set_message(done.to_string());
    })?;
    bar.set_message("host-native run time of the rewritten code (none vs sfi)");
    let host = nooks_bench::rewrite::measure(1000)?;
    bar.inc(1);
    bar.finish_with_message("done");
    println!();
    let host_json = nooks_bench::rewrite::print(&host);
    comparison.host = Some(host_json.clone());
    let rows = comparison.rows();
    let unit = if comparison.instructions {
        "guest instructions per operation (QEMU -icount: exact, deterministic)"
    } else {
        "TSC cycles per operation (KVM: hardware time)"
    };

    println!();
    println!("(1) e1000 in the nooks kernel, same wrappers, one boot per mechanism: {unit}");
    println!(
        "  {:<18} {:>10} {:>10} {:>10} {:>9} {:>9}   {:>9} {:>9} {:>9}",
        "workload",
        "none",
        "mmu",
        "sfi",
        "mmu/none",
        "sfi/none",
        "mmu xing",
        "mmu CR3",
        "mmu TLBfl"
    );
    for r in &rows {
        println!(
            "  {:<18} {:>10.0} {:>10.0} {:>10.0} {:>8.3}x {:>8.3}x   {:>9.2} {:>9.2} {:>9.2}",
            r.label,
            r.cost[0],
            r.cost[1],
            r.cost[2],
            r.cost[1] / r.cost[0],
            r.cost[2] / r.cost[0],
            r.mmu_crossings,
            r.mmu_cr3,
            r.mmu_flushes
        );
    }
    println!();
    println!(
        "  the driver path alone: instructions inside calls into the driver (its code, the kernel"
    );
    println!("  functions it calls, the crossings), per operation");
    println!(
        "  {:<18} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "workload", "none", "mmu", "sfi", "mmu/none", "sfi/none"
    );
    for r in &rows {
        println!(
            "  {:<18} {:>10.0} {:>10.0} {:>10.0} {:>8.3}x {:>8.3}x",
            r.label,
            r.driver[0],
            r.driver[1],
            r.driver[2],
            r.driver[1] / r.driver[0],
            r.driver[2] / r.driver[0]
        );
    }
    println!(
        "  ops: null = ndo_get_stats (kernel -> driver -> kernel); store-heavy = ndo_tx_timeout (rewrites the"
    );
    println!(
        "  256-entry TX ring); tx N = eth0 sends N-byte frames, eth1 down; txrx N = eth0 -> eth1, every frame"
    );
    println!(
        "  verified; rx N = eth1 receives N-byte frames the host feeds into QEMU's hub (eth0 down), every"
    );
    println!(
        "  frame verified. Frame costs include the kernel's own work (building and verifying frames, and for"
    );
    println!("  rx the timer ticks between paced frames), identical under every mechanism.");

    println!();
    println!(
        "(2) frames per second under QEMU TCG: EMULATED wall-clock time, not hardware ({frames} frames, 64..1514 B)"
    );
    println!(
        "  {:<6} {:>10} {:>8} {:>6} {:>6} {:>10} {:>10}",
        "mech", "frames/s", "recv", "lost", "bad", "CR3/frame", "TLBfl/frm"
    );
    for (m, w) in MECHANISMS.iter().zip(&comparison.wall) {
        println!(
            "  {:<6} {:>10} {:>8} {:>6} {:>6} {:>10.2} {:>10.2}",
            m,
            w["fps"].as_u64().unwrap_or(0),
            w["received"].as_u64().unwrap_or(0),
            w["lost"].as_u64().unwrap_or(0),
            w["bad"].as_u64().unwrap_or(0),
            w["per_frame"]["cr3_writes"].as_f64().unwrap_or(0.0),
            w["per_frame"]["tlb_flushes"].as_f64().unwrap_or(0.0)
        );
    }

    println!();
    println!(
        "(3) host-native cost of SFI checks on rewritten code: see the sfi/none column above (real CPU time)"
    );

    println!();
    println!("(4) hardware cost model of the MMU mechanism (model, not a measurement)");
    println!(
        "  a CR3 load costs about {CR3_WRITE_CYCLES:.0} cycles on Haswell (LVDs, Narayanan et al., VEE 2020);"
    );
    println!(
        "  with PCIDs the TLB survives the switch; without them every load also flushes it, whose refill"
    );
    println!(
        "  cost depends on the working set and is not modelled (so the figures below are lower bounds)."
    );
    let null = &rows[0];
    println!(
        "  per crossing (null op): {:.0} more instructions than none, plus {:.1} CR3 loads = ~{:.0} cycles of CR3 writes",
        null.cost[1] - null.cost[0],
        null.mmu_cr3,
        null.mmu_cr3 * CR3_WRITE_CYCLES
    );
    for r in rows
        .iter()
        .filter(|r| r.label.starts_with("txrx") || r.label.starts_with("tx "))
    {
        println!(
            "  per frame ({:<9}): {:>6.0} more instructions, {:>5.1} crossings, {:>5.1} CR3 loads = ~{:>6.0} cycles of CR3 writes",
            r.label,
            r.cost[1] - r.cost[0],
            r.mmu_crossings,
            r.mmu_cr3,
            r.mmu_cr3 * CR3_WRITE_CYCLES
        );
    }
    if qemu::kvm_usable() {
        println!(
            "  KVM is usable here: the counted boots ran on hardware; their cycle counts are real."
        );
    } else {
        println!(
            "  real KVM figures: not available on this host (its CPU shows neither vmx nor svm)."
        );
    }

    println!();
    println!(
        "(5) the IOMMU's cost per frame (txrx, {}): off, on (each device's domain RAM mapped once),",
        if comparison.instructions { "guest instructions" } else { "TSC cycles" }
    );
    println!(
        "  strict (each buffer mapped at dma_map_single, unmapped and invalidated at dma_unmap_single)"
    );
    println!(
        "  {:<6} {:<10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}",
        "mech", "workload", "off", "on", "strict", "on/off", "str/off", "inval/frm", "pages/frm"
    );
    let iommu_rows = comparison.iommu_rows();
    for r in &iommu_rows {
        println!(
            "  {:<6} {:<10} {:>10.0} {:>10.0} {:>10.0} {:>7.3}x {:>7.3}x {:>10.2} {:>10.2}",
            r.mechanism,
            r.label,
            r.cost[0],
            r.cost[1],
            r.cost[2],
            r.cost[1] / r.cost[0],
            r.cost[2] / r.cost[0],
            r.invalidations,
            r.dma_pages
        );
    }
    println!(
        "  an invalidation is a register write and a poll of the unit: a few guest instructions, but on"
    );
    println!(
        "  hardware it waits for the IOMMU (no cited per-invalidation figure; not modelled here)."
    );

    println!();
    println!("published anchors (not measured here):");
    for (what, figure) in ANCHORS {
        println!("  {what:<45} {figure}");
    }

    println!();
    println!("goals:");
    for r in rows.iter().filter(|r| r.label.starts_with("txrx")) {
        let (whole, path) = (r.cost[2] / r.cost[0], r.driver[2] / r.driver[0]);
        println!(
            "  SFI per-frame cost within 5% of none on the e1000 path ({}): whole frame {:.3}x, driver path {:.3}x -> {}",
            r.label,
            whole,
            path,
            if path <= 1.05 { "met" } else { "NOT met" }
        );
    }
    println!(
        "  MMU cost per crossing: {:.0} instructions + {:.0} CR3 loads; per frame (txrx 1514): {:.0} instructions + {:.1} CR3 loads",
        null.cost[1] - null.cost[0],
        null.mmu_cr3,
        rows.iter()
            .find(|r| r.label == "txrx 1514")
            .map_or(f64::NAN, |r| r.cost[1] - r.cost[0]),
        rows.iter()
            .find(|r| r.label == "txrx 1514")
            .map_or(f64::NAN, |r| r.mmu_cr3)
    );

    let dir = artifacts::repo_root().join("results");
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::json!({
        "unit": unit,
        "counted": MECHANISMS.iter().zip(&comparison.counted).map(|(m, r)| serde_json::json!({"mechanism": m, "records": r})).collect::<Vec<_>>(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "workload": r.label, "none": r.cost[0], "mmu": r.cost[1], "sfi": r.cost[2],
            "driver_none": r.driver[0], "driver_mmu": r.driver[1], "driver_sfi": r.driver[2],
            "mmu_crossings": r.mmu_crossings, "mmu_cr3_writes": r.mmu_cr3, "mmu_tlb_flushes": r.mmu_flushes,
        })).collect::<Vec<_>>(),
        "emulated_wall": MECHANISMS.iter().zip(&comparison.wall).map(|(m, w)| serde_json::json!({"mechanism": m, "workload": w})).collect::<Vec<_>>(),
        "host": host_json,
        "iommu": iommu_rows.iter().map(|r| serde_json::json!({
            "mechanism": r.mechanism, "workload": r.label,
            "off": r.cost[0], "on": r.cost[1], "strict": r.cost[2],
            "strict_invalidations_per_frame": r.invalidations, "strict_dma_pages_per_frame": r.dma_pages,
        })).collect::<Vec<_>>(),
        "cost_model": {"cr3_write_cycles": CR3_WRITE_CYCLES, "source": "LVDs, Narayanan et al., VEE 2020 (Haswell)"},
        "anchors": ANCHORS.iter().map(|(a, b)| serde_json::json!({"what": a, "figure": b})).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("main.json"), serde_json::to_string_pretty(&json)?)?;
    let mut csv = String::from(
        "workload,none,mmu,sfi,mmu_over_none,sfi_over_none,mmu_crossings,mmu_cr3_writes,mmu_tlb_flushes\n",
    );
    for r in &rows {
        csv.push_str(&format!(
            "{},{:.1},{:.1},{:.1},{:.4},{:.4},{:.3},{:.3},{:.3}\n",
            r.label,
            r.cost[0],
            r.cost[1],
            r.cost[2],
            r.cost[1] / r.cost[0],
            r.cost[2] / r.cost[0],
            r.mmu_crossings,
            r.mmu_cr3,
            r.mmu_flushes
        ));
    }
    std::fs::write(dir.join("main.csv"), csv)?;
    let mut written = vec![
        "results/main.json".to_string(),
        "results/main.csv".to_string(),
    ];
    for (name, svg) in compare::figures(&comparison, &rows) {
        std::fs::write(dir.join(&name), svg)?;
        written.push(format!("results/{name}"));
    }
    println!();
    println!("wrote {}", written.join(", "));
    Ok(())
}
