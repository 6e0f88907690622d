//! The main job's comparison of isolation mechanisms on the same wrappers:
//! the original e1000 under `none` and `mmu`, and e1000 rewritten by
//! `nooks-cc --isolation sfi` under `sfi`, each in its own boot.
//!
//! Four kinds of figures, never mixed up:
//! 1. deterministic in-guest counts per operation: guest instructions (QEMU
//!    `-icount`, TSC minus idle), kernel↔driver crossings, CR3 loads, TLB
//!    flushes (`mode=bench`);
//! 2. frames per second under QEMU TCG: emulated wall-clock time, noisy, not
//!    hardware (`mode=net`);
//! 3. host-native CPU time of rewritten code, `sfi` against `none`
//!    ([`crate::rewrite`]);
//! 4. a hardware cost model of the MMU mechanism's CR3 loads, with its
//!    source, beside published figures of Nooks, LXFI and LVDs.

use crate::plot::BarChart;
use crate::{artifacts, qemu, serial};
use anyhow::{Result, bail};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The mechanisms, in report order.
pub const MECHANISMS: [&str; 3] = ["none", "mmu", "sfi"];

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Frames per stream in the counted (icount) boots.
    pub frames: u32,
    /// Frames in each emulated wall-clock boot.
    pub wall_frames: u32,
    /// Per-boot timeout.
    pub timeout: Duration,
}

/// One mechanism's boot images.
struct Subject {
    mechanism: &'static str,
    object: String,
    bytes: Vec<u8>,
    cmdline: &'static str,
}

/// Everything the comparison measured.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// `bench` records per mechanism (same order as [`MECHANISMS`]).
    pub counted: Vec<Vec<Value>>,
    /// Whether the counts are guest instructions (`-icount` under TCG) or TSC cycles (KVM).
    pub instructions: bool,
    /// The `workload` record of each mechanism's emulated wall-clock run.
    pub wall: Vec<Value>,
    /// Host-native rewrite report (JSON of [`crate::rewrite::print`]).
    pub host: Option<Value>,
    /// `bench` records of the counted boots with the IOMMU off and strict
    /// (per mechanism, [`IOMMU_MODES`] order); `counted` has it on.
    pub iommu: Vec<[Vec<Value>; 2]>,
}

/// The IOMMU modes the comparison boots besides the default (`on`).
pub const IOMMU_MODES: [&str; 2] = ["off", "strict"];

/// Builds the subjects: the original object, and the SFI rewrite.
fn subjects() -> Result<Vec<Subject>> {
    use nooks_sfi_compiler::{Isolation, Options, rewrite};
    let original = std::fs::read(artifacts::build_driver("e1000")?)?;
    let sfi = rewrite(
        &original,
        &Options {
            isolation: Isolation::Sfi,
            ..Options::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("nooks-cc --isolation sfi e1000.o: {e}"))?;
    std::fs::write(
        artifacts::build_dir().join("drivers").join("e1000.sfi.o"),
        &sfi.object,
    )?;
    Ok(vec![
        Subject {
            mechanism: "none",
            object: "e1000.o".into(),
            bytes: original.clone(),
            cmdline: "isolation=none",
        },
        Subject {
            mechanism: "mmu",
            object: "e1000.o".into(),
            bytes: original,
            cmdline: "isolation=mmu",
        },
        Subject {
            mechanism: "sfi",
            object: "e1000.sfi.o".into(),
            bytes: sfi.object,
            cmdline: "",
        },
    ])
}

fn boot_one(
    kernel: &PathBuf,
    s: &Subject,
    mode: &str,
    icount: bool,
    timeout: Duration,
) -> Result<qemu::Outcome> {
    let tag = format!(
        "main-{}-{}{}",
        s.mechanism,
        if icount { "count" } else { "wall" },
        if mode.contains("only=rx") { "-rx" } else { "" }
    );
    let archive = artifacts::boot_archive(&tag, kernel, &[(s.object.as_str(), s.bytes.clone())])?;
    let mut b = qemu::Boot::new(
        kernel.clone(),
        Some(archive.path.clone()),
        format!("{mode} {} {}", s.cmdline, archive.cmdline()),
    );
    b.timeout = timeout;
    b.icount = icount;
    b.feed = mode.contains("feed=on");
    let out = qemu::run(&b)?;
    if out.verdict != qemu::Verdict::Success {
        bail!(
            "{} ({mode}): {:?}\n---- serial log ----\n{}",
            s.mechanism,
            out.verdict,
            out.log
        );
    }
    Ok(out)
}

/// Runs the comparison; `step` is told about each finished step.
pub fn run(plan: &Plan, mut step: impl FnMut(&str)) -> Result<Comparison> {
    let kernel = artifacts::build_kernel()?;
    let subjects = subjects()?;
    step("built the kernel, e1000.o (gcc) and e1000.sfi.o (nooks-cc)");
    let instructions = !qemu::accel_args().iter().any(|a| a == "kvm");
    // The counted boots, side by side: per mechanism one of the workloads
    // that need nothing from outside (`-icount sleep=off`: their counts are
    // the same at every run, whatever else the host runs) and one that
    // receives a stream the host feeds (idle time then passes at the host's
    // pace, so how many frames an interrupt reaps varies a little).
    // Then the local workloads again with the IOMMU off and strict: what
    // confining DMA costs.
    let parts: [(&str, usize); 2] = [("", 8), ("only=rx feed=on", 3)];
    let boots: Vec<(&Subject, String, usize)> = subjects
        .iter()
        .flat_map(|s| parts.iter().map(move |&(extra, want)| (s, extra.to_string(), want)))
        .chain(subjects.iter().flat_map(|s| {
            IOMMU_MODES
                .iter()
                .map(move |m| (s, format!("iommu={m}"), parts[0].1))
        }))
        .collect();
    let results: Vec<Result<Vec<Value>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = boots
            .iter()
            .map(|(s, extra, want)| {
                let kernel = &kernel;
                scope.spawn(move || counted_boot(kernel, s, extra, *want, plan))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("boot thread panicked")))
            })
            .collect()
    });
    let mut results = results.into_iter().collect::<Result<Vec<_>>>()?;
    let iommu_records = results.split_off(subjects.len() * parts.len());
    // Each mechanism's boots (in `parts` order), as one list of records.
    let counted: Vec<Vec<Value>> = results
        .chunks(parts.len())
        .map(|boots| boots.concat())
        .collect();
    let iommu = iommu_records
        .chunks(IOMMU_MODES.len())
        .map(|b| [b[0].clone(), b[1].clone()])
        .collect();
    step("counted boots (QEMU -icount): none, mmu, sfi; IOMMU off, on, strict");
    // Wall-clock boots one at a time: they measure (emulated) time.
    let mut wall = Vec::new();
    for s in &subjects {
        let mode = format!("mode=net frames={}", plan.wall_frames);
        let out = boot_one(&kernel, s, &mode, false, plan.timeout)?;
        let Some(w) = serial::records(&out.log)
            .into_iter()
            .find(|r| r["nooks"] == "workload")
        else {
            bail!("{}: no workload record\n{}", s.mechanism, out.log);
        };
        wall.push(w);
        step(&format!("emulated wall-clock boot: {}", s.mechanism));
    }
    Ok(Comparison {
        counted,
        instructions,
        wall,
        host: None,
        iommu,
    })
}

/// One counted (`-icount`) `mode=bench` boot with `extra` on the command
/// line: its `bench` records, `want` of them, every one ok.
fn counted_boot(
    kernel: &PathBuf,
    s: &Subject,
    extra: &str,
    want: usize,
    plan: &Plan,
) -> Result<Vec<Value>> {
    let mode = format!("mode=bench {extra} frames={}", plan.frames);
    let out = boot_one(kernel, s, &mode, true, plan.timeout)?;
    let records: Vec<Value> = serial::records(&out.log)
        .into_iter()
        .filter(|r| r["nooks"] == "bench")
        .collect();
    if records.len() != want {
        bail!(
            "{} ({mode}): {} bench records, want {want}\n{}",
            s.mechanism,
            records.len(),
            out.log
        );
    }
    if let Some(bad) = records.iter().find(|r| r["ok"] != true) {
        bail!("{}: workload failed: {bad}\n{}", s.mechanism, out.log);
    }
    Ok(records)
}

/// The IOMMU's cost on one workload under one mechanism (index into
/// [`MECHANISMS`]): per operation under off, on and strict, with the
/// invalidations and DMA pages (un)mapped per operation under strict.
#[derive(Debug, Clone)]
pub struct IommuRow {
    /// Workload label.
    pub label: String,
    /// Mechanism.
    pub mechanism: &'static str,
    /// Cost per operation: off, on, strict.
    pub cost: [f64; 3],
    /// Invalidations per operation under strict.
    pub invalidations: f64,
    /// Pages mapped plus unmapped per operation under strict.
    pub dma_pages: f64,
}

impl Comparison {
    /// The IOMMU table: txrx at each size, per mechanism.
    pub fn iommu_rows(&self) -> Vec<IommuRow> {
        let mut rows = Vec::new();
        for (i, m) in MECHANISMS.iter().enumerate() {
            for size in [64, 512, 1514] {
                let on = find(&self.counted[i], "txrx", size);
                let off = find(&self.iommu[i][0], "txrx", size);
                let strict = find(&self.iommu[i][1], "txrx", size);
                rows.push(IommuRow {
                    label: format!("txrx {size}"),
                    mechanism: m,
                    cost: [off, on, strict].map(|r| r.map_or(f64::NAN, per_op)),
                    invalidations: strict.map_or(f64::NAN, |r| per_op_of(r, "invalidations")),
                    dma_pages: strict.map_or(f64::NAN, |r| per_op_of(r, "dma_pages")),
                });
            }
        }
        rows
    }
}

/// Per-operation cost of one `bench` record: (cycles − idle) / ops.
pub fn per_op(r: &Value) -> f64 {
    let n = |k: &str| r[k].as_f64().unwrap_or(0.0);
    (n("cycles") - n("idle")) / n("ops").max(1.0)
}

/// Per-operation value of a counter field.
pub fn per_op_of(r: &Value, field: &str) -> f64 {
    r[field].as_f64().unwrap_or(0.0) / r["ops"].as_f64().unwrap_or(1.0).max(1.0)
}

/// One row of the counted table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Workload label (`null crossing`, `store-heavy op`, `tx 64`, `txrx 512`, `rx 1514`).
    pub label: String,
    /// Cost per operation per mechanism.
    pub cost: [f64; 3],
    /// The part of it inside calls into the driver, per mechanism.
    pub driver: [f64; 3],
    /// MMU crossings (entries + exits) per operation.
    pub mmu_crossings: f64,
    /// MMU CR3 loads per operation.
    pub mmu_cr3: f64,
    /// MMU TLB flushes per operation.
    pub mmu_flushes: f64,
}

fn find<'a>(records: &'a [Value], workload: &str, size: u64) -> Option<&'a Value> {
    records
        .iter()
        .find(|r| r["workload"] == workload && r["size"].as_u64() == Some(size))
}

impl Comparison {
    /// The counted table: every workload.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let mmu = &self.counted[1];
        let mut push = |label: String, workload: &str, size: u64| {
            let cost: Vec<f64> = self
                .counted
                .iter()
                .map(|recs| find(recs, workload, size).map_or(f64::NAN, per_op))
                .collect();
            let driver: Vec<f64> = self
                .counted
                .iter()
                .map(|recs| find(recs, workload, size).map_or(f64::NAN, |r| per_op_of(r, "inside")))
                .collect();
            let m = find(mmu, workload, size);
            rows.push(Row {
                label,
                cost: [cost[0], cost[1], cost[2]],
                driver: [driver[0], driver[1], driver[2]],
                mmu_crossings: m.map_or(f64::NAN, |r| {
                    per_op_of(r, "entries") + per_op_of(r, "exits")
                }),
                mmu_cr3: m.map_or(f64::NAN, |r| per_op_of(r, "cr3_writes")),
                mmu_flushes: m.map_or(f64::NAN, |r| per_op_of(r, "tlb_flushes")),
            });
        };
        push("null crossing".into(), "null", 0);
        push("store-heavy op".into(), "store", 0);
        for size in [64, 512, 1514] {
            push(format!("tx {size}"), "tx", size);
        }
        for size in [64, 512, 1514] {
            push(format!("txrx {size}"), "txrx", size);
        }
        for size in [64, 512, 1514] {
            push(format!("rx {size}"), "rx", size);
        }
        rows
    }
}

/// Cycles of one CR3 load on Haswell, as measured by the LVDs paper.
pub const CR3_WRITE_CYCLES: f64 = 130.0;

/// The published figures we compare against (not measured here).
pub const ANCHORS: &[(&str, &str)] = &[
    (
        "Nooks, e1000 send (Swift et al., SOSP 2003)",
        "0.91 relative throughput; CPU 21.4% -> 39.3%",
    ),
    (
        "Nooks, e1000 receive (SOSP 2003)",
        "0.92 relative throughput; CPU 15.2% -> 15.5%",
    ),
    (
        "LXFI (Mao et al., SOSP 2011)",
        "2.2x to 3.7x the CPU of an unisolated e1000 at full load",
    ),
    (
        "LVDs (Narayanan et al., VEE 2020)",
        "a VMFUNC call and reply between domains: 396 cycles; CR3 write about 130 cycles (Haswell)",
    ),
];

/// The figures as SVG documents: (file name, contents).
pub fn figures(c: &Comparison, rows: &[Row]) -> Vec<(String, String)> {
    let unit = if c.instructions {
        "guest instructions (QEMU -icount, exact)"
    } else {
        "TSC cycles (KVM)"
    };
    let relative = BarChart {
        title: "e1000 in the nooks kernel: cost relative to no isolation".into(),
        subtitle: format!("per operation, {unit}; same wrappers, one boot per mechanism"),
        y_label: "x none".into(),
        series: MECHANISMS.iter().map(|m| m.to_string()).collect(),
        groups: rows
            .iter()
            .map(|r| {
                (
                    r.label.clone(),
                    r.cost.iter().map(|v| v / r.cost[0]).collect(),
                )
            })
            .collect(),
        reference: Some(1.0),
    };
    let wall = BarChart {
        title: "e1000 frames per second under QEMU TCG".into(),
        subtitle: "EMULATED wall-clock time (not hardware); 64..1514-byte frames eth0 -> eth1"
            .into(),
        y_label: "frames/s (emulated)".into(),
        series: vec!["frames/s".into()],
        groups: MECHANISMS
            .iter()
            .zip(&c.wall)
            .map(|(m, w)| (m.to_string(), vec![w["fps"].as_f64().unwrap_or(f64::NAN)]))
            .collect(),
        reference: None,
    };
    let mut out = vec![
        ("relative_cost.svg".to_string(), relative.svg()),
        ("tcg_fps.svg".to_string(), wall.svg()),
    ];
    if let Some(host) = &c.host {
        let kernels = host["kernels"].as_array().cloned().unwrap_or_default();
        let chart = BarChart {
            title: "SFI checks on the host: sfi / none run time".into(),
            subtitle: "real CPU time, best of N, rewritten code with and without store checks"
                .into(),
            y_label: "x none".into(),
            series: vec!["sfi / none".into()],
            groups: kernels
                .iter()
                .map(|k| {
                    (
                        k["name"].as_str().unwrap_or("?").to_string(),
                        vec![k["sfi_overhead"].as_f64().unwrap_or(f64::NAN)],
                    )
                })
                .collect(),
            reference: Some(1.0),
        };
        out.push(("host_sfi_overhead.svg".to_string(), chart.svg()));
    }
    out
}
