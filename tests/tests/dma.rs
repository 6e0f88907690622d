//! Device DMA is confined by the IOMMU. The drivers of `tests/drivers/dma/`
//! bind the spare NIC and aim its DMA at a kernel page — a receive
//! descriptor at the IDT (which the kernel's integrity check covers), a
//! transmit descriptor at the kernel's code (whose bytes the test knows from
//! the ELF) — beside two healthy e1000 domains moving frames. With the
//! IOMMU on (`on` and `strict`), under `sfi`, `mmu` and `pks`, the device's
//! access is refused, its domain fails with "DMA outside the domain" and the
//! page's address, the page is unchanged (nothing of it on the wire), the
//! e1000 domains keep moving every frame, and the driver is recovered once
//! (then left down by the restart budget: it does it again). With
//! `iommu=off` the same drivers do corrupt the IDT and put the kernel's code
//! on the wire: the attack is real.

use nooks_bench::artifacts;
use nooks_bench::qemu::{Outcome, Verdict};
use nooks_tests::{
    boot_with, fail_with_log, kernel_bytes, kernel_static, records_of, sfi, test_driver_with,
};
use std::path::PathBuf;
use std::time::Duration;

const FRAMES: u64 = 2000;
/// Where the kernel image is linked: virtual = KERNEL_BASE + physical.
const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

#[derive(Clone, Copy, PartialEq)]
enum Attack {
    /// Receive descriptors at the IDT, 2 KiB in.
    Rx,
    /// A transmit descriptor at the kernel's `kernel_main`.
    Tx,
}

impl Attack {
    fn driver(self) -> &'static str {
        match self {
            Attack::Rx => "rx_kernel",
            Attack::Tx => "tx_kernel",
        }
    }

    /// The kernel virtual address aimed at.
    fn target(self) -> u64 {
        match self {
            Attack::Rx => kernel_static("4arch3idt3IDT") + 0x800,
            Attack::Tx => kernel_static("kernel_main"),
        }
    }
}

struct Run {
    out: Outcome,
    /// What the spare NIC put on the wire (its pcap).
    wire: Vec<u8>,
}

/// Boots the e1000 domains and the attacking driver under `mechanism` with
/// `iommu=<iommu>`; checks that the kernel survived and the e1000 domains
/// moved every frame.
fn run(attack: Attack, mechanism: &str, iommu: &str) -> Run {
    let tag = format!("dma-{}-{mechanism}-{iommu}", attack.driver());
    let e1000 = std::fs::read(artifacts::build_driver("e1000").unwrap()).unwrap();
    let phys = attack.target() - KERNEL_BASE;
    let bad = test_driver_with(
        &format!("dma/{}", attack.driver()),
        &[format!("-DDMA_TARGET={phys:#x}ull")],
    );
    let (e1000, bad) = if mechanism == "sfi" {
        (sfi(&e1000, "e1000"), sfi(&bad, attack.driver()))
    } else {
        (e1000, bad)
    };
    let pcap: PathBuf = artifacts::build_dir().join(&tag);
    let wire_file = PathBuf::from(format!("{}-nic2.pcap", pcap.display()));
    let _ = std::fs::remove_file(&wire_file);
    let out = boot_with(
        &tag,
        &format!(
            "mode=net frames={FRAMES} iommu={iommu} restarts=1 restart_window_ms=60000{}",
            if mechanism == "pks" {
                " isolation=pks"
            } else {
                ""
            }
        ),
        &[
            ("e1000.o", e1000),
            (&format!("x_dma_{}.o", attack.driver()), bad),
        ],
        Duration::from_secs(300),
        |b| {
            b.spare_nic = true;
            b.pcap_prefix = Some(pcap.clone());
        },
    );
    if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
        fail_with_log(&out, "the kernel must survive the driver");
    }
    let w = records_of(&out.log, "workload");
    if w.len() != 1 || w[0]["received"] != FRAMES || w[0]["lost"] != 0 || w[0]["bad"] != 0 {
        fail_with_log(
            &out,
            &format!("the e1000 domains must move {FRAMES} frames intact: {w:?}"),
        );
    }
    let wire = std::fs::read(&wire_file).unwrap_or_default();
    Run { out, wire }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The kernel's code bytes the TX attack aims at.
fn kernel_code() -> Vec<u8> {
    kernel_bytes(Attack::Tx.target(), 64)
}

/// The attack is refused by the IOMMU and contained: the fault names DMA
/// and the page, the page is unchanged, the driver was recovered.
fn contained(attack: Attack, mechanism: &str, iommu: &str) {
    let r = run(attack, mechanism, iommu);
    let out = &r.out;
    let domain = format!("x_dma_{}.o#", attack.driver());
    let page = format!("{:#x}", (attack.target() - KERNEL_BASE) & !0xfff);
    let direction = match attack {
        Attack::Rx => "DMA outside the domain (device write)",
        Attack::Tx => "DMA outside the domain (device read)",
    };
    let faults = records_of(&out.log, "fault");
    let mine: Vec<_> = faults
        .iter()
        .filter(|f| f["domain"].as_str().unwrap_or("").starts_with(&domain))
        .collect();
    if mine.is_empty()
        || !mine
            .iter()
            .all(|f| f["cause"] == direction && f["address"] == page.as_str())
    {
        fail_with_log(
            out,
            &format!("{domain} must fail with \"{direction}\" at {page}: {faults:?}"),
        );
    }
    if faults.len() != mine.len() {
        fail_with_log(out, &format!("only the attacker may fail: {faults:?}"));
    }
    let integrity = records_of(&out.log, "integrity");
    if integrity.len() != 1 || integrity[0]["ok"] != true {
        fail_with_log(out, &format!("kernel data changed: {integrity:?}"));
    }
    if attack == Attack::Tx && contains(&r.wire, &kernel_code()) {
        fail_with_log(out, "the kernel's code went out on the wire");
    }
    let recoveries = records_of(&out.log, "recovery");
    if !recoveries
        .iter()
        .any(|x| x["ok"] == true && x["domain"].as_str().unwrap_or("").starts_with(&domain))
    {
        fail_with_log(out, &format!("{domain} must be recovered: {recoveries:?}"));
    }
}

#[test]
fn rx_descriptor_at_a_kernel_page_is_contained_under_sfi() {
    contained(Attack::Rx, "sfi", "on");
}

#[test]
fn rx_descriptor_at_a_kernel_page_is_contained_under_mmu() {
    contained(Attack::Rx, "mmu", "on");
}

#[test]
fn rx_descriptor_at_a_kernel_page_is_contained_with_strict_mappings() {
    contained(Attack::Rx, "mmu", "strict");
}

#[test]
fn rx_descriptor_at_a_kernel_page_is_contained_under_pks() {
    contained(Attack::Rx, "pks", "on");
}

#[test]
fn tx_descriptor_at_a_kernel_page_is_contained_under_sfi() {
    contained(Attack::Tx, "sfi", "on");
}

#[test]
fn tx_descriptor_at_a_kernel_page_is_contained_under_mmu() {
    contained(Attack::Tx, "mmu", "on");
}

#[test]
fn tx_descriptor_at_a_kernel_page_is_contained_under_pks() {
    contained(Attack::Tx, "pks", "on");
}

/// Without the IOMMU nothing sees the device's DMA: no fault, and the IDT
/// changed under the kernel's feet.
#[test]
fn without_the_iommu_rx_dma_corrupts_the_kernel() {
    let r = run(Attack::Rx, "mmu", "off");
    let integrity = records_of(&r.out.log, "integrity");
    if integrity.len() != 1 || integrity[0]["ok"] != false {
        fail_with_log(
            &r.out,
            &format!("the IDT must have been overwritten: {integrity:?}"),
        );
    }
    if !records_of(&r.out.log, "fault").is_empty() {
        fail_with_log(&r.out, "nothing may have seen the DMA");
    }
}

/// Without the IOMMU the device sends the kernel's code.
#[test]
fn without_the_iommu_tx_dma_leaks_the_kernel() {
    let r = run(Attack::Tx, "mmu", "off");
    if !contains(&r.wire, &kernel_code()) {
        fail_with_log(
            &r.out,
            &format!(
                "the spare NIC must have sent the kernel's code ({} bytes on the wire)",
                r.wire.len()
            ),
        );
    }
}

/// Under `strict` the kernel tracks every mapping, so a driver unmapping one
/// twice (which could take a page from under another mapping) fails; under
/// `on` nothing is tracked and the second unmap does nothing.
#[test]
fn unmapping_twice_fails_the_domain_under_strict_mappings() {
    let e1000 = std::fs::read(artifacts::build_driver("e1000").unwrap()).unwrap();
    let bad = test_driver_with("dma/unmap_twice", &[]);
    for iommu in ["strict", "on"] {
        let out = boot_with(
            &format!("dma-unmap-twice-{iommu}"),
            &format!("mode=net frames=200 recover=off iommu={iommu}"),
            &[("e1000.o", e1000.clone()), ("x_unmap_twice.o", bad.clone())],
            Duration::from_secs(120),
            |_| {},
        );
        if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
            fail_with_log(&out, "the kernel must survive the driver");
        }
        let faults = records_of(&out.log, "fault");
        let ok = match iommu {
            "strict" => {
                faults.len() == 1
                    && faults[0]["cause"]
                        == "api: dma_unmap_single(addr): not a DMA mapping of this domain"
            }
            _ => faults.is_empty() && out.log.contains("unmap_twice: unmapped twice"),
        };
        if !ok {
            fail_with_log(&out, &format!("iommu={iommu}: {faults:?}"));
        }
    }
}
