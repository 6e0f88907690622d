//! The main job's comparison of isolation mechanisms on the same wrappers:
//! the original e1000 under `none`, `mmu` and `pks`, and e1000 rewritten by
//! `nooks-cc --isolation sfi` under `sfi`, each in boots of its own.
//!
//! Kinds of figures, never mixed up:
//! 1. in-guest counts per operation: guest instructions (QEMU `-icount`, TSC
//!    minus idle), kernel↔driver crossings, CR3 loads, TLB flushes, IA32_PKRS
//!    writes (`mode=bench`). Each mechanism is booted [`Plan::repeats`] times
//!    and reported as min/median/max: every workload but RX runs with
//!    `-icount sleep=off` and gives the same count at every boot (so min =
//!    max shows it), RX is fed by the host and moves a little;
//! 2. the IOMMU's cost: the TX+RX workloads again with `iommu=off` and
//!    `iommu=strict` (one boot each);
//! 3. host-native CPU time of rewritten code, `sfi` against `none`
//!    ([`crate::rewrite`]);
//! 4. a hardware cost model of the crossings (CR3 loads, PKRS writes), each
//!    with its source or the statement that none exists, beside published
//!    figures of Nooks, LXFI and LVDs.
//!
//! Frames per second under TCG are not reported: the guest measures time
//! with a TSC it calibrates against the PIT, and under TCG that calibration
//! moved from 2.6 to 11 GHz between runs (and reordered the mechanisms); an
//! instruction count is the stable figure.

use crate::plot::BarChart;
use crate::{artifacts, qemu, serial};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The mechanisms, in report order.
pub const MECHANISMS: [&str; 4] = ["none", "mmu", "pks", "sfi"];

/// The IOMMU modes the comparison boots besides the default (`on`).
pub const IOMMU_MODES: [&str; 2] = ["off", "strict"];

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Frames per stream in the counted (icount) boots.
    pub frames: u32,
    /// Boots per mechanism (min/median/max over them).
    pub repeats: usize,
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
    /// `bench` records per mechanism ([`MECHANISMS`] order), per boot.
    pub counted: Vec<Vec<Vec<Value>>>,
    /// Whether the counts are guest instructions (`-icount` under TCG) or TSC cycles (KVM).
    pub instructions: bool,
    /// Host-native rewrite report (JSON of [`crate::rewrite::print`]).
    pub host: Option<Value>,
    /// `bench` records of the boots with the IOMMU off and strict (per
    /// mechanism, [`IOMMU_MODES`] order); `counted` has it on.
    pub iommu: Vec<[Vec<Value>; 2]>,
    /// The kernel's `verify` records: what proving the sfi object safe at
    /// each load cost (guest cycles, instructions under `-icount`).
    pub verify: Vec<Value>,
    /// What the figures were measured on, and when.
    pub metadata: Value,
}

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
    let original_as = |mechanism, cmdline| Subject {
        mechanism,
        object: "e1000.o".into(),
        bytes: original.clone(),
        cmdline,
    };
    Ok(vec![
        original_as("none", "isolation=none"),
        original_as("mmu", "isolation=mmu"),
        original_as("pks", "isolation=pks"),
        Subject {
            mechanism: "sfi",
            object: "e1000.sfi.o".into(),
            bytes: sfi.object,
            cmdline: "",
        },
    ])
}

/// One counted (`-icount`) `mode=bench` boot with `extra` on the command
/// line: its `bench` records, `want` of them, every one ok.
fn counted_boot(
    kernel: &PathBuf,
    s: &Subject,
    extra: &str,
    want: usize,
    plan: &Plan,
    tag: &str,
) -> Result<Vec<Value>> {
    let mode = format!("mode=bench {extra} frames={}", plan.frames);
    let archive = artifacts::boot_archive(
        &format!("main-{}-{tag}", s.mechanism),
        kernel,
        &[(s.object.as_str(), s.bytes.clone())],
    )?;
    let mut b = qemu::Boot::new(
        kernel.clone(),
        Some(archive.path.clone()),
        format!("{mode} {} {}", s.cmdline, archive.cmdline()),
    );
    b.timeout = plan.timeout;
    b.icount = true;
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
    // The bench records, then the load-time verifier's (sfi objects), which
    // `run` moves to `Comparison::verify`.
    let (mut records, verify): (Vec<Value>, Vec<Value>) = serial::records(&out.log)
        .into_iter()
        .filter(|r| r["nooks"] == "bench" || r["nooks"] == "verify")
        .partition(|r| r["nooks"] == "bench");
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
    records.extend(verify.into_iter().map(|mut r| {
        r["mechanism"] = Value::String(s.mechanism.to_string());
        r
    }));
    Ok(records)
}

/// The output of a command, trimmed ("?" if it cannot run).
fn output_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(
            || "?".into(),
            |s| s.lines().next().unwrap_or("").trim().to_string(),
        )
}

/// What the figures are measured on: commit, date, host CPU, tool versions
/// and the machine's load.
pub fn metadata() -> Value {
    let root = artifacts::repo_root();
    let root = root.to_string_lossy();
    let commit = output_of("git", &["-C", &root, "rev-parse", "HEAD"]);
    let dirty = !output_of(
        "git",
        &["-C", &root, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_empty();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({
        "commit": commit,
        "uncommitted_changes": dirty,
        "date": output_of("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "host_cpu": cpu,
        "host_cores": cores,
        "load_average_1_5_15": load_average(),
        "qemu": output_of("qemu-system-x86_64", &["--version"]),
        "gcc": output_of("gcc", &["--version"]),
        "rustc": output_of("rustc", &["--version"]),
        "accelerator": qemu::accel_args().join(" "),
    })
}

/// Runs the comparison; `step` is told about each finished step.
pub fn run(plan: &Plan, mut step: impl FnMut(&str)) -> Result<Comparison> {
    let before = metadata();
    let kernel = artifacts::build_kernel()?;
    let subjects = subjects()?;
    step("built the kernel, e1000.o (gcc) and e1000.sfi.o (nooks-cc)");
    let instructions = !qemu::accel_args().iter().any(|a| a == "kvm");
    // Per mechanism and repeat: the workloads that need nothing from outside
    // (`-icount sleep=off`: the same counts at every boot, whatever else the
    // host runs) and the one that receives a stream the host feeds (idle
    // time then passes at the host's pace, so how many frames an interrupt
    // reaps varies a little). Then the TX+RX workloads with the IOMMU off
    // and strict: what confining DMA costs.
    let parts: [(&str, usize); 2] = [("", 8), ("only=rx feed=on", 3)];
    let mut boots: Vec<(&Subject, String, usize, String)> = Vec::new();
    for s in &subjects {
        for r in 0..plan.repeats {
            for (i, &(extra, want)) in parts.iter().enumerate() {
                boots.push((s, extra.to_string(), want, format!("r{r}p{i}")));
            }
        }
    }
    for s in &subjects {
        for m in IOMMU_MODES {
            boots.push((s, format!("only=txrx iommu={m}"), 3, format!("iommu-{m}")));
        }
    }
    let total = boots.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Two boots at a time: QEMU runs one guest CPU on one host core.
    let queue = std::sync::Mutex::new(boots.iter().enumerate().rev().collect::<Vec<_>>());
    let results: Vec<Result<Vec<Value>>> = std::thread::scope(|scope| {
        let slots: Vec<_> = (0..2)
            .map(|_| {
                let (queue, done, tx, kernel) = (&queue, &done, tx.clone(), &kernel);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let Some((i, (s, extra, want, tag))) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        let r = counted_boot(kernel, s, extra, *want, plan, tag);
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        let _ = tx.send(format!(
                            "counted boot {n}/{total}: {} {}",
                            s.mechanism,
                            if extra.is_empty() {
                                "local workloads"
                            } else {
                                extra
                            }
                        ));
                        mine.push((i, r));
                    }
                    mine
                })
            })
            .collect();
        drop(tx);
        for line in rx {
            step(&line);
        }
        let mut all: Vec<(usize, Result<Vec<Value>>)> = slots
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let mut results = results.into_iter().collect::<Result<Vec<_>>>()?;
    let mut verify = Vec::new();
    for boot in results.iter_mut() {
        let (v, rest): (Vec<Value>, Vec<Value>) =
            boot.drain(..).partition(|r| r["nooks"] == "verify");
        verify.extend(v);
        *boot = rest;
    }
    let iommu_records = results.split_off(subjects.len() * plan.repeats * parts.len());
    // Each mechanism's boots, each boot's parts as one list of records.
    let counted: Vec<Vec<Vec<Value>>> = results
        .chunks(plan.repeats * parts.len())
        .map(|mech| mech.chunks(parts.len()).map(|b| b.concat()).collect())
        .collect();
    let iommu = iommu_records
        .chunks(IOMMU_MODES.len())
        .map(|b| [b[0].clone(), b[1].clone()])
        .collect();
    let mut metadata = before;
    metadata["load_average_after"] = Value::String(load_average());
    Ok(Comparison {
        counted,
        instructions,
        host: None,
        iommu,
        verify,
        metadata,
    })
}

/// The machine's load averages over 1, 5 and 15 minutes ("?" if unknown).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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

/// Minimum, median and maximum over repeated boots.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// Smallest.
    pub min: f64,
    /// Median (the lower middle for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Stat {
    /// Over `values` (NaN if empty).
    pub fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stat {
                min: f64::NAN,
                median: f64::NAN,
                max: f64::NAN,
            };
        }
        v.sort_by(f64::total_cmp);
        Stat {
            min: v[0],
            median: v[(v.len() - 1) / 2],
            max: v[v.len() - 1],
        }
    }

    /// "median" when every boot agreed, else "median (min-max)".
    pub fn text(&self) -> String {
        if self.min == self.max {
            format!("{:.0}", self.median)
        } else {
            format!("{:.0} ({:.0}-{:.0})", self.median, self.min, self.max)
        }
    }
}

/// One row of the counted table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Workload label (`null crossing`, `store-heavy op`, `tx 64`, `txrx 512`, `rx 1514`).
    pub label: String,
    /// Cost per operation per mechanism, over the boots.
    pub cost: Vec<Stat>,
    /// The part of it inside calls into the driver, per mechanism.
    pub driver: Vec<Stat>,
    /// Kernel↔driver crossings (entries + gate exits) per operation, per mechanism.
    pub crossings: Vec<f64>,
    /// MMU CR3 loads per operation.
    pub mmu_cr3: f64,
    /// MMU TLB flushes per operation.
    pub mmu_flushes: f64,
    /// PKS IA32_PKRS writes per operation.
    pub pkrs_writes: f64,
}

impl Row {
    /// Median cost of mechanism `m` over `none`'s.
    pub fn ratio(&self, m: usize) -> f64 {
        self.cost[m].median / self.cost[0].median
    }

    /// Median driver-path cost of mechanism `m` over `none`'s.
    pub fn driver_ratio(&self, m: usize) -> f64 {
        self.driver[m].median / self.driver[0].median
    }
}

/// Index of a mechanism in [`MECHANISMS`].
pub fn index(m: &str) -> usize {
    MECHANISMS
        .iter()
        .position(|x| *x == m)
        .expect("a mechanism")
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
        let mut push = |label: String, workload: &str, size: u64| {
            let over = |f: &dyn Fn(&Value) -> f64| -> Vec<Stat> {
                self.counted
                    .iter()
                    .map(|boots| {
                        let v: Vec<f64> = boots
                            .iter()
                            .filter_map(|recs| find(recs, workload, size).map(f))
                            .collect();
                        Stat::of(&v)
                    })
                    .collect()
            };
            let first = |m: &str| {
                self.counted[index(m)]
                    .first()
                    .and_then(|recs| find(recs, workload, size))
            };
            let counter = |m: &str, field: &str| first(m).map_or(f64::NAN, |r| per_op_of(r, field));
            rows.push(Row {
                label,
                cost: over(&per_op),
                driver: over(&|r| per_op_of(r, "inside")),
                crossings: MECHANISMS
                    .iter()
                    .map(|m| counter(m, "entries") + counter(m, "exits"))
                    .collect(),
                mmu_cr3: counter("mmu", "cr3_writes"),
                mmu_flushes: counter("mmu", "tlb_flushes"),
                pkrs_writes: counter("pks", "pkrs_writes"),
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

    /// The IOMMU table: txrx at each size, per mechanism.
    pub fn iommu_rows(&self) -> Vec<IommuRow> {
        let mut rows = Vec::new();
        for (i, m) in MECHANISMS.iter().enumerate() {
            for size in [64, 512, 1514] {
                let on = self.counted[i]
                    .first()
                    .and_then(|recs| find(recs, "txrx", size));
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

/// The IOMMU's cost on one workload under one mechanism: per operation
/// under off, on and strict, with the invalidations and DMA pages
/// (un)mapped per operation under strict.
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
    (
        "BULKHEAD (NDSS 2025)",
        "PKS compartments for 160 kernel modules: 2.44% overhead",
    ),
];

/// The figures as SVG documents: (file name, contents).
pub fn figures(c: &Comparison, rows: &[Row]) -> Vec<(String, String)> {
    let unit = if c.instructions {
        "guest instructions (QEMU -icount, exact)"
    } else {
        "TSC cycles (KVM)"
    };
    let ratios = |title: &str, subtitle: String, of: &dyn Fn(&Row, usize) -> f64| BarChart {
        title: title.into(),
        subtitle,
        y_label: "x none".into(),
        series: MECHANISMS.iter().map(|m| m.to_string()).collect(),
        groups: rows
            .iter()
            .map(|r| {
                (
                    r.label.clone(),
                    (0..MECHANISMS.len()).map(|m| of(r, m)).collect(),
                )
            })
            .collect(),
        reference: Some(1.0),
    };
    let relative = ratios(
        "e1000 in the nooks kernel: cost relative to no isolation",
        format!("per operation (median of boots), {unit}; same wrappers"),
        &Row::ratio,
    );
    let driver = ratios(
        "e1000 in the nooks kernel: the driver path relative to no isolation",
        format!("instructions inside calls into the driver per operation, {unit}"),
        &Row::driver_ratio,
    );
    let mut out = vec![
        ("relative_cost.svg".to_string(), relative.svg()),
        ("driver_path.svg".to_string(), driver.svg()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_over_boots() {
        let s = Stat::of(&[3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(s.text(), "2 (1-3)");
        assert_eq!(Stat::of(&[5.0, 5.0]).text(), "5");
        assert!(Stat::of(&[]).median.is_nan());
    }
}
