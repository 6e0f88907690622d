//! Silent-corruption detection for fault-injection runs: a checksum of the
//! kernel's own critical data — the descriptor tables every interrupt depends
//! on, and the kernel objects drivers can see but must not write (`pci_dev`s) —
//! taken before drivers load and checked at the end of a run. A driver that
//! corrupts them without trapping is caught here rather than counted as
//! harmless.

use core::sync::atomic::{AtomicU64, Ordering};

static BASELINE: AtomicU64 = AtomicU64::new(0);

fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn tables() -> u64 {
    let (gdt, tss) = crate::arch::gdt::tables();
    fnv(&[crate::arch::idt::table(), gdt, tss])
}

/// Records the baseline (before any driver runs).
pub fn snapshot() {
    BASELINE.store(tables(), Ordering::SeqCst);
}

/// Checks the critical data against the baseline and prints the
/// `{"nooks":"integrity",...}` record; returns whether it is intact.
pub fn check() -> bool {
    let tables_ok = tables() == BASELINE.load(Ordering::SeqCst);
    let pdevs = crate::driver_api::pci::pdevs_intact();
    let detail = match (&pdevs, tables_ok) {
        (Err(e), _) => e.clone(),
        (Ok(()), false) => alloc::string::String::from("descriptor tables changed"),
        (Ok(()), true) => alloc::string::String::new(),
    };
    let ok = tables_ok && pdevs.is_ok();
    crate::println!("{{\"nooks\":\"integrity\",\"ok\":{ok},\"detail\":\"{detail}\"}}");
    ok
}
