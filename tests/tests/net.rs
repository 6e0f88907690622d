//! A gcc-built e1000 driver object, loaded at boot from the boot archive (not
//! linked into the kernel), drives QEMU's two 82540EM NICs: 10,000 frames of
//! 64 to 1514 bytes go eth0 → hub → eth1 with zero loss and zero corruption,
//! interrupt-driven. Objects that must not load are refused with a clear
//! message while the kernel stays up.

use nooks_bench::qemu::Verdict;
use nooks_bench::{artifacts, serial};
use nooks_tests::{boot, expect_all_frames, fail_with_log};
use std::time::Duration;

fn e1000() -> Vec<u8> {
    std::fs::read(artifacts::build_driver("e1000").unwrap_or_else(|e| panic!("{e:#}"))).unwrap()
}

fn record<'a>(records: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["nooks"] == kind).collect()
}

#[test]
fn e1000_moves_10000_frames_without_loss() {
    let out = boot(
        "net-e1000",
        "mode=net frames=10000 min=64 max=1514 isolation=none",
        &[("e1000.o", e1000())],
        Duration::from_secs(300),
    );
    let records = serial::records(&out.log);
    let loads = record(&records, "load");
    let workload = record(&records, "workload");
    if out.verdict != Verdict::Success
        || loads.len() != 1
        || loads[0]["ok"] != true
        || workload.len() != 1
    {
        fail_with_log(&out, "e1000.o must load and run the workload");
    }
    let w = workload[0];
    assert_eq!(
        w["mechanism"], "none",
        "isolation=none forces the baseline: {w}"
    );
    expect_all_frames(&out, w, 10_000);
    assert!(w["irqs"].as_u64().unwrap() > 100, "interrupt-driven: {w}");
    // Every size from 64 to 1514 occurs: bytes lie well between the extremes.
    let bytes = w["bytes"].as_u64().unwrap();
    assert!(bytes > 10_000 * 500 && bytes < 10_000 * 1100, "{w}");
    assert!(out.log.contains("eth0: 82540EM") && out.log.contains("mac 52:54:00:12:34:02"));
}

#[test]
fn bad_objects_are_refused_and_the_kernel_stays_up() {
    let good = e1000();
    let truncated = good[..good.len() / 3].to_vec();
    let mut corrupted = good.clone();
    // Point the section header table past the end of the file.
    corrupted[0x28..0x30].copy_from_slice(&(good.len() as u64 * 4).to_le_bytes());
    let bad_import = {
        let dir = artifacts::build_dir().join("test-objects");
        std::fs::create_dir_all(&dir).unwrap();
        let c = dir.join("bad_import.c");
        std::fs::write(&c, "extern void steal_the_keys(void);\nint init_module(void) { steal_the_keys(); return 0; }\n").unwrap();
        let o = dir.join("bad_import.o");
        let st = std::process::Command::new("gcc")
            .args([
                "-c",
                "-O2",
                "-ffreestanding",
                "-mcmodel=kernel",
                "-mno-red-zone",
                "-fno-pic",
            ])
            .arg(&c)
            .arg("-o")
            .arg(&o)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(o).unwrap()
    };
    let modules = [
        ("truncated.o", truncated),
        ("corrupted.o", corrupted),
        ("bad_import.o", bad_import),
    ];
    let out = boot(
        "net-bad",
        "mode=net frames=0",
        &modules,
        Duration::from_secs(120),
    );
    let records = serial::records(&out.log);
    let loads = record(&records, "load");
    if out.verdict != Verdict::Success || loads.len() != 3 || record(&records, "alive").len() != 1 {
        fail_with_log(
            &out,
            "each bad object must be refused and the kernel must stay up",
        );
    }
    let error_of = |name: &str| {
        let r = loads
            .iter()
            .find(|r| r["module"] == name)
            .unwrap_or_else(|| fail_with_log(&out, name));
        assert_eq!(r["ok"], false, "{name} must not load");
        r["error"].as_str().unwrap().to_string()
    };
    let t = error_of("truncated.o");
    assert!(
        t.contains("outside the file") || t.contains("malformed"),
        "truncated: {t}"
    );
    let c = error_of("corrupted.o");
    assert!(c.contains("malformed"), "corrupted: {c}");
    let b = error_of("bad_import.o");
    assert!(
        b.contains("does not export: steal_the_keys"),
        "bad import: {b}"
    );
    assert_eq!(out.log.matches("kernel still up after refusing").count(), 3);
}
