//! The kernel boots in QEMU (TCG), runs its in-kernel tests, and every way it can
//! go wrong — a failed test, a panic, an unexpected exception, a hang — makes the
//! run fail within its timeout with the serial log shown.

use nooks_bench::qemu::Verdict;
use nooks_bench::serial::KtestReport;
use nooks_tests::{boot, fail_with_log};
use std::time::Duration;

const REQUIRED: [&str; 5] = [
    "page_fault_caught",
    "timer_ticks",
    "kernel_text_is_write_protected",
    "two_e1000_found",
    "boot_module_intact",
];

/// A module with bytes of every value and an odd length, so the checksum sees all of it.
fn sample_module() -> Vec<u8> {
    (0..70_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn in_kernel_tests_pass() {
    let out = boot(
        "ktest-all",
        "mode=test",
        &[("sample.bin", sample_module())],
        Duration::from_secs(240),
    );
    let report = KtestReport::parse(&out.log);
    if out.verdict != Verdict::Success {
        fail_with_log(
            &out,
            &format!("in-kernel tests failed: {:?}", report.failures()),
        );
    }
    for name in REQUIRED {
        if !report.passed(name) {
            fail_with_log(&out, &format!("required ktest {name} did not pass"));
        }
    }
    let (passed, failed) = report
        .summary
        .unwrap_or_else(|| fail_with_log(&out, "no `test result:` line"));
    assert_eq!(failed, 0);
    assert_eq!(passed as usize, report.results.len());
    assert!(
        out.log.contains("EXCEPTION") || out.log.contains("cr2="),
        "the caught fault is reported"
    );
}

#[test]
fn a_corrupted_boot_module_is_detected() {
    // The host announces a checksum; flip one byte of the module after the fact
    // by announcing the checksum of different bytes: the kernel must notice.
    let module = sample_module();
    let kernel = nooks_tests::kernel();
    let archive =
        nooks_bench::artifacts::boot_archive("ktest-corrupt", &kernel, &[("sample.bin", module)])
            .unwrap();
    let wrong = archive.fnv ^ 1;
    let mut b = nooks_bench::qemu::Boot::new(
        kernel,
        Some(archive.path.clone()),
        format!(
            "mode=test filter=boot_module_intact initrd_fnv={wrong:016x} initrd_len={}",
            archive.len
        ),
    );
    b.timeout = Duration::from_secs(120);
    let out = nooks_bench::qemu::run(&b).unwrap();
    let report = KtestReport::parse(&out.log);
    if out.verdict != Verdict::Failure
        || report.passed("boot_module_intact")
        || report.results.is_empty()
    {
        fail_with_log(&out, "a wrong checksum must fail boot_module_intact");
    }
}

#[test]
fn a_kernel_panic_fails_the_run() {
    let out = boot("panic", "mode=panic", &[], Duration::from_secs(120));
    if out.verdict != Verdict::Failure || !out.log.contains("KERNEL PANIC") {
        fail_with_log(
            &out,
            "mode=panic must print KERNEL PANIC and exit with failure",
        );
    }
}

#[test]
fn an_unexpected_exception_is_reported_and_fails_the_run() {
    let out = boot("fault", "mode=fault", &[], Duration::from_secs(120));
    let reported = out
        .log
        .lines()
        .any(|l| l.contains("EXCEPTION") && l.contains("vector=14") && l.contains("rip="));
    if out.verdict != Verdict::Failure || !reported || !out.log.contains("KERNEL PANIC") {
        fail_with_log(
            &out,
            "mode=fault must report the page fault (vector, rip, cr2, symbol) and fail",
        );
    }
    let symbolised = out
        .log
        .lines()
        .any(|l| l.contains("EXCEPTION") && !l.contains("symbol=?"));
    if !symbolised {
        fail_with_log(&out, "the faulting RIP must be symbolised from kernel.map");
    }
}

#[test]
fn a_hang_is_caught_by_the_timeout() {
    let out = boot("hang", "mode=hang", &[], Duration::from_secs(20));
    if out.verdict != Verdict::Timeout {
        fail_with_log(&out, "mode=hang must run into the runner's timeout");
    }
}
