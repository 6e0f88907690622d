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
        /// Frames per stream in each counted boot.
        #[arg(long, default_value_t = 2000)]
        frames: u32,
        /// Boots per mechanism (the tables give min/median/max over them).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
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
    /// Benchmark the load-time verifier: code bytes per second on e1000 and
    /// the test drivers (writes results/verify.json).
    VerifyBench {
        /// Verifications of each object.
        #[arg(long, default_value_t = 50)]
        repeats: usize,
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
        /// Wait for gdb on localhost:1234 before the kernel's first
        /// instruction; print the gdb commands for the kernel and for each
        /// driver as the loader places it.
        #[arg(long)]
        gdb: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run {
            timeout,
            frames,
            repeats,
        } => main_job(timeout, frames, repeats),
        Cmd::Ktest { filter, timeout } => {
            let cmdline = match filter {
                Some(f) => format!("mode=test filter={f}"),
                None => "mode=test".to_string(),
            };
            let options = BootOptions {
                echo: true,
                ..BootOptions::default()
            };
            let outcome = boot("ktest", &cmdline, &[], timeout, options)?;
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
        Cmd::VerifyBench { repeats } => {
            let rows = nooks_bench::verify::measure(repeats)?;
            let json = nooks_bench::verify::print(&rows);
            let dir = artifacts::repo_root().join("results");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join("verify.json"),
                serde_json::to_string_pretty(&json)?,
            )?;
            println!("wrote results/verify.json");
            Ok(())
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
            gdb,
        } => {
            let pcap = pcap.then(|| artifacts::build_dir().join("boot"));
            let options = BootOptions {
                echo: true,
                pcap,
                icount,
                gdb: gdb.then_some(1234),
            };
            let outcome = boot("boot", &cmdline, &modules, timeout, options)?;
            explain_faults(&outcome.log, &modules);
            verdict(&outcome)
        }
    }
}

/// Prints each fault report of the boot with the driver's source line, from
/// the DWARF of the object file the module came from.
fn explain_faults(log: &str, modules: &[PathBuf]) {
    for f in serial::records(log)
        .into_iter()
        .filter(|r| r["nooks"] == "fault")
    {
        let domain = f["domain"].as_str().unwrap_or("");
        let module = domain.split('#').next().unwrap_or("");
        let function = f["function"].as_str().unwrap_or("");
        let line = modules
            .iter()
            .find(|m| m.file_name().and_then(|n| n.to_str()) == Some(module))
            .map(|m| {
                nooks_bench::faults::source_line(m, function)
                    .unwrap_or_else(|e| format!("no source line: {e}"))
            })
            .unwrap_or_else(|| "no object file for it".into());
        eprintln!(
            "fault: {domain} ({}): {} at {} [{function}: {line}]",
            f["mechanism"].as_str().unwrap_or("?"),
            f["cause"].as_str().unwrap_or("?"),
            f["address"].as_str().unwrap_or("?"),
        );
    }
}

/// How to boot, besides the command line and modules.
#[derive(Default)]
struct BootOptions {
    echo: bool,
    pcap: Option<PathBuf>,
    icount: bool,
    gdb: Option<u16>,
}

/// Builds the kernel, packs the archive, boots once. A module the kernel
/// would skip (not named `*.o`, or not an x86-64 relocatable object the
/// loader can read) is refused here, with the reason.
fn boot(
    name: &str,
    cmdline: &str,
    modules: &[PathBuf],
    timeout: u64,
    options: BootOptions,
) -> Result<qemu::Outcome> {
    let mut members = Vec::new();
    for m in modules {
        let bytes =
            std::fs::read(m).map_err(|e| anyhow::anyhow!("reading {}: {e}", m.display()))?;
        let file = m.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !file.ends_with(".o") {
            bail!(
                "{}: the kernel loads boot-archive members named *.o and would skip this one; rename it",
                m.display()
            );
        }
        if let Err(e) = nooks_loader::Object::parse(&bytes) {
            bail!(
                "{}: not a driver object the kernel can load: {e}",
                m.display()
            );
        }
        members.push((file.to_string(), bytes));
    }
    eprintln!("building the kernel ...");
    let kernel = artifacts::build_kernel()?;
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
    b.pcap_prefix = options.pcap;
    b.echo = options.echo;
    b.icount = options.icount;
    b.gdb = options.gdb;
    eprintln!("booting: {:?}", qemu::command(&b));
    if let Some(port) = b.gdb {
        // Nobody is timed while a person debugs.
        b.timeout = Duration::from_secs(24 * 3600);
        eprintln!(
            "gdb: QEMU waits for gdb; in another terminal:\n  gdb {} -ex 'target remote :{port}'\n\
             then, as each driver loads, the add-symbol-file line printed below (from the directory of the objects), and `continue`",
            b.kernel.display()
        );
    }
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
fn main_job(timeout: u64, frames: u32, repeats: usize) -> Result<()> {
    use nooks_bench::compare::{
        self, ANCHORS, CR3_WRITE_CYCLES, IOMMU_MODES, MECHANISMS, Plan, index,
    };
    use std::io::IsTerminal;
    let plan = Plan {
        frames,
        repeats: repeats.max(1),
        timeout: Duration::from_secs(timeout),
    };
    // A progress bar on a terminal; plain lines on stderr otherwise (CI, a
    // pipe), so a long run is never silent.
    let tty = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(
        (MECHANISMS.len() * (2 * plan.repeats + IOMMU_MODES.len()) + 2) as u64,
    );
    if tty {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = std::time::Instant::now();
    let progress = |msg: &str| {
        bar.inc(1);
        bar.set_message(msg.to_string());
        if !tty {
            eprintln!("[{:>4} s] {msg}", started.elapsed().as_secs());
        }
    };
    progress("building the kernel, e1000 (gcc) and e1000 (nooks-cc --isolation sfi)");
    let mut comparison = compare::run(&plan, |done| progress(done))?;
    progress("host-native run time of the rewritten code (none vs sfi)");
    let host = nooks_bench::rewrite::measure(1000)?;
    bar.finish_and_clear();
    println!();
    let host_json = nooks_bench::rewrite::print(&host);
    comparison.host = Some(host_json.clone());
    let rows = comparison.rows();
    let unit = if comparison.instructions {
        "guest instructions per operation (QEMU -icount: exact)"
    } else {
        "TSC cycles per operation (KVM: hardware time)"
    };
    let (mmu, pks, sfi) = (index("mmu"), index("pks"), index("sfi"));
    let meta = &comparison.metadata;
    println!(
        "measured at {} on commit {}{} — host {} ({} cores, load {} before, {} after); {}; {}; {}; {}",
        meta["date"].as_str().unwrap_or("?"),
        meta["commit"].as_str().unwrap_or("?"),
        if meta["uncommitted_changes"] == true {
            " (with uncommitted changes)"
        } else {
            ""
        },
        meta["host_cpu"].as_str().unwrap_or("?"),
        meta["host_cores"],
        meta["load_average_1_5_15"].as_str().unwrap_or("?"),
        meta["load_average_after"].as_str().unwrap_or("?"),
        meta["qemu"].as_str().unwrap_or("?"),
        meta["accelerator"].as_str().unwrap_or("?"),
        meta["gcc"].as_str().unwrap_or("?"),
        meta["rustc"].as_str().unwrap_or("?"),
    );

    // One table over the mechanisms: per row the boots' statistics, then
    // each mechanism's ratio to none.
    let table = |stats: &dyn Fn(&compare::Row) -> &[compare::Stat],
                 ratio: &dyn Fn(&compare::Row, usize) -> f64| {
        let mut h = format!("  {:<16}", "workload");
        for m in MECHANISMS {
            h.push_str(&format!(" {m:>20}"));
        }
        for m in &MECHANISMS[1..] {
            h.push_str(&format!(" {:>9}", format!("{m}/none")));
        }
        println!("{h}");
        for r in &rows {
            let mut line = format!("  {:<16}", r.label);
            for c in stats(r) {
                line.push_str(&format!(" {:>20}", c.text()));
            }
            for m in 1..MECHANISMS.len() {
                line.push_str(&format!(" {:>8.3}x", ratio(r, m)));
            }
            println!("{line}");
        }
    };
    println!();
    println!(
        "(1) e1000 in the nooks kernel, same wrappers: {unit}; median of {} boots per mechanism (min-max where they differ)",
        plan.repeats
    );
    table(&|r| &r.cost, &compare::Row::ratio);
    println!();
    println!(
        "  the driver path alone: instructions inside calls into the driver (its code, the kernel"
    );
    println!("  functions it calls, the crossings), per operation");
    table(&|r| &r.driver, &compare::Row::driver_ratio);
    println!();
    println!(
        "  per operation: crossings (kernel->driver calls + driver->kernel gate calls), CR3 loads and"
    );
    println!("  TLB flushes (mmu), IA32_PKRS writes (pks)");
    println!(
        "  {:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "workload", "xing mmu", "xing pks", "xing sfi", "mmu CR3", "mmu TLBfl", "pks WRMSR"
    );
    for r in &rows {
        println!(
            "  {:<16} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            r.label,
            r.crossings[mmu],
            r.crossings[pks],
            r.crossings[sfi],
            r.mmu_cr3,
            r.mmu_flushes,
            r.pkrs_writes
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
    println!(
        "  Not reported: frames per second under TCG (the guest's TSC calibration against the PIT moved from"
    );
    println!("  2.6 to 11 GHz between runs under emulation; an instruction count does not move).");

    println!();
    println!(
        "(2) the IOMMU's cost per frame (txrx, {}): off, on (each device's domain RAM mapped once),",
        if comparison.instructions {
            "guest instructions"
        } else {
            "TSC cycles"
        }
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
    println!(
        "(3) host-native cost of SFI checks on rewritten code: see the sfi/none column above (real CPU time)"
    );

    println!();
    println!("(4) hardware cost model of the crossings (a model, not a measurement)");
    println!(
        "  CR3 load (mmu): about {CR3_WRITE_CYCLES:.0} cycles on Haswell (LVDs, Narayanan et al., VEE 2020); with"
    );
    println!(
        "  PCIDs the TLB survives; without them every load also flushes it, whose refill is not modelled."
    );
    println!(
        "  WRMSR of IA32_PKRS (pks): no published per-write measurement we could cite; WRMSR serialises, and"
    );
    println!(
        "  PKS keeps the TLB. BULKHEAD (NDSS 2025) reports 2.44% whole-system overhead with PKS compartments."
    );
    println!(
        "  So the model counts the writes per operation; multiply by a cycle cost when one is measured."
    );
    let null = &rows[0];
    println!(
        "  null crossing: mmu {:.0} more instructions + {:.1} CR3 loads (~{:.0} cycles); pks {:.0} more instructions + {:.1} PKRS writes",
        null.cost[mmu].median - null.cost[0].median,
        null.mmu_cr3,
        null.mmu_cr3 * CR3_WRITE_CYCLES,
        null.cost[pks].median - null.cost[0].median,
        null.pkrs_writes
    );
    for r in rows
        .iter()
        .filter(|r| r.label.starts_with("txrx") || r.label.starts_with("tx "))
    {
        println!(
            "  per frame ({:<9}): mmu {:>5.0} more instructions, {:>5.1} CR3 loads (~{:>5.0} cycles); pks {:>5.0} more instructions, {:>5.1} PKRS writes",
            r.label,
            r.cost[mmu].median - r.cost[0].median,
            r.mmu_cr3,
            r.mmu_cr3 * CR3_WRITE_CYCLES,
            r.cost[pks].median - r.cost[0].median,
            r.pkrs_writes
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

    // The load-time verifier: what it costs the guest per load of
    // e1000.sfi.o, and its rate on the host.
    let mut guest: Vec<u64> = comparison
        .verify
        .iter()
        .filter(|r| r["ok"] == true)
        .filter_map(|r| r["cycles"].as_u64())
        .collect();
    guest.sort_unstable();
    let verify_host = nooks_bench::verify::measure(20)?;
    let e1000_host = verify_host.iter().find(|r| r.name == "e1000.sfi.o");
    let verify_bytes = comparison
        .verify
        .first()
        .and_then(|r| r["bytes"].as_u64())
        .unwrap_or(0);
    println!();
    println!("load-time verification of e1000.sfi.o ({verify_bytes} bytes of code):");
    if let (Some(min), Some(max)) = (guest.first(), guest.last()) {
        println!(
            "  guest: {} to {} {} per load ({} loads; median {})",
            min,
            max,
            if comparison.instructions {
                "instructions"
            } else {
                "cycles"
            },
            guest.len(),
            guest[guest.len() / 2]
        );
    }
    if let Some(h) = e1000_host {
        println!(
            "  host: {:.0} us best of 20 ({:.2} MiB/s of code); `nooks-bench verify-bench` for every object",
            h.best * 1e6,
            h.bytes as f64 / h.best / (1 << 20) as f64
        );
    }

    println!();
    println!("published anchors (not measured here):");
    for (what, figure) in ANCHORS {
        println!("  {what:<45} {figure}");
    }

    println!();
    println!("goals:");
    for r in rows.iter().filter(|r| r.label.starts_with("txrx")) {
        let (whole, path) = (r.ratio(sfi), r.driver_ratio(sfi));
        println!(
            "  SFI per-frame cost within 5% of none on the e1000 path ({}): whole frame {:.3}x, driver path {:.3}x -> {}",
            r.label,
            whole,
            path,
            if path <= 1.05 { "met" } else { "NOT met" }
        );
    }

    let dir = artifacts::repo_root().join("results");
    std::fs::create_dir_all(&dir)?;
    let stat =
        |s: &compare::Stat| serde_json::json!({"min": s.min, "median": s.median, "max": s.max});
    let json = serde_json::json!({
        "metadata": comparison.metadata,
        "unit": unit,
        "repeats": plan.repeats,
        "frames_per_stream": plan.frames,
        "counted": MECHANISMS.iter().zip(&comparison.counted).map(|(m, r)| serde_json::json!({"mechanism": m, "boots": r})).collect::<Vec<_>>(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "workload": r.label,
            "cost": MECHANISMS.iter().zip(&r.cost).map(|(m, c)| (m.to_string(), stat(c))).collect::<serde_json::Map<_, _>>(),
            "driver_path": MECHANISMS.iter().zip(&r.driver).map(|(m, c)| (m.to_string(), stat(c))).collect::<serde_json::Map<_, _>>(),
            "crossings": MECHANISMS.iter().zip(&r.crossings).map(|(m, c)| (m.to_string(), serde_json::json!(c))).collect::<serde_json::Map<_, _>>(),
            "mmu_cr3_writes": r.mmu_cr3, "mmu_tlb_flushes": r.mmu_flushes, "pks_pkrs_writes": r.pkrs_writes,
        })).collect::<Vec<_>>(),
        "iommu": iommu_rows.iter().map(|r| serde_json::json!({
            "mechanism": r.mechanism, "workload": r.label,
            "off": r.cost[0], "on": r.cost[1], "strict": r.cost[2],
            "strict_invalidations_per_frame": r.invalidations, "strict_dma_pages_per_frame": r.dma_pages,
        })).collect::<Vec<_>>(),
        "host": host_json,
        "verification": {
            "object": "e1000.sfi.o",
            "bytes": verify_bytes,
            "guest_per_load": {"unit": if comparison.instructions { "instructions" } else { "cycles" }, "min": guest.first(), "median": guest.get(guest.len() / 2), "max": guest.last(), "loads": guest.len()},
            "host_best_s": e1000_host.map(|h| h.best),
            "host_mib_per_s": e1000_host.map(|h| h.bytes as f64 / h.best / (1 << 20) as f64),
        },
        "cost_model": {
            "cr3_write_cycles": CR3_WRITE_CYCLES, "cr3_source": "LVDs, Narayanan et al., VEE 2020 (Haswell)",
            "pkrs_write_cycles": null, "pkrs_source": "none found: counted, not costed",
        },
        "anchors": ANCHORS.iter().map(|(a, b)| serde_json::json!({"what": a, "figure": b})).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("main.json"), serde_json::to_string_pretty(&json)?)?;
    // One line per workload and mechanism, every unit in its column name.
    let mut csv = String::from(
        "workload,mechanism,boots,instr_per_op_min,instr_per_op_median,instr_per_op_max,over_none,driver_path_instr_per_op_median,driver_path_over_none,crossings_per_op,cr3_writes_per_op,tlb_flushes_per_op,pkrs_writes_per_op\n",
    );
    for r in &rows {
        for (m, name) in MECHANISMS.iter().enumerate() {
            let zero_unless = |yes: bool, v: f64| if yes { v } else { 0.0 };
            csv.push_str(&format!(
                "{},{},{},{:.1},{:.1},{:.1},{:.4},{:.1},{:.4},{:.3},{:.3},{:.3},{:.3}\n",
                r.label,
                name,
                plan.repeats,
                r.cost[m].min,
                r.cost[m].median,
                r.cost[m].max,
                r.ratio(m),
                r.driver[m].median,
                r.driver_ratio(m),
                r.crossings[m],
                zero_unless(m == mmu, r.mmu_cr3),
                zero_unless(m == mmu, r.mmu_flushes),
                zero_unless(m == pks, r.pkrs_writes),
            ));
        }
    }
    std::fs::write(dir.join("main.csv"), csv)?;
    let mut iommu_csv = String::from(
        "workload,mechanism,instr_per_frame_iommu_off,instr_per_frame_iommu_on,instr_per_frame_iommu_strict,strict_invalidations_per_frame,strict_dma_pages_per_frame\n",
    );
    for r in &iommu_rows {
        iommu_csv.push_str(&format!(
            "{},{},{:.1},{:.1},{:.1},{:.3},{:.3}\n",
            r.label, r.mechanism, r.cost[0], r.cost[1], r.cost[2], r.invalidations, r.dma_pages
        ));
    }
    std::fs::write(dir.join("iommu.csv"), iommu_csv)?;
    let mut written = vec![
        "results/main.json".to_string(),
        "results/main.csv".to_string(),
        "results/iommu.csv".to_string(),
    ];
    for (name, svg) in compare::figures(&comparison, &rows) {
        std::fs::write(dir.join(&name), svg)?;
        written.push(format!("results/{name}"));
    }
    println!();
    println!("wrote {}", written.join(", "));
    println!("(took {} s)", started.elapsed().as_secs());
    Ok(())
}
