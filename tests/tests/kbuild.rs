//! The driver built the way Kbuild builds a module, through nooks-cc as the
//! C compiler: `make -C drivers/e1000 CC=nooks-cc EXTRA_CFLAGS=--isolation=sfi`
//! compiles and rewrites each of e1000's four files with gcc's flags plus the
//! driver ABI's (jump tables on: `e1000_stats.c` classifies every received
//! frame through a dense switch gcc compiles to one), and the module's link
//! (`$(CC) -r`) rewrites the linked whole once. The kernel loads the result
//! under sfi, and it moves 10,000 frames.

use nooks_bench::qemu::Verdict;
use nooks_bench::{artifacts, serial};
use nooks_tests::{boot, expect_all_frames, fail_with_log};
use std::process::Command;
use std::time::Duration;

fn tool(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn e1000_built_with_make_cc_nooks_cc_moves_10000_frames_under_sfi() {
    let nooks_cc = artifacts::build_nooks_cc().unwrap_or_else(|e| panic!("{e:#}"));
    let out = artifacts::build_dir().join("kbuild");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let e1000 = artifacts::repo_root().join("drivers/e1000");
    tool(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&e1000)
            .arg(format!("CC={}", nooks_cc.display()))
            .arg("EXTRA_CFLAGS=--isolation=sfi")
            .arg(format!("OUT={}", out.display())),
    );
    let parts = out.join("e1000.parts");
    let names: Vec<String> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 4, "{names:?}");
    // gcc compiled the switch of e1000_stats.c to a jump table: the original
    // object nooks-cc keeps has an indirect jump through .rodata.
    let stats = parts.join("e1000_stats.o");
    let original = out.join("e1000_stats.original.o");
    tool(
        Command::new("objcopy")
            .arg(format!(
                "--dump-section=.nooks.original={}",
                original.display()
            ))
            .arg(&stats)
            .arg(out.join("scratch.o")),
    );
    let disassembly = tool(Command::new("objdump").arg("-dr").arg(&original));
    assert!(
        disassembly.lines().any(|l| l.contains("jmp    *0x0(,%r")),
        "no jump table in e1000_stats.o:\n{disassembly}"
    );
    // One object, rewritten once: one runtime state, isolation sfi.
    let object = out.join("e1000.o");
    let symbols = tool(Command::new("nm").arg(&object));
    let defined = |name: &str| {
        symbols
            .lines()
            .filter(|l| l.ends_with(&format!(" {name}")) && !l.contains(" U "))
            .count()
    };
    assert_eq!(defined("__nooks_sfi"), 1, "{symbols}");
    assert!(
        tool(Command::new("readelf").args(["-p", ".nooks"]).arg(&object)).contains("isolation sfi")
    );

    let outcome = boot(
        "kbuild-e1000-sfi",
        "mode=net frames=10000",
        &[("e1000.o", std::fs::read(&object).unwrap())],
        Duration::from_secs(300),
    );
    let records = serial::records(&outcome.log);
    let loaded = records.iter().any(|r| {
        r["nooks"] == "load"
            && r["module"] == "e1000.o"
            && r["ok"] == true
            && r["mechanism"] == "sfi"
    });
    let w: Vec<_> = records
        .iter()
        .filter(|r| r["nooks"] == "workload")
        .collect();
    if outcome.verdict != Verdict::Success || !loaded || w.len() != 1 {
        fail_with_log(
            &outcome,
            "e1000.o from `make CC=nooks-cc` must load under sfi and run the workload",
        );
    }
    expect_all_frames(&outcome, w[0], 10_000);
    if w[0]["failures"] != 0 || w[0]["mechanism"] != "sfi" {
        fail_with_log(
            &outcome,
            "the workload ran on a non-sfi domain, or a domain failed",
        );
    }
    // The jump table's cases ran where gcc meant them to: every 4096 frames
    // the driver prints its size classes, and each class got only lengths
    // within its bounds ("eth1: rx class 128-255: 412 frames, 128-255 bytes").
    let mut classes = 0;
    for line in outcome.log.lines().filter(|l| l.contains(": rx class ")) {
        let numbers: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.parse().ok())
            .collect();
        // [timestamp parts..., eth index, lo, hi, frames, min, max]
        let [.., lo, hi, frames, min, max] = numbers[..] else {
            fail_with_log(&outcome, &format!("cannot read `{line}`"));
        };
        if frames == 0 || min < lo || max > hi {
            fail_with_log(
                &outcome,
                &format!("a size class got lengths outside it: `{line}`"),
            );
        }
        classes += 1;
    }
    if classes < 5 || outcome.log.contains("rx bad length") {
        fail_with_log(
            &outcome,
            "the driver's size classes were not printed, or frames were misclassified",
        );
    }
}
