//! e1000 rewritten by nooks-cc with `--isolation none` takes the place of the
//! gcc object in the 10,000-frame test, and still moves every frame intact.

use nooks_bench::qemu::Verdict;
use nooks_bench::{artifacts, serial};
use nooks_sfi_compiler::{Options, rewrite};
use nooks_tests::{boot, expect_all_frames, fail_with_log};
use std::time::Duration;

#[test]
fn rewritten_e1000_moves_10000_frames_without_loss() {
    let original = std::fs::read(artifacts::build_driver("e1000").unwrap()).unwrap();
    let rewritten =
        rewrite(&original, &Options::default()).unwrap_or_else(|e| panic!("nooks-cc: {e}"));
    assert!(rewritten.stats.functions >= 10, "{:?}", rewritten.stats);
    let out = boot(
        "net-e1000-none",
        "mode=net frames=10000",
        &[("e1000.none.o", rewritten.object)],
        Duration::from_secs(300),
    );
    let records = serial::records(&out.log);
    let w: Vec<_> = records
        .iter()
        .filter(|r| r["nooks"] == "workload")
        .collect();
    let loaded = records
        .iter()
        .any(|r| r["nooks"] == "load" && r["module"] == "e1000.none.o" && r["ok"] == true);
    if out.verdict != Verdict::Success || w.len() != 1 || !loaded {
        fail_with_log(&out, "the rewritten e1000.o must load and run the workload");
    }
    expect_all_frames(&out, w[0], 10_000);
}
