//! Recovery: a driver that fails is replaced by a fresh copy of its object,
//! its devices come back under the same names, and the workload's
//! sequence-numbered stream carries on across the outage. Faults come from
//! the injector (`nooks_sfi_compiler::inject`), applied to a running original
//! driver (`mmu`) or compiled into a sandboxed one (`sfi`); a driver that
//! keeps failing is left down by the restart budget.

use nooks_bench::artifacts;
use nooks_bench::qemu::Verdict;
use nooks_sfi_compiler::inject::{FaultKind, inject_in};
use nooks_tests::{boot, fail_with_log, records_of, sfi};
use std::time::Duration;

fn e1000() -> Vec<u8> {
    std::fs::read(artifacts::build_driver("e1000").unwrap_or_else(|e| panic!("{e:#}"))).unwrap()
}

fn one(out: &nooks_bench::qemu::Outcome, kind: &str) -> serde_json::Value {
    let r = records_of(&out.log, kind);
    if r.len() != 1 {
        fail_with_log(out, &format!("want one {kind} record, got {}", r.len()));
    }
    r[0].clone()
}

#[test]
fn the_stream_survives_a_fault_injected_mid_way_into_a_running_mmu_driver() {
    let original = e1000();
    // A store whose address is corrupted, in the transmit path.
    let (_, what) = inject_in(
        &original,
        FaultKind::StoreAddress,
        3,
        Some("e1000_xmit_frame"),
    )
    .unwrap();
    let cmdline = format!("mode=net frames=3000 {} inject_at=1000", what.boot_option());
    let out = boot(
        "recovery-mmu",
        &cmdline,
        &[("e1000.o", original)],
        Duration::from_secs(300),
    );
    if out.verdict != Verdict::Success {
        fail_with_log(&out, "the kernel must survive and recover");
    }
    let inject = one(&out, "inject");
    assert!(inject["domains"].as_u64().unwrap() >= 2, "{inject}");
    let fault = one(&out, "fault");
    assert_eq!(fault["mechanism"], "mmu", "{fault}");
    assert!(
        fault["function"]
            .as_str()
            .unwrap()
            .starts_with("e1000_xmit_frame"),
        "{fault}"
    );
    let recovery = one(&out, "recovery");
    assert_eq!(recovery["ok"], true, "{recovery}");
    assert_eq!(recovery["devices"], "eth0", "{recovery}");
    let w = one(&out, "workload");
    let n = |k: &str| w[k].as_u64().unwrap();
    assert_eq!(n("sent"), 3000, "{w}");
    assert_eq!(
        n("received") + n("lost"),
        3000,
        "every frame is accounted for: {w}"
    );
    assert!(
        n("received") >= 2900,
        "traffic resumed after the recovery: {w}"
    );
    assert_eq!(n("bad"), 0, "{w}");
    assert_eq!(n("failures"), 1, "{w}");
    assert_eq!(n("recoveries"), 1, "{w}");
    assert!(n("outage_ms") > 0 && n("outage_ms") < 1000, "{w}");
    assert_eq!(one(&out, "integrity")["ok"], true);
}

#[test]
fn a_sandboxed_driver_with_a_fault_is_contained_and_replaced_by_a_clean_copy() {
    let original = e1000();
    // Interrupts left disabled on the transmit path, compiled into the object.
    let (faulty, what) =
        inject_in(&original, FaultKind::IrqOff, 3, Some("e1000_xmit_frame")).unwrap();
    assert!(what.before.contains("rsi"), "{what}");
    let modules = [
        ("e1000.sfi.o", sfi(&faulty, "e1000 (faulty)")),
        ("e1000.sfi.o.clean", sfi(&original, "e1000")),
    ];
    let out = boot(
        "recovery-sfi",
        "mode=net frames=2000",
        &modules,
        Duration::from_secs(300),
    );
    if out.verdict != Verdict::Success {
        fail_with_log(&out, "the kernel must survive and recover");
    }
    let faults = records_of(&out.log, "fault");
    assert!(!faults.is_empty(), "the fault must fire");
    assert!(
        faults.iter().all(|f| f["mechanism"] == "sfi"
            && f["cause"].as_str().unwrap().contains("interrupts disabled")),
        "{faults:?}"
    );
    let recoveries = records_of(&out.log, "recovery");
    assert!(
        !recoveries.is_empty() && recoveries.iter().all(|r| r["ok"] == true),
        "{recoveries:?}"
    );
    let w = one(&out, "workload");
    let n = |k: &str| w[k].as_u64().unwrap();
    assert_eq!(n("received") + n("lost"), 2000, "{w}");
    assert!(n("received") >= 1900, "{w}");
    assert_eq!(n("bad"), 0, "{w}");
    assert_eq!(one(&out, "integrity")["ok"], true);
}

#[test]
fn a_driver_that_keeps_failing_is_left_down_by_the_restart_budget() {
    let original = e1000();
    let (faulty, _) = inject_in(
        &original,
        FaultKind::StoreAddress,
        3,
        Some("e1000_xmit_frame"),
    )
    .unwrap();
    // No clean copy: every reload fails the same way.
    let out = boot(
        "recovery-budget",
        "mode=net frames=500 restarts=2 restart_window_ms=60000",
        &[("e1000.o", faulty)],
        Duration::from_secs(300),
    );
    if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
        fail_with_log(&out, "the kernel must stay up");
    }
    let recoveries = records_of(&out.log, "recovery");
    assert_eq!(recoveries.len(), 3, "{recoveries:?}");
    assert!(
        recoveries[..2].iter().all(|r| r["ok"] == true),
        "{recoveries:?}"
    );
    assert_eq!(recoveries[2]["ok"], false);
    assert!(
        recoveries[2]["detail"]
            .as_str()
            .unwrap()
            .contains("restart budget exhausted"),
        "{}",
        recoveries[2]
    );
}

/// Boots the sandboxed e1000 with `fault` compiled in (the clean copy beside
/// it) and checks that every failure was the watchdog's, every recovery
/// brought its device back, and the stream resumed.
fn loop_recovers(name: &str, mechanism: &str, function: &str, seed: u64, failures: usize) {
    let original = e1000();
    let (faulty, what) =
        inject_in(&original, FaultKind::InfiniteLoop, seed, Some(function)).unwrap();
    let (modules, cmdline) = if mechanism == "sfi" {
        (
            [
                ("e1000.sfi.o", sfi(&faulty, "e1000 (faulty)")),
                ("e1000.sfi.o.clean", sfi(&original, "e1000")),
            ],
            "mode=net frames=1000",
        )
    } else {
        (
            [("e1000.o", faulty), ("e1000.o.clean", original)],
            "mode=net frames=1000 isolation=mmu",
        )
    };
    let out = boot(name, cmdline, &modules, Duration::from_secs(300));
    if out.verdict != Verdict::Success {
        fail_with_log(&out, &format!("the kernel must survive {what}"));
    }
    let faults = records_of(&out.log, "fault");
    assert_eq!(faults.len(), failures, "{what}: {faults:?}");
    assert!(
        faults.iter().all(|f| f["cause"] == "watchdog: runaway loop"
            && f["function"].as_str().unwrap().starts_with(function)),
        "{faults:?}"
    );
    let recoveries = records_of(&out.log, "recovery");
    assert_eq!(recoveries.len(), failures, "{recoveries:?}");
    assert!(recoveries.iter().all(|r| r["ok"] == true), "{recoveries:?}");
    let w = one(&out, "workload");
    let n = |k: &str| w[k].as_u64().unwrap();
    assert_eq!(n("sent"), 1000, "{w}");
    assert_eq!(n("received") + n("lost"), 1000, "{w}");
    assert!(n("lost") <= 64 * failures as u64, "{w}");
    assert_eq!(n("bad"), 0, "{w}");
    assert_eq!(one(&out, "integrity")["ok"], true);
}

#[test]
fn a_loop_in_the_shared_interrupt_handler_is_caught_in_each_driver_and_both_recover() {
    // Both NICs share one interrupt line: the first handler's loop is caught
    // by the NMI tick, then the second's — which runs right after, in the same
    // interrupt, and must get its own watchdog budget.
    loop_recovers("recovery-irq-loop", "sfi", "e1000_intr", 0, 2);
}

#[test]
fn a_loop_in_the_interrupt_handler_of_an_mmu_domain_is_caught_and_both_recover() {
    // The same under page tables: the handler loops on the domain's stack,
    // while the catch frame that the NMI tick unwinds to is on the interrupt
    // stack.
    loop_recovers("recovery-irq-loop-mmu", "mmu", "e1000_intr", 0, 2);
}

#[test]
fn a_loop_in_probe_is_recovered_before_the_next_device_is_probed() {
    // The first instance loops in probe; it comes back from the clean copy
    // as eth0 before the second instance takes the second NIC as eth1.
    loop_recovers("recovery-probe-loop", "sfi", "e1000_probe", 0, 1);
}
