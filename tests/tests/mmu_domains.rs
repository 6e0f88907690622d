//! The original, gcc-built e1000 drives each NIC from its own MMU domain (its
//! own page tables, switched at every crossing) and moves 10,000 frames, while
//! the misbehaving drivers of `tests/drivers`, also gcc-built and never seen by
//! nooks-cc, run in MMU domains beside it: every fault a page table can see is
//! contained with the right cause, the return invariants are checked by the
//! same wrapper as under SFI, and the kernel keeps running. What the MMU
//! cannot see is listed in the README's isolation table.

use nooks_bench::artifacts;
use nooks_bench::qemu::Verdict;
use nooks_tests::{boot, fail_with_log, records_of, test_driver};
use std::time::Duration;

fn e1000() -> Vec<u8> {
    std::fs::read(artifacts::build_driver("e1000").unwrap_or_else(|e| panic!("{e:#}"))).unwrap()
}

#[test]
fn original_e1000_in_mmu_domains_moves_frames_while_misbehaving_drivers_are_contained() {
    let mut modules = vec![("e1000.o".to_string(), e1000())];
    let bad = [
        "wild_store",
        "null_offset",
        "other_domain",
        "return_address",
        "forged_call",
        "lock_held",
        "irq_off",
        "runaway",
        "cli_loop",
    ];
    for name in bad {
        modules.push((format!("{name}.o"), test_driver(name)));
    }
    let members: Vec<(&str, Vec<u8>)> = modules
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let out = boot(
        "mmu-domains",
        "mode=net frames=10000",
        &members,
        Duration::from_secs(400),
    );
    if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
        fail_with_log(&out, "the kernel must survive every misbehaving driver");
    }
    let loads = records_of(&out.log, "load");
    let e1000_load = loads.iter().find(|r| r["module"] == "e1000.o").unwrap();
    assert_eq!(
        e1000_load["mechanism"], "mmu",
        "original objects load under mmu: {e1000_load}"
    );
    assert!(
        e1000_load["domains"].as_u64().unwrap() >= 2,
        "one domain per NIC: {e1000_load}"
    );
    let w = records_of(&out.log, "workload");
    if w.len() != 1
        || w[0]["mechanism"] != "mmu"
        || w[0]["received"] != 10_000
        || w[0]["lost"] != 0
        || w[0]["bad"] != 0
    {
        fail_with_log(
            &out,
            &format!("the MMU e1000 domains must move 10,000 frames intact: {w:?}"),
        );
    }
    // Every frame crosses into the driver and back through the gates, and
    // every gate loads CR3 twice.
    let w = &w[0];
    let n = |k: &str| w[k].as_u64().unwrap();
    assert!(n("entries") >= 10_000, "{w}");
    assert!(n("exits") >= 10_000, "{w}");
    assert!(n("cr3_writes") >= 2 * (n("entries") + n("exits")), "{w}");
    assert!(n("tlb_flushes") > 0, "{w}");

    let faults = records_of(&out.log, "fault");
    let fault_of = |module: &str| {
        faults
            .iter()
            .find(|f| f["domain"].as_str().unwrap_or("").starts_with(module))
            .cloned()
    };
    let expect = [
        (
            "wild_store.o",
            "mmu: store to a read-only page",
            Some("bad_probe"),
        ),
        ("null_offset.o", "mmu: store to an unmapped page", None),
        ("other_domain.o", "mmu: store to an unmapped page", None),
        ("return_address.o", "mmu: jump to unmapped memory", None),
        ("forged_call.o", "mmu: jump to non-executable memory", None),
        ("lock_held.o", "mmu: returned holding a lock", None),
        ("irq_off.o", "mmu: returned with interrupts disabled", None),
        ("runaway.o", "watchdog", None),
        ("cli_loop.o", "watchdog", None),
    ];
    for (module, cause, function) in expect {
        let Some(f) = fault_of(module) else {
            fail_with_log(&out, &format!("no fault reported for {module}"))
        };
        assert!(
            f["cause"].as_str().unwrap().contains(cause),
            "{module}: {f}"
        );
        assert_eq!(f["mechanism"], "mmu", "{f}");
        if let Some(func) = function {
            assert!(
                f["function"].as_str().unwrap().contains(func),
                "{module}: {f}"
            );
        }
    }
    assert_eq!(fault_of("null_offset.o").unwrap()["address"], "0x40");
    assert_eq!(
        fault_of("other_domain.o").unwrap()["address"],
        "0xffffffffc0800000"
    );
    assert_eq!(
        fault_of("forged_call.o").unwrap()["address"],
        "0xffffffff80110000"
    );
    assert_eq!(
        fault_of("return_address.o").unwrap()["address"],
        "0xdeadbeef"
    );
    // The e1000 domains were never touched.
    for f in &faults {
        assert!(!f["domain"].as_str().unwrap().starts_with("e1000"), "{f}");
    }
}

#[test]
fn isolation_option_forces_a_mechanism_and_refuses_what_cannot_run() {
    let out = boot(
        "mmu-forced-sfi",
        "mode=net frames=0 isolation=sfi",
        &[("e1000.o", e1000())],
        Duration::from_secs(120),
    );
    let loads = records_of(&out.log, "load");
    if out.verdict != Verdict::Success || loads.len() != 1 {
        fail_with_log(&out, "the kernel must refuse the object and stay up");
    }
    assert_eq!(loads[0]["ok"], false, "{}", loads[0]);
    assert!(
        loads[0]["error"]
            .as_str()
            .unwrap()
            .contains("needs an object rewritten by nooks-cc"),
        "{}",
        loads[0]
    );
    let bad = boot(
        "mmu-forced-bogus",
        "mode=net frames=0 isolation=paging",
        &[("e1000.o", e1000())],
        Duration::from_secs(120),
    );
    let loads = records_of(&bad.log, "load");
    assert!(
        loads.len() == 1
            && loads[0]["error"]
                .as_str()
                .unwrap()
                .contains("unknown isolation=paging"),
        "{loads:?}"
    );
}
