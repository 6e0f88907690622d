//! e1000 rewritten with `nooks-cc --isolation sfi` drives each NIC from its own
//! confined SFI domain and moves 10,000 frames, while misbehaving drivers
//! (tests/drivers) loaded beside it are contained — each with the right cause
//! and the driver function it happened in — and the kernel keeps running.

use nooks_bench::qemu::Verdict;
use nooks_bench::{artifacts, serial};
use nooks_sfi_compiler::{Options, rewrite};
use nooks_tests::{boot, fail_with_log, sfi, sfi_options, test_driver};
use std::time::Duration;

/// `obj` (sandboxed) with its first window check's compare and branch
/// turned into NOPs: the store after it runs unchecked.
fn without_first_check(obj: &[u8]) -> Vec<u8> {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind};
    let object = nooks_loader::Object::parse(obj).unwrap();
    let text = object
        .sections
        .iter()
        .find(|s| s.area == Some(nooks_loader::Area::Text))
        .unwrap();
    let at = text.data.as_ptr() as usize - obj.as_ptr() as usize;
    let mut d = Decoder::with_ip(64, text.data, 0, DecoderOptions::NONE);
    let insns: Vec<_> = std::iter::from_fn(|| d.can_decode().then(|| d.decode())).collect();
    let span = nooks_policy::abi::state::SPAN;
    let k = insns
        .windows(2)
        .position(|w| {
            w[0].mnemonic() == Mnemonic::Cmp
                && w[0].op1_kind() == OpKind::Immediate32to64
                && (span - 4096..=span).contains(&w[0].immediate(1))
                && w[1].mnemonic() == Mnemonic::Jae
        })
        .expect("a window check");
    let mut out = obj.to_vec();
    for i in &insns[k..k + 2] {
        out[at + i.ip() as usize..at + i.next_ip() as usize].fill(0x90);
    }
    out
}

#[test]
fn privileged_instructions_are_refused_at_build_time() {
    let err = rewrite(&test_driver("privileged"), &sfi_options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsupported instruction") && err.contains("wrmsr"),
        "{err}"
    );
}

/// The ports driver, rewritten under its policy.
fn ports_under_policy() -> Vec<u8> {
    let text =
        std::fs::read_to_string(artifacts::repo_root().join("tests/drivers/ports.policy")).unwrap();
    let policy = nooks_policy::file::parse(&text).unwrap();
    rewrite(
        &test_driver("ports"),
        &Options {
            policy,
            ..sfi_options()
        },
    )
    .unwrap_or_else(|e| panic!("nooks-cc ports: {e}"))
    .object
}

#[test]
fn a_constant_port_outside_the_policy_is_refused_at_build_time() {
    let err = rewrite(&test_driver("ports"), &sfi_options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("forbidden by the policy") && err.contains("0x80"),
        "{err}"
    );
    assert!(
        err.contains("ports.c:"),
        "the error names the source line: {err}"
    );
    // Under its policy it builds, and calls the kernel's port I/O.
    let obj = ports_under_policy();
    let text = String::from_utf8_lossy(&obj);
    assert!(text.contains("nooks_port_out") && text.contains("nooks_port_in"));
    assert!(
        text.contains("ports 0x80-0x80"),
        "the policy's ranges are in .nooks"
    );
}

#[test]
fn misbehaving_drivers_are_contained_while_e1000_keeps_moving_frames() {
    let e1000 = std::fs::read(artifacts::build_driver("e1000").unwrap()).unwrap();
    let mut modules = vec![("e1000.sfi.o".to_string(), sfi(&e1000, "e1000"))];
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
        "state_smash",
    ];
    for name in bad {
        modules.push((format!("{name}.o"), sfi(&test_driver(name), name)));
    }
    modules.push(("ports.o".to_string(), ports_under_policy()));
    // What a buggy nooks-cc (or a patched object) would hand the kernel: a
    // sandboxed object, `.nooks` saying `isolation sfi`, one check gone.
    modules.push((
        "unchecked.o".to_string(),
        without_first_check(&sfi(&test_driver("wild_store"), "wild_store")),
    ));
    let members: Vec<(&str, Vec<u8>)> = modules
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let out = boot(
        "sfi-domains",
        "mode=net frames=10000",
        &members,
        Duration::from_secs(300),
    );
    let records = serial::records(&out.log);
    let of = |kind: &str| {
        records
            .iter()
            .filter(|r| r["nooks"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    if out.verdict != Verdict::Success || of("alive").len() != 1 {
        fail_with_log(&out, "the kernel must survive every misbehaving driver");
    }
    // The load-time verifier refused it, naming the store; e1000 passed,
    // and the kernel logged what verifying it cost.
    let refused = of("load")
        .into_iter()
        .find(|r| r["module"] == "unchecked.o")
        .unwrap();
    assert_eq!(refused["ok"], false, "{refused}");
    let why = refused["error"].as_str().unwrap();
    assert!(
        why.contains("not verified") && why.contains("no window check covers"),
        "{refused}"
    );
    let verified = of("verify")
        .into_iter()
        .find(|r| r["module"] == "e1000.sfi.o")
        .unwrap();
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(
        verified["cycles"].as_u64().unwrap() > 0 && verified["bytes"].as_u64().unwrap() > 10_000,
        "{verified}"
    );
    let e1000_load = of("load")
        .into_iter()
        .find(|r| r["module"] == "e1000.sfi.o")
        .unwrap();
    assert_eq!(e1000_load["mechanism"], "sfi", "{e1000_load}");
    assert!(
        e1000_load["domains"].as_u64().unwrap() >= 2,
        "one domain per NIC: {e1000_load}"
    );
    let w = of("workload");
    if w.len() != 1
        || w[0]["mechanism"] != "sfi"
        || w[0]["received"] != 10_000
        || w[0]["lost"] != 0
        || w[0]["bad"] != 0
    {
        fail_with_log(
            &out,
            &format!("the SFI e1000 domains must move 10,000 frames intact: {w:?}"),
        );
    }
    let faults = of("fault");
    let fault_of = |module: &str| {
        faults
            .iter()
            .find(|f| f["domain"].as_str().unwrap_or("").starts_with(module))
            .cloned()
    };
    let expect = [
        (
            "wild_store.o",
            "store outside the domain",
            Some("bad_probe"),
        ),
        ("null_offset.o", "store outside the domain", None),
        ("other_domain.o", "store outside the domain", None),
        ("forged_call.o", "call to a forbidden target", None),
        ("lock_held.o", "returned holding a lock", None),
        ("irq_off.o", "returned with interrupts disabled", None),
        ("runaway.o", "watchdog", None),
        ("cli_loop.o", "watchdog", None),
        ("ports.o", "I/O port outside the policy", None),
        ("state_smash.o", "store outside the domain", Some("init")),
    ];
    for (module, cause, function) in expect {
        let Some(f) = fault_of(module) else {
            fail_with_log(&out, &format!("no fault reported for {module}"))
        };
        assert!(
            f["cause"].as_str().unwrap().contains(cause),
            "{module}: {f}"
        );
        assert_eq!(f["mechanism"], "sfi", "{f}");
        if let Some(func) = function {
            assert!(
                f["function"].as_str().unwrap().contains(func),
                "{module}: {f}"
            );
        }
    }
    assert_eq!(fault_of("null_offset.o").unwrap()["address"], "0x40");
    assert_eq!(fault_of("ports.o").unwrap()["address"], "0x64");
    // The runtime state sits outside the window's writable part: the store
    // aimed at its `hi` bound is refused.
    let smash = fault_of("state_smash.o").unwrap();
    let addr = u64::from_str_radix(
        smash["address"].as_str().unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(addr & ((32 << 20) - 1), (3 << 20) + 8, "{smash}");
    assert_eq!(
        fault_of("other_domain.o").unwrap()["address"],
        "0xffffffffc0800000"
    );
    assert_eq!(
        fault_of("forged_call.o").unwrap()["address"],
        "0xffffffff80110000"
    );
    // The return-address smash is harmless under SFI: no fault, and it returned.
    assert!(
        fault_of("return_address.o").is_none(),
        "return_address must not fault"
    );
    // The host completes each report with the driver's source line, from the
    // DWARF nooks-cc wrote into the rewritten object.
    let dir = artifacts::build_dir().join("test-drivers");
    for (module, line) in [
        ("null_offset", "null_offset.c:5"),
        ("other_domain", "other_domain.c:3"),
        ("forged_call", "forged_call.c:9"),
        ("wild_store", "wild_store.c:6"),
    ] {
        let obj = dir.join(format!("{module}.sfi.o"));
        std::fs::write(
            &obj,
            &modules
                .iter()
                .find(|(n, _)| n == &format!("{module}.o"))
                .unwrap()
                .1,
        )
        .unwrap();
        let f = fault_of(&format!("{module}.o")).unwrap();
        let at = nooks_bench::faults::source_line(&obj, f["function"].as_str().unwrap()).unwrap();
        assert!(
            at.ends_with(line),
            "{module}: {} resolves to {at}, expected {line}",
            f["function"]
        );
    }
    assert!(out.log.contains("return_address: smash returned 7"));
}
