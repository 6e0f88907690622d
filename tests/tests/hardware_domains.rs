//! The original, gcc-built e1000 drives each NIC from its own hardware
//! domain — `mmu` (page tables of its own, switched at every crossing) and
//! `pks` (one page table, a protection key per domain, IA32_PKRS switched at
//! every crossing) — and moves 10,000 frames, while the misbehaving drivers
//! of `tests/drivers`, also gcc-built and never seen by nooks-cc, run in
//! domains of the same mechanism beside it: every fault the hardware can see
//! is contained with the right cause, the return invariants are checked by
//! the same wrapper as under SFI, and the kernel keeps running. What each
//! mechanism cannot see is listed in the README's isolation table.

use nooks_bench::artifacts;
use nooks_bench::qemu::Verdict;
use nooks_tests::{boot, fail_with_log, kernel_static, records_of, test_driver, test_driver_with};
use std::time::Duration;

fn e1000() -> Vec<u8> {
    std::fs::read(artifacts::build_driver("e1000").unwrap_or_else(|e| panic!("{e:#}"))).unwrap()
}

/// One misbehaving driver's expected fault: cause, and the function or
/// address it must name.
struct Row {
    module: &'static str,
    cause: &'static str,
    function: Option<&'static str>,
    address: Option<String>,
}

fn row(module: &'static str, cause: &'static str) -> Row {
    Row {
        module,
        cause,
        function: None,
        address: None,
    }
}

const BAD: [&str; 9] = [
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

/// Boots e1000 and the misbehaving drivers under `mechanism`, checks the
/// frames and every row; the drivers in `runs` must load and not fail (what
/// the mechanism cannot see).
fn contained(mechanism: &str, rows: &[Row], runs: &[&str], forged_call: Vec<u8>) {
    let mut modules = vec![("e1000.o".to_string(), e1000())];
    for name in BAD {
        let object = if name == "forged_call" {
            forged_call.clone()
        } else {
            test_driver(name)
        };
        // After e1000.o in the archive's (name) order: e1000 is domain 0,
        // the window other_domain.c aims at.
        modules.push((format!("x_{name}.o"), object));
    }
    let members: Vec<(&str, Vec<u8>)> = modules
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let out = boot(
        &format!("{mechanism}-domains"),
        &format!("mode=net frames=10000 isolation={mechanism}"),
        &members,
        Duration::from_secs(400),
    );
    if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
        fail_with_log(&out, "the kernel must survive every misbehaving driver");
    }
    let loads = records_of(&out.log, "load");
    let e1000_load = loads.iter().find(|r| r["module"] == "e1000.o").unwrap();
    assert_eq!(e1000_load["mechanism"], mechanism, "{e1000_load}");
    assert!(
        e1000_load["domains"].as_u64().unwrap() >= 2,
        "one domain per NIC: {e1000_load}"
    );
    let w = records_of(&out.log, "workload");
    if w.len() != 1
        || w[0]["mechanism"] != mechanism
        || w[0]["received"] != 10_000
        || w[0]["lost"] != 0
        || w[0]["bad"] != 0
    {
        fail_with_log(
            &out,
            &format!("the {mechanism} e1000 domains must move 10,000 frames intact: {w:?}"),
        );
    }
    // Every frame crosses into the driver and back through the gates.
    let w = &w[0];
    let n = |k: &str| w[k].as_u64().unwrap();
    assert!(n("entries") >= 10_000, "{w}");
    assert!(n("exits") >= 10_000, "{w}");

    let faults = records_of(&out.log, "fault");
    let fault_of = |module: &str| {
        faults
            .iter()
            .find(|f| f["domain"].as_str().unwrap_or("").starts_with(module))
            .cloned()
    };
    for r in rows {
        let Some(f) = fault_of(&format!("x_{}.o", r.module)) else {
            fail_with_log(&out, &format!("no fault reported for {}", r.module))
        };
        if !f["cause"].as_str().unwrap().contains(r.cause) || f["mechanism"] != mechanism {
            fail_with_log(&out, &format!("{}: want {:?}: {f}", r.module, r.cause));
        }
        if let Some(func) = r.function {
            assert!(
                f["function"].as_str().unwrap().contains(func),
                "{}: {f}",
                r.module
            );
        }
        if let Some(a) = &r.address {
            assert_eq!(&f["address"], a.as_str(), "{}: {f}", r.module);
        }
    }
    for module in runs {
        let name = format!("x_{module}.o");
        if fault_of(&name).is_some()
            || !loads.iter().any(|l| l["module"] == name && l["ok"] == true)
        {
            fail_with_log(
                &out,
                &format!("{module} must run unnoticed under {mechanism}"),
            );
        }
    }
    // The e1000 domains were never touched.
    for f in &faults {
        assert!(!f["domain"].as_str().unwrap().starts_with("e1000"), "{f}");
    }
}

#[test]
fn original_e1000_in_mmu_domains_moves_frames_while_misbehaving_drivers_are_contained() {
    contained(
        "mmu",
        &[
            Row {
                function: Some("bad_probe"),
                ..row("wild_store", "mmu: store to a read-only page")
            },
            Row {
                address: Some("0x40".into()),
                ..row("null_offset", "mmu: store to an unmapped page")
            },
            Row {
                address: Some("0xffffffffc0800000".into()),
                ..row("other_domain", "mmu: store to an unmapped page")
            },
            Row {
                address: Some("0xdeadbeef".into()),
                ..row("return_address", "mmu: jump to unmapped memory")
            },
            Row {
                address: Some("0xffffffff80110000".into()),
                ..row("forged_call", "mmu: jump to non-executable memory")
            },
            row("lock_held", "mmu: returned holding a lock"),
            row("irq_off", "mmu: returned with interrupts disabled"),
            row("runaway", "watchdog"),
            row("cli_loop", "watchdog"),
        ],
        &[],
        test_driver("forged_call"),
    );
}

/// Under `pks` a jump into kernel text is not seen (keys govern data, not
/// execution): the forged call here lands on the export `nooks_jiffies`
/// (called directly, not through its gate), which only reads, and returns
/// to the driver as if it were its own code.
#[test]
fn original_e1000_in_pks_domains_moves_frames_while_misbehaving_drivers_are_contained() {
    let ticks = kernel_static("4time13nooks_jiffies");
    contained(
        "pks",
        &[
            Row {
                function: Some("bad_probe"),
                ..row(
                    "wild_store",
                    "pks: store to kernel memory (key 0 is read-only)",
                )
            },
            Row {
                address: Some("0x40".into()),
                ..row("null_offset", "pks: store to an unmapped page")
            },
            Row {
                address: Some("0xffffffffc0800000".into()),
                ..row("other_domain", "pks: store to another domain's memory")
            },
            Row {
                address: Some("0xdeadbeef".into()),
                ..row("return_address", "pks: jump to unmapped memory")
            },
            row("lock_held", "pks: returned holding a lock"),
            row("irq_off", "pks: returned with interrupts disabled"),
            row("runaway", "watchdog"),
            row("cli_loop", "watchdog"),
        ],
        &["forged_call"],
        test_driver_with("forged_call", &[format!("-DFORGED_TARGET={ticks:#x}ul")]),
    );
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

/// Keys 1-14 are the domains': past 14 live `pks` domains a load is refused
/// with the reason, and the kernel and the domains it has go on.
#[test]
fn past_fourteen_pks_domains_a_load_is_refused() {
    let idle = test_driver("idle");
    let names: Vec<String> = (0..14).map(|i| format!("x_idle_{i:02}.o")).collect();
    let mut members: Vec<(&str, Vec<u8>)> = vec![("e1000.o", e1000())];
    members.extend(names.iter().map(|n| (n.as_str(), idle.clone())));
    let out = boot(
        "pks-keys",
        "mode=net frames=1000 isolation=pks",
        &members,
        Duration::from_secs(200),
    );
    if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
        fail_with_log(&out, "the kernel must stay up");
    }
    // e1000 holds three keys (one per NIC, and the instance that found no
    // NIC), so 11 idle drivers get one and 3 are refused.
    let loads = records_of(&out.log, "load");
    let ok = loads.iter().filter(|l| l["ok"] == true).count();
    let refused: Vec<_> = loads.iter().filter(|l| l["ok"] == false).collect();
    if ok != 12
        || refused.len() != 3
        || !refused.iter().all(|l| {
            l["error"]
                .as_str()
                .unwrap_or("")
                .contains("no protection key left: at most 14 pks domains")
        })
    {
        fail_with_log(&out, &format!("{loads:?}"));
    }
    let w = records_of(&out.log, "workload");
    if w.len() != 1 || w[0]["received"] != 1000 || w[0]["lost"] != 0 {
        fail_with_log(&out, &format!("the e1000 domains must go on: {w:?}"));
    }
}
