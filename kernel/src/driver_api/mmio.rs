//! `ioremap`/`iounmap`: a domain may map only device memory inside the BARs
//! of a function bound to it, and unmap only its own mappings.

use crate::domain;
use crate::memory::{PAGE_SIZE, paging};
use crate::pci::Bar;
use crate::sync::IrqMutex;
use alloc::vec::Vec;

/// Live kernel mappings: (virtual base of the pages, pages).
static MAPPINGS: IrqMutex<Vec<(u64, u64)>> = IrqMutex::new(Vec::new());

fn inside_a_bar_of(id: Option<usize>, phys: u64, size: u64) -> bool {
    let Some(end) = phys.checked_add(size) else {
        return false;
    };
    super::pci::bars_of(id).iter().any(|b| match *b {
        Bar::Memory {
            base, size: len, ..
        } => phys >= base && end <= base + len,
        _ => false,
    })
}

pub extern "C" fn ioremap(phys: u64, size: usize) -> *mut u8 {
    let size = size as u64;
    let me = domain::current();
    if size == 0 || !inside_a_bar_of(me, phys, size) {
        crate::warn!("ioremap({phys:#x}, {size:#x}) refused: not inside a BAR of a bound device");
        domain::misuse(
            "ioremap",
            "phys",
            phys,
            "not inside a BAR of a device bound to this domain",
        );
        return core::ptr::null_mut();
    }
    if let Some(id) = me {
        return domain::ioremap(id, phys, size).map_or(core::ptr::null_mut(), |v| v as *mut u8);
    }
    match paging::ioremap(phys, size) {
        Ok(virt) => {
            let first = virt & !(PAGE_SIZE - 1);
            let pages = (virt + size - first).div_ceil(PAGE_SIZE);
            MAPPINGS.lock().push((first, pages));
            virt as *mut u8
        }
        Err(e) => {
            crate::warn!("ioremap({phys:#x}): {e}");
            core::ptr::null_mut()
        }
    }
}

pub extern "C" fn iounmap(addr: *mut u8) {
    if let Some(id) = domain::current() {
        // A domain's mappings go with its window; only its own may be named.
        if !domain::is_mmio_of(id, addr as u64) {
            domain::misuse(
                "iounmap",
                "addr",
                addr as u64,
                "not a mapping of this domain",
            );
        }
        return;
    }
    let first = addr as u64 & !(PAGE_SIZE - 1);
    let found = {
        let mut m = MAPPINGS.lock();
        m.iter().position(|&(b, _)| b == first).map(|i| m.remove(i))
    };
    match found {
        Some((base, pages)) => {
            for p in 0..pages {
                let _ = paging::kernel_unmap(base + p * PAGE_SIZE);
            }
        }
        None => crate::warn!("iounmap({addr:p}): not an ioremap'd address"),
    }
}
