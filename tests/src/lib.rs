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
    boot_with(tag, cmdline, modules, timeout, |_| {})
}

/// [`boot`], with `configure` given the QEMU boot before it starts (a spare
/// NIC, traffic dumps).
pub fn boot_with(
    tag: &str,
    cmdline: &str,
    modules: &[(&str, Vec<u8>)],
    timeout: Duration,
    configure: impl FnOnce(&mut qemu::Boot),
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
    configure(&mut b);
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

/// Builds `tests/drivers/<name>.c` with the driver flags (drivers/e1000's
/// Makefile) into `build/test-drivers/<name>.o`; returns the object's bytes.
pub fn test_driver(name: &str) -> Vec<u8> {
    test_driver_with(name, &[])
}

/// [`test_driver`] with extra compiler flags (`-DNAME=value`).
pub fn test_driver_with(name: &str, extra: &[String]) -> Vec<u8> {
    let obj = artifacts::build_test_driver(name, extra).unwrap_or_else(|e| panic!("{e:#}"));
    std::fs::read(obj).unwrap()
}

/// The address of the kernel's static whose mangled name contains `part`
/// (`"4arch3idt3IDT"`), read from the kernel ELF.
pub fn kernel_static(part: &str) -> u64 {
    use object::{Object, ObjectSymbol};
    let bytes = std::fs::read(kernel()).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    file.symbols()
        .find(|s| s.name().is_ok_and(|n| n.contains(part)))
        .unwrap_or_else(|| panic!("no kernel symbol containing {part}"))
        .address()
}

/// `len` bytes of the kernel image at virtual address `addr`, as the ELF
/// holds them (code and read-only data are what the kernel runs with).
pub fn kernel_bytes(addr: u64, len: usize) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let bytes = std::fs::read(kernel()).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let section = file
        .sections()
        .find(|s| addr >= s.address() && addr + len as u64 <= s.address() + s.size())
        .unwrap_or_else(|| panic!("no kernel section holds {addr:#x}"));
    let data = section.data().unwrap();
    let at = (addr - section.address()) as usize;
    data[at..at + len].to_vec()
}

/// nooks-cc's options for `--isolation sfi` (the default policy).
pub fn sfi_options() -> nooks_sfi_compiler::Options {
    nooks_sfi_compiler::Options {
        isolation: nooks_sfi_compiler::Isolation::Sfi,
        ..nooks_sfi_compiler::Options::default()
    }
}

/// `bytes` rewritten by nooks-cc with `--isolation sfi`; panics naming `name`.
pub fn sfi(bytes: &[u8], name: &str) -> Vec<u8> {
    nooks_sfi_compiler::rewrite(bytes, &sfi_options())
        .unwrap_or_else(|e| panic!("nooks-cc {name}: {e}"))
        .object
}

/// The records of one kind (`{"nooks":kind,...}`) in a serial log.
pub fn records_of(log: &str, kind: &str) -> Vec<serde_json::Value> {
    nooks_bench::serial::records(log)
        .into_iter()
        .filter(|r| r["nooks"] == kind)
        .collect()
}

/// Fails (with the log) unless workload record `w` moved every one of
/// `frames` frames intact: all sent and received, none bad or lost.
pub fn expect_all_frames(outcome: &qemu::Outcome, w: &serde_json::Value, frames: u64) {
    for (field, want) in [
        ("sent", frames),
        ("received", frames),
        ("bad", 0),
        ("lost", 0),
    ] {
        if w[field] != want {
            fail_with_log(
                outcome,
                &format!("workload {field} = {}, want {want}: {w}", w[field]),
            );
        }
    }
}
