//! The fault-injection campaign, after Nooks' (2,000 injections, 99% of
//! crashes avoided): for each injected fault and each mechanism, boot, run
//! traffic, and classify what happened.
//!
//! Each fault is one [`inject`](nooks_sfi_compiler::inject) of the original
//! e1000 object, cycling through the kinds with a seed per round, so the same
//! fault runs under every mechanism: `none`, `mmu` and `pks` load the patched
//! object, `sfi` loads it rewritten by nooks-cc. Beside it in the boot archive
//! is the clean object (`.clean`), which recovery reloads — the fault was
//! "injected into the running driver", as in Nooks' experiments.

use crate::plot::BarChart;
use crate::{artifacts, qemu, serial};
use anyhow::Result;
use nooks_sfi_compiler::inject::{ALL, FaultKind, inject};
use nooks_sfi_compiler::{Isolation, Options, rewrite};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::Duration;

/// Campaign settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Faults per mechanism.
    pub injections: usize,
    /// Frames of traffic per boot.
    pub frames: u32,
    /// The first seed.
    pub seed: u64,
    /// Boots in parallel.
    pub jobs: usize,
    /// Per-boot timeout (a hang).
    pub timeout: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The kernel panicked, triple-faulted, or stopped answering.
    CrashOrHang,
    /// A fault was detected, the driver recovered, traffic resumed with
    /// nothing lost after the recovery.
    Recovered,
    /// Detected, but the driver did not come back (or traffic did not resume).
    NotRecovered,
    /// Nothing detected, but the kernel's critical data was corrupted.
    SilentCorruption,
    /// Nothing detected, but frames were lost or corrupted.
    WrongOutput,
    /// Nothing detected and nothing visibly wrong (the fault was not reached, or harmless).
    NoEffect,
    /// nooks-cc refused the faulty object, or the kernel's load-time
    /// verifier refused what nooks-cc made of it (sfi only).
    Refused,
}

/// Every outcome, in table order.
pub const OUTCOMES: [Outcome; 7] = [
    Outcome::CrashOrHang,
    Outcome::Recovered,
    Outcome::NotRecovered,
    Outcome::SilentCorruption,
    Outcome::WrongOutput,
    Outcome::NoEffect,
    Outcome::Refused,
];

impl Outcome {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::CrashOrHang => "kernel crash or hang",
            Outcome::Recovered => "detected, recovered",
            Outcome::NotRecovered => "detected, not recovered",
            Outcome::SilentCorruption => "undetected: kernel data corrupted",
            Outcome::WrongOutput => "undetected: frames lost or bad",
            Outcome::NoEffect => "undetected: no visible effect",
            Outcome::Refused => "refused before it ran (nooks-cc or the verifier)",
        }
    }
}

/// The cause the kernel reports when the IOMMU refused a device's DMA.
const DMA_CAUSE: &str = "DMA outside the domain";

/// The frames a window can lose in one outage: the workload's window.
const WINDOW: u64 = 64;

/// Classifies a boot's verdict and serial log.
pub fn classify(verdict: qemu::Verdict, log: &str, frames: u32) -> Outcome {
    if verdict != qemu::Verdict::Success {
        return Outcome::CrashOrHang;
    }
    let records = serial::records(log);
    let of = |k: &str| {
        records
            .iter()
            .filter(|r| r["nooks"] == k)
            .collect::<Vec<_>>()
    };
    let (faults, recoveries, workload) = (of("fault"), of("recovery"), of("workload"));
    // The load-time verifier refused the rewritten object: it never ran.
    if of("verify").iter().any(|r| r["ok"] == false) {
        return Outcome::Refused;
    }
    let integrity_ok = of("integrity").first().is_some_and(|r| r["ok"] == true);
    let n = |w: &Value, k: &str| w[k].as_u64().unwrap_or(0);
    let traffic_ok = |w: &Value| {
        n(w, "sent") == u64::from(frames)
            && n(w, "bad") == 0
            && n(w, "received") + n(w, "lost") == u64::from(frames)
    };
    if !faults.is_empty() {
        let back = !recoveries.is_empty() && recoveries.iter().all(|r| r["ok"] == true);
        let resumed = workload
            .first()
            .is_some_and(|w| traffic_ok(w) && n(w, "lost") <= WINDOW * recoveries.len() as u64);
        return if back && resumed && integrity_ok {
            Outcome::Recovered
        } else {
            Outcome::NotRecovered
        };
    }
    if !integrity_ok {
        return Outcome::SilentCorruption;
    }
    match workload.first() {
        Some(w) if traffic_ok(w) && n(w, "lost") == 0 => Outcome::NoEffect,
        _ => Outcome::WrongOutput,
    }
}

/// One run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Mechanism.
    pub mechanism: &'static str,
    /// Fault kind.
    pub kind: FaultKind,
    /// Seed.
    pub seed: u64,
    /// Where, as the injector described it.
    pub site: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The fault's cause, when one was reported.
    pub cause: Option<String>,
}

/// The whole campaign.
#[derive(Debug, Clone, Default)]
pub struct Campaign {
    /// Every run.
    pub runs: Vec<Run>,
    /// Faults the injector found no site for.
    pub no_site: usize,
}

const MECHANISMS: [&str; 4] = ["none", "mmu", "pks", "sfi"];

/// Runs the campaign; `tick` is called after every boot with the number done.
pub fn run(s: &Settings, tick: impl Fn(usize) + Sync) -> Result<Campaign> {
    // A private copy: the campaign runs for minutes, and a rebuild meanwhile
    // must not change the kernel under it.
    let kernel = artifacts::build_dir().join("campaign-kernel.elf");
    std::fs::copy(artifacts::build_kernel()?, &kernel)?;
    let clean = std::fs::read(artifacts::build_driver("e1000")?)?;
    let sfi = |bytes: &[u8]| {
        rewrite(
            bytes,
            &Options {
                isolation: Isolation::Sfi,
                ..Options::default()
            },
        )
        .map(|r| r.object)
    };
    let clean_sfi = sfi(&clean).map_err(|e| anyhow::anyhow!("nooks-cc e1000.o: {e}"))?;
    // The faults, in a fixed order.
    let mut jobs = Vec::new();
    let mut no_site = 0;
    for i in 0..s.injections {
        let kind = ALL[i % ALL.len()];
        let seed = s.seed + (i / ALL.len()) as u64;
        match inject(&clean, kind, seed) {
            Ok((faulty, what)) => {
                for m in MECHANISMS {
                    jobs.push((m, kind, seed, what.to_string(), faulty.clone()));
                }
            }
            Err(_) => no_site += 1,
        }
    }
    let next = Mutex::new(0usize);
    let runs = Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..s.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some((mechanism, kind, seed, site, faulty)) = jobs.get(i) else {
                        break;
                    };
                    let run = one(
                        &kernel,
                        s,
                        mechanism,
                        &faulty[..],
                        &clean,
                        &clean_sfi,
                        &sfi,
                        i,
                    )
                    .map(|(outcome, cause)| Run {
                        mechanism,
                        kind: *kind,
                        seed: *seed,
                        site: site.clone(),
                        outcome,
                        cause,
                    });
                    if let Ok(r) = run {
                        runs.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                    }
                    tick(done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
                }
            });
        }
    });
    let mut runs = runs.into_inner().unwrap_or_else(|e| e.into_inner());
    runs.sort_by_key(|(i, _)| *i);
    Ok(Campaign {
        runs: runs.into_iter().map(|(_, r)| r).collect(),
        no_site,
    })
}

/// How many boots a campaign makes (for a progress bar).
pub fn boots(s: &Settings) -> usize {
    s.injections * MECHANISMS.len()
}

#[allow(clippy::too_many_arguments)]
fn one(
    kernel: &std::path::Path,
    s: &Settings,
    mechanism: &str,
    faulty: &[u8],
    clean: &[u8],
    clean_sfi: &[u8],
    sfi: &dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, nooks_sfi_compiler::RewriteError>,
    index: usize,
) -> Result<(Outcome, Option<String>)> {
    let (members, cmdline) = match mechanism {
        "sfi" => match sfi(faulty) {
            Ok(object) => (
                vec![
                    ("e1000.sfi.o", object),
                    ("e1000.sfi.o.clean", clean_sfi.to_vec()),
                ],
                String::new(),
            ),
            Err(_) => return Ok((Outcome::Refused, None)),
        },
        m => (
            vec![
                ("e1000.o", faulty.to_vec()),
                ("e1000.o.clean", clean.to_vec()),
            ],
            format!("isolation={m}"),
        ),
    };
    let archive = artifacts::boot_archive(&format!("campaign-{index}"), kernel, &members)?;
    let mut b = qemu::Boot::new(
        kernel.to_path_buf(),
        Some(archive.path.clone()),
        format!(
            "mode=net frames={} {cmdline} {}",
            s.frames,
            archive.cmdline()
        ),
    );
    b.timeout = s.timeout;
    let out = qemu::run(&b)?;
    let _ = std::fs::remove_file(&archive.path);
    let cause = serial::records(&out.log)
        .into_iter()
        .find(|r| r["nooks"] == "fault")
        .and_then(|r| r["cause"].as_str().map(String::from));
    Ok((classify(out.verdict, &out.log, s.frames), cause))
}

impl Campaign {
    /// Runs of one mechanism with one outcome.
    pub fn count(&self, mechanism: &str, outcome: Outcome) -> usize {
        self.runs
            .iter()
            .filter(|r| r.mechanism == mechanism && r.outcome == outcome)
            .count()
    }

    /// Runs of one mechanism.
    pub fn total(&self, mechanism: &str) -> usize {
        self.runs
            .iter()
            .filter(|r| r.mechanism == mechanism)
            .count()
    }

    /// Detected faults whose cause was the IOMMU refusing the device's DMA.
    pub fn dma_faults(&self, mechanism: &str) -> usize {
        self.runs
            .iter()
            .filter(|r| {
                r.mechanism == mechanism
                    && r.cause.as_deref().is_some_and(|c| c.starts_with(DMA_CAUSE))
            })
            .count()
    }

    /// Recovered as a share of detected faults, per mechanism.
    pub fn recovered_share(&self, mechanism: &str) -> f64 {
        let rec = self.count(mechanism, Outcome::Recovered);
        let det = rec + self.count(mechanism, Outcome::NotRecovered);
        if det == 0 {
            f64::NAN
        } else {
            rec as f64 / det as f64
        }
    }

    /// The table, in the form of Nooks' (rows: outcomes; columns: mechanisms).
    pub fn table(&self) -> String {
        let mut t = format!("  {:<36}", "outcome");
        for m in MECHANISMS {
            t.push_str(&format!(" {m:>7}"));
        }
        t.push('\n');
        t.push_str(&format!("  {:<36}", "injections run"));
        for m in MECHANISMS {
            t.push_str(&format!(" {:>7}", self.total(m)));
        }
        t.push('\n');
        for o in OUTCOMES {
            t.push_str(&format!("  {:<36}", o.name()));
            for m in MECHANISMS {
                t.push_str(&format!(" {:>7}", self.count(m, o)));
            }
            t.push('\n');
        }
        t.push_str(&format!("  {:<36}", "detected: DMA outside the domain"));
        for m in MECHANISMS {
            t.push_str(&format!(" {:>7}", self.dma_faults(m)));
        }
        t.push('\n');
        t.push_str(&format!("  {:<36}", "recovered, % of detected"));
        for m in MECHANISMS {
            let r = self.recovered_share(m);
            if r.is_nan() {
                t.push_str(&format!(" {:>7}", "-"));
            } else {
                t.push_str(&format!(" {:>6.1}%", 100.0 * r));
            }
        }
        t.push('\n');
        t
    }

    /// Everything as JSON.
    pub fn json(&self) -> Value {
        json!({
            "no_site": self.no_site,
            "summary": MECHANISMS.iter().map(|m| json!({
                "mechanism": m,
                "runs": self.total(m),
                "outcomes": OUTCOMES.iter().map(|o| json!({"outcome": o.name(), "count": self.count(m, *o)})).collect::<Vec<_>>(),
                "recovered_share_of_detected": self.recovered_share(m),
                "dma_outside_the_domain": self.dma_faults(m),
            })).collect::<Vec<_>>(),
            "runs": self.runs.iter().map(|r| json!({
                "mechanism": r.mechanism, "kind": r.kind.name(), "seed": r.seed, "site": r.site,
                "outcome": r.outcome.name(), "cause": r.cause,
            })).collect::<Vec<_>>(),
        })
    }

    /// The figure: outcomes per mechanism.
    pub fn svg(&self) -> String {
        BarChart {
            title: "Fault injection into e1000: outcomes per mechanism".into(),
            subtitle: format!(
                "{} injected faults per mechanism (10 kinds), each boot running traffic",
                self.total("sfi").max(self.total("none"))
            ),
            y_label: "runs".into(),
            series: MECHANISMS.iter().map(|m| m.to_string()).collect(),
            groups: OUTCOMES
                .iter()
                .filter(|o| **o != Outcome::Refused)
                .map(|o| {
                    (
                        o.name()
                            .replace("undetected: ", "undet.: ")
                            .replace("detected, ", "det., "),
                        MECHANISMS
                            .iter()
                            .map(|m| self.count(m, *o) as f64)
                            .collect(),
                    )
                })
                .collect(),
            reference: None,
        }
        .svg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_WORKLOAD: &str = r#"{"nooks":"workload","sent":100,"received":100,"bad":0,"lost":0}"#;
    const INTACT: &str = r#"{"nooks":"integrity","ok":true,"detail":""}"#;

    #[test]
    fn a_crash_or_hang_is_classified_first() {
        assert_eq!(
            classify(qemu::Verdict::Timeout, OK_WORKLOAD, 100),
            Outcome::CrashOrHang
        );
        assert_eq!(
            classify(qemu::Verdict::Failure, "", 100),
            Outcome::CrashOrHang
        );
    }

    #[test]
    fn detected_faults_are_recovered_only_if_traffic_resumed() {
        let fault = r#"{"nooks":"fault","cause":"x"}"#;
        let rec = r#"{"nooks":"recovery","ok":true}"#;
        let lossy = r#"{"nooks":"workload","sent":100,"received":90,"bad":0,"lost":10}"#;
        let log = format!("{fault}\n{rec}\n{lossy}\n{INTACT}\n");
        assert_eq!(
            classify(qemu::Verdict::Success, &log, 100),
            Outcome::Recovered
        );
        let stalled = r#"{"nooks":"workload","sent":40,"received":30,"bad":0,"lost":10}"#;
        let log = format!("{fault}\n{rec}\n{stalled}\n{INTACT}\n");
        assert_eq!(
            classify(qemu::Verdict::Success, &log, 100),
            Outcome::NotRecovered
        );
        let log = format!("{fault}\n{OK_WORKLOAD}\n{INTACT}\n");
        assert_eq!(
            classify(qemu::Verdict::Success, &log, 100),
            Outcome::NotRecovered
        );
    }

    #[test]
    fn undetected_faults_are_split_by_their_effect() {
        let log = format!("{OK_WORKLOAD}\n{INTACT}\n");
        assert_eq!(
            classify(qemu::Verdict::Success, &log, 100),
            Outcome::NoEffect
        );
        let corrupt = r#"{"nooks":"integrity","ok":false,"detail":"pci_dev"}"#;
        let log = format!("{OK_WORKLOAD}\n{corrupt}\n");
        assert_eq!(
            classify(qemu::Verdict::Success, &log, 100),
            Outcome::SilentCorruption
        );
        let bad = r#"{"nooks":"workload","sent":100,"received":99,"bad":1,"lost":0}"#;
        let log = format!("{bad}\n{INTACT}\n");
        assert_eq!(
            classify(qemu::Verdict::Success, &log, 100),
            Outcome::WrongOutput
        );
    }
}
