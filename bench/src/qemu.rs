//! Boots the kernel in QEMU: q35 with its IOMMU (Intel VT-d, DMA remapping;
//! the kernel chooses with `iommu=` whether to use it), two e1000 NICs on one
//! hub (and, for drivers under test, a third of another model no e1000
//! domain takes), `isa-debug-exit` for the verdict, the serial console
//! streamed line by line, and a hard timeout.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// MAC addresses of the two NICs, NIC0 first.
pub const MACS: [&str; 2] = ["52:54:00:12:34:01", "52:54:00:12:34:02"];

/// One boot of the kernel.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The kernel ELF (PVH).
    pub kernel: PathBuf,
    /// The boot archive passed as `-initrd`.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: String,
    /// Kill QEMU after this long and call it a hang.
    pub timeout: Duration,
    /// Echo serial lines to stderr as they arrive.
    pub echo: bool,
    /// Dump each NIC's traffic to `<prefix>-nic<N>.pcap`.
    pub pcap_prefix: Option<PathBuf>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Run under `-icount shift=0,sleep=off` (TCG only): the guest's TSC then
    /// advances one tick per instruction, which makes in-guest counts exact
    /// and deterministic.
    pub icount: bool,
    /// Join a UDP socket to the hub and answer the kernel's `rx-ready`
    /// records with frames (the RX-only workload, see `feed`).
    pub feed: bool,
    /// (QEMU's port, the feeder's port) once `run` bound them.
    pub feed_ports: Option<(u16, u16)>,
    /// Add [`SPARE_NIC`] to the hub: an 82545EM (8086:100f), which the
    /// e1000 driver (82540EM only) leaves to a driver under test.
    pub spare_nic: bool,
    /// Wait for gdb on this TCP port before the first instruction (QEMU's
    /// gdbstub), and print gdb's `add-symbol-file` for each loaded driver.
    pub gdb: Option<u16>,
}

/// The spare NIC's MAC address (it is NIC2 in pcap names).
pub const SPARE_NIC: &str = "52:54:00:12:34:03";

impl Boot {
    /// A boot with the defaults: 256 MiB, a 120 s timeout, no echo.
    pub fn new(kernel: PathBuf, initrd: Option<PathBuf>, cmdline: impl Into<String>) -> Self {
        Boot {
            kernel,
            initrd,
            cmdline: cmdline.into(),
            timeout: Duration::from_secs(120),
            echo: false,
            pcap_prefix: None,
            memory_mib: 256,
            icount: false,
            feed: false,
            feed_ports: None,
            spare_nic: false,
            gdb: None,
        }
    }
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel wrote 0x10 to isa-debug-exit (QEMU exit status 33).
    Success,
    /// The kernel wrote 0x11 (QEMU exit status 35): a failed test or a panic.
    Failure,
    /// QEMU exited some other way (a triple fault with `-no-reboot` exits 0).
    Crashed(Option<i32>),
    /// The timeout expired and QEMU was killed.
    Timeout,
}

/// What a boot produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub verdict: Verdict,
    /// Everything the kernel printed on the serial console.
    pub log: String,
    /// Wall time of the boot.
    pub elapsed: Duration,
}

/// Whether this host can run KVM for real: the CPU must show vmx or svm (a
/// `/dev/kvm` alone is not enough on these machines: it emulates every instruction).
pub fn kvm_usable() -> bool {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = flags
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    hw && std::path::Path::new("/dev/kvm").exists()
}

/// The accelerator arguments: KVM where the host has hardware virtualisation, TCG otherwise.
/// `NOOKS_ACCEL=tcg|kvm` overrides.
pub fn accel_args() -> Vec<String> {
    let kvm = match std::env::var("NOOKS_ACCEL").as_deref() {
        Ok("tcg") => false,
        Ok("kvm") => true,
        _ => kvm_usable(),
    };
    if kvm {
        vec!["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]
    } else {
        // `max` with protection keys for supervisor pages (the pks mechanism).
        vec![
            "-accel".into(),
            "tcg".into(),
            "-cpu".into(),
            "max,+pks".into(),
        ]
    }
}

/// The full QEMU command for a boot.
pub fn command(boot: &Boot) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    let accel = accel_args();
    let tcg = accel.iter().any(|a| a == "tcg");
    cmd.args(accel);
    if boot.icount && tcg {
        // With a host feed, idle guest time must pass at the host's pace
        // (sleep=on), or the guest would give up waiting for frames long
        // before they come; instruction counts are exact either way.
        cmd.args([
            "-icount",
            if boot.feed {
                "shift=0,sleep=on"
            } else {
                "shift=0,sleep=off"
            },
        ]);
    }
    cmd.args(["-M", "q35", "-smp", "1", "-m"])
        .arg(boot.memory_mib.to_string());
    cmd.args([
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
    ]);
    // The IOMMU comes before the devices it translates for. Interrupt
    // remapping stays off: the kernel takes its interrupts through the PIC.
    cmd.args(["-device", "intel-iommu,intremap=off"]);
    cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    let mut nics: Vec<(&str, &str)> = MACS.iter().map(|m| ("e1000", *m)).collect();
    if boot.spare_nic {
        nics.push(("e1000-82545em", SPARE_NIC));
    }
    for (i, (model, mac)) in nics.iter().enumerate() {
        cmd.arg("-netdev").arg(format!("hubport,id=n{i},hubid=0"));
        cmd.arg("-device")
            .arg(format!("{model},netdev=n{i},mac={mac}"));
        if let Some(prefix) = &boot.pcap_prefix {
            cmd.arg("-object").arg(format!(
                "filter-dump,id=dump{i},netdev=n{i},file={}-nic{i}.pcap",
                prefix.display()
            ));
        }
    }
    if let Some((qemu_port, feeder_port)) = boot.feed_ports {
        cmd.arg("-netdev").arg(format!(
            "dgram,id=feed,local.type=inet,local.host=127.0.0.1,local.port={qemu_port},remote.type=inet,remote.host=127.0.0.1,remote.port={feeder_port}"
        ));
        cmd.arg("-netdev").arg("hubport,id=hf,hubid=0,netdev=feed");
    }
    if let Some(port) = boot.gdb {
        cmd.arg("-gdb").arg(format!("tcp::{port}")).arg("-S");
    }
    cmd.arg("-kernel").arg(&boot.kernel);
    if let Some(initrd) = &boot.initrd {
        cmd.arg("-initrd").arg(initrd);
    }
    cmd.arg("-append").arg(&boot.cmdline);
    cmd
}

/// Checks that QEMU is installed, with the exact command to install it if not.
pub fn ensure_installed() -> Result<()> {
    match Command::new("qemu-system-x86_64").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => anyhow::bail!(
            "qemu-system-x86_64 is not installed; install it with:\n  sudo apt-get update && sudo apt-get install -y qemu-system-x86"
        ),
    }
}

/// Boots, streams the serial console, enforces the timeout, and returns the verdict.
pub fn run(boot: &Boot) -> Result<Outcome> {
    ensure_installed()?;
    let start = Instant::now();
    // The RX feed: a socket QEMU's dgram netdev sends to and receives from.
    let mut boot = boot.clone();
    let feed = if boot.feed {
        let socket =
            std::net::UdpSocket::bind("127.0.0.1:0").context("binding the RX feed socket")?;
        // QEMU's end: a free port (bound and released here, then QEMU binds it).
        let qemu_port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        boot.feed_ports = Some((qemu_port, socket.local_addr()?.port()));
        Some(socket)
    } else {
        None
    };
    let boot = &boot;
    let mut feeding: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut child = command(boot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let err_tx = tx.clone();
    let out_reader = std::thread::spawn(move || pump(stdout, tx));
    let err_reader = std::thread::spawn(move || pump(stderr, err_tx));

    let mut log = String::new();
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            if boot.echo {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            if let Some(cmd) = boot.gdb.and_then(|_| gdb_symbols(&line)) {
                let _ = writeln!(std::io::stderr(), "gdb: {cmd}");
            }
            if let (Some(socket), Some(r), Some((port, _))) =
                (feed.as_ref(), crate::feed::request(&line), boot.feed_ports)
            {
                if let Ok(socket) = socket.try_clone() {
                    feeding.push(std::thread::spawn(move || {
                        crate::feed::send(
                            &socket,
                            ("127.0.0.1", port),
                            r,
                            Duration::from_micros(700),
                        )
                    }));
                }
            }
            log.push_str(&line);
            log.push('\n');
        }
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > boot.timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for f in feeding {
        let _ = f.join();
    }
    let _ = out_reader.join();
    let _ = err_reader.join();
    for line in rx.try_iter() {
        if boot.echo {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        log.push_str(&line);
        log.push('\n');
    }
    let verdict = match status {
        None => Verdict::Timeout,
        Some(s) => match s.code() {
            Some(33) => Verdict::Success,
            Some(35) => Verdict::Failure,
            code => Verdict::Crashed(code),
        },
    };
    Ok(Outcome {
        verdict,
        log,
        elapsed: start.elapsed(),
    })
}

/// gdb's `add-symbol-file` for a driver the kernel loaded, from its
/// `{"nooks":"sections",...}` record (the object is named as the boot
/// archive member: the file name given to `nooks-bench boot`).
pub fn gdb_symbols(line: &str) -> Option<String> {
    let r = crate::serial::records(line).into_iter().next()?;
    if r["nooks"] != "sections" {
        return None;
    }
    let module = r["module"].as_str()?;
    let sections = r["sections"].as_object()?;
    let mut cmd = format!("add-symbol-file {module}");
    // .text first (older gdb reads the first address as the text's).
    let text = sections.iter().filter(|(n, _)| *n == ".text");
    for (name, addr) in text.chain(sections.iter().filter(|(n, _)| *n != ".text")) {
        cmd.push_str(&format!(" -s {name} {}", addr.as_str()?));
    }
    Some(cmd)
}

fn pump(stream: impl std::io::Read, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if tx.send(line.to_string()).is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sections_record_becomes_add_symbol_file() {
        let line = r#"{"nooks":"sections","module":"e1000.o","domain":0,"sections":{".text":"0xffffffffc0000000",".data":"0xffffffffc0400000"}}"#;
        assert_eq!(
            super::gdb_symbols(line).as_deref(),
            Some("add-symbol-file e1000.o -s .text 0xffffffffc0000000 -s .data 0xffffffffc0400000")
        );
        assert_eq!(super::gdb_symbols(r#"{"nooks":"load"}"#), None);
        assert_eq!(super::gdb_symbols("[ 0.1] INFO text"), None);
    }
}
