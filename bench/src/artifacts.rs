//! Builds what QEMU boots: the kernel ELF, the driver objects, and the boot archive.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the workspace holding `bench/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ lives inside the repository")
        .to_path_buf()
}

/// Where the runner puts what it builds and what runs produce (git-ignored).
pub fn build_dir() -> PathBuf {
    repo_root().join("build")
}

/// Builds the kernel (its own cargo workspace in `kernel/`) and returns the ELF path.
pub fn build_kernel() -> Result<PathBuf> {
    let kernel_dir = repo_root().join("kernel");
    let target_dir = kernel_dir.join("target");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&kernel_dir)
        .args(["build", "--release", "--target-dir"])
        .arg(&target_dir);
    // A caller's cargo environment (cargo test sets some) must not leak into the
    // kernel build: the kernel's own .cargo/config.toml decides its flags.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    run(&mut cmd).context("building the kernel (cd kernel && cargo build --release)")?;
    let elf = target_dir.join("x86_64-unknown-linux-gnu/release/nooks-kernel");
    if !elf.exists() {
        bail!(
            "the kernel build succeeded but {} is missing",
            elf.display()
        );
    }
    Ok(elf)
}

/// Builds a C driver under `drivers/<name>` with its Makefile (the driver ABI
/// flags live there) into `build/drivers/<name>.o`; returns the object's path.
pub fn build_driver(name: &str) -> Result<PathBuf> {
    // One build at a time: two tests of one binary building the same driver
    // at once let one read the object while the other's gcc rewrites it.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let out = build_dir().join("drivers");
    std::fs::create_dir_all(&out)?;
    let mut cmd = Command::new("make");
    cmd.arg("-s")
        .arg("-C")
        .arg(repo_root().join("drivers").join(name))
        .arg(format!("OUT={}", out.display()));
    run(&mut cmd).with_context(|| format!("building drivers/{name}"))?;
    Ok(out.join(format!("{name}.o")))
}

/// Builds `tests/drivers/<name>.c` with the driver flags (drivers/e1000's
/// Makefile) and `extra` into `build/test-drivers/<name>.o`; returns its path.
pub fn build_test_driver(name: &str, extra: &[String]) -> Result<PathBuf> {
    // One build at a time: tests running in parallel build the same drivers,
    // and one must not read an object another is writing.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let flags = Command::new("make")
        .args(["-s", "flags"])
        .current_dir(root.join("drivers/e1000"))
        .output()
        .context("make -s flags in drivers/e1000")?;
    let flags = String::from_utf8(flags.stdout)?;
    let obj = build_dir().join("test-drivers").join(format!("{name}.o"));
    std::fs::create_dir_all(obj.parent().unwrap())?;
    let mut cmd = Command::new("gcc");
    cmd.current_dir(root.join("drivers/e1000"))
        .args(flags.split_whitespace())
        .args(extra)
        .arg("-c")
        .arg(root.join("tests/drivers").join(format!("{name}.c")))
        .arg("-o")
        .arg(&obj);
    run(&mut cmd).with_context(|| format!("building {name}.c"))?;
    Ok(obj)
}

/// Builds the `nooks-cc` executable (release) and returns its path, for
/// what must run it as a program (`make CC=nooks-cc`).
pub fn build_nooks_cc() -> Result<PathBuf> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(repo_root()).args([
        "build",
        "--release",
        "-q",
        "-p",
        "nooks-sfi-compiler",
        "--bin",
        "nooks-cc",
    ]);
    run(&mut cmd).context("building nooks-cc")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let exe = target.join("release").join("nooks-cc");
    if !exe.exists() {
        bail!("built nooks-cc, but {} is missing", exe.display());
    }
    Ok(exe)
}

/// The cargo that runs us, so nested builds use the same toolchain.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs a command, failing with its output shown if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A boot archive on disk, with the checksum the kernel verifies.
#[derive(Debug, Clone)]
pub struct BootArchive {
    /// The `ar` file passed to QEMU as `-initrd`.
    pub path: PathBuf,
    /// FNV-1a 64 of its bytes.
    pub fnv: u64,
    /// Its length in bytes.
    pub len: usize,
}

impl BootArchive {
    /// Kernel command-line words that let the kernel check the archive arrived intact.
    pub fn cmdline(&self) -> String {
        format!("initrd_fnv={:016x} initrd_len={}", self.fnv, self.len)
    }
}

/// Packs the kernel's symbol map and the given modules into `build/<name>.a`.
pub fn boot_archive(name: &str, kernel: &Path, modules: &[(&str, Vec<u8>)]) -> Result<BootArchive> {
    let map = crate::symbols::kernel_map(kernel)?;
    let mut members: Vec<(&str, &[u8])> = vec![(crate::symbols::MAP_MEMBER, map.as_bytes())];
    members.extend(modules.iter().map(|(n, b)| (*n, b.as_slice())));
    let bytes = crate::archive::pack(&members);
    let dir = build_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.a"));
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(BootArchive {
        path,
        fnv: crate::archive::fnv1a64(&bytes),
        len: bytes.len(),
    })
}
