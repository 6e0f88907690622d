//! How fast the load-time verifier proves objects (`nooks-bench
//! verify-bench`): e1000 and every stand-alone test driver, rewritten with
//! `--isolation sfi`, each verified `repeats` times on the host; per object
//! the best and median time and the code bytes per second, and the whole
//! set's rate (total code over the sum of the best times).

use crate::artifacts;
use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use std::time::Instant;

/// One object's figures.
pub struct Row {
    /// Object name.
    pub name: String,
    /// Bytes of code.
    pub bytes: u64,
    /// Functions verified.
    pub functions: usize,
    /// Instructions analysed.
    pub instructions: u64,
    /// Best time, seconds.
    pub best: f64,
    /// Median time, seconds.
    pub median: f64,
}

fn sfi(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let options = nooks_sfi_compiler::Options {
        isolation: nooks_sfi_compiler::Isolation::Sfi,
        ..Default::default()
    };
    Ok(nooks_sfi_compiler::rewrite(bytes, &options)
        .map_err(|e| anyhow!("nooks-cc {name}: {e}"))?
        .object)
}

/// The objects: e1000 and the drivers directly under `tests/drivers`.
fn objects() -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![(
        "e1000.sfi.o".to_string(),
        sfi(&std::fs::read(artifacts::build_driver("e1000")?)?, "e1000")?,
    )];
    let root = artifacts::repo_root();
    let mut names: Vec<_> = std::fs::read_dir(root.join("tests/drivers"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    names.sort();
    for src in names {
        let name = src.file_stem().unwrap().to_string_lossy().to_string();
        // A driver that needs defines (none directly under tests/drivers)
        // is not built.
        let Ok(obj) = artifacts::build_test_driver(&name, &[]) else {
            continue;
        };
        // Drivers nooks-cc refuses (privileged instructions) are not objects
        // the kernel would see.
        if let Ok(o) = sfi(&std::fs::read(&obj)?, &name) {
            out.push((format!("{name}.sfi.o"), o));
        }
    }
    Ok(out)
}

/// Verifies each object `repeats` times.
pub fn measure(repeats: usize) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (name, bytes) in objects()? {
        let object = nooks_loader::Object::parse(&bytes).map_err(|e| anyhow!("{name}: {e}"))?;
        let mut times = Vec::with_capacity(repeats);
        let mut report = None;
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            let r = nooks_verifier::verify(&object).map_err(|e| anyhow!("{name}: {e}"))?;
            times.push(t.elapsed().as_secs_f64());
            report = Some(r);
        }
        times.sort_by(f64::total_cmp);
        let r = report.unwrap();
        rows.push(Row {
            name,
            bytes: r.bytes,
            functions: r.functions,
            instructions: r.instructions,
            best: times[0],
            median: times[times.len() / 2],
        });
    }
    Ok(rows)
}

/// MiB per second.
fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / (1 << 20) as f64
}

/// Prints the table; returns it as JSON.
pub fn print(rows: &[Row]) -> Value {
    println!(
        "{:<22} {:>8} {:>6} {:>7} {:>10} {:>10} {:>8}",
        "object", "code B", "funcs", "insns", "best us", "median us", "MiB/s"
    );
    for r in rows {
        println!(
            "{:<22} {:>8} {:>6} {:>7} {:>10.1} {:>10.1} {:>8.2}",
            r.name,
            r.bytes,
            r.functions,
            r.instructions,
            r.best * 1e6,
            r.median * 1e6,
            rate(r.bytes, r.best)
        );
    }
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    let best: f64 = rows.iter().map(|r| r.best).sum();
    let median: f64 = rows.iter().map(|r| r.median).sum();
    println!(
        "all {} objects: {bytes} bytes of code, {:.2} MiB/s (best), {:.2} MiB/s (median)",
        rows.len(),
        rate(bytes, best),
        rate(bytes, median)
    );
    json!({
        "objects": rows.iter().map(|r| json!({
            "name": r.name, "bytes": r.bytes, "functions": r.functions,
            "instructions": r.instructions, "best_s": r.best, "median_s": r.median,
            "mib_per_s": rate(r.bytes, r.best),
        })).collect::<Vec<_>>(),
        "bytes": bytes,
        "mib_per_s_best": rate(bytes, best),
        "mib_per_s_median": rate(bytes, median),
    })
}
