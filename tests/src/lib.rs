//! Shared helpers for the integration tests in `tests/tests/`: build the kernel
//! once per test binary, boot it with a command line and boot modules, and show
//! the serial log when an assertion fails.

use nooks_bench::{artifacts, qemu};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The kernel ELF, built once per test process.
pub fn kernel() -> PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| artifacts::build_kernel().unwrap_or_else(|e| panic!("{e:#}")))
        .clone()
}

/// Boots the kernel with `cmdline` and `modules` (name, bytes) in the boot archive.
/// `tag` names the archive file, so tests running in parallel do not share one.
pub fn boot(
    tag: &str,
    cmdline: &str,
    modules: &[(&str, Vec<u8>)],
    timeout: Duration,
) -> qemu::Outcome {
    let kernel = kernel();
    let archive =
        artifacts::boot_archive(tag, &kernel, modules).unwrap_or_else(|e| panic!("{e:#}"));
    let mut b = qemu::Boot::new(
        kernel,
        Some(archive.path.clone()),
        format!("{cmdline} {}", archive.cmdline()),
    );
    b.timeout = timeout;
    qemu::run(&b).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Panics with the serial log attached.
pub fn fail_with_log(outcome: &qemu::Outcome, why: &str) -> ! {
    panic!(
        "{why}\nverdict: {:?} after {:.1} s\n---- serial log ----\n{}--------------------",
        outcome.verdict,
        outcome.elapsed.as_secs_f64(),
        outcome.log
    )
}
