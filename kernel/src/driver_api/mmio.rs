//! `ioremap`/`iounmap`: only device memory of a function bound to a driver can
//! be mapped, and only inside that function's BARs.

use crate::memory::{PAGE_SIZE, paging};
use crate::pci::Bar;
use crate::sync::IrqMutex;
use alloc::vec::Vec;

/// Live mappings: (virtual base of the pages, pages).
static MAPPINGS: IrqMutex<Vec<(u64, u64)>> = IrqMutex::new(Vec::new());

fn inside_a_bound_bar(phys: u64, size: u64) -> bool {
    super::pci::bound_devices().iter().any(|(_, f)| {
        f.bars.iter().any(|b| match *b {
            Bar::Memory {
                base, size: len, ..
            } => phys >= base && phys.saturating_add(size) <= base + len,
            _ => false,
        })
    })
}

pub extern "C" fn ioremap(phys: u64, size: usize) -> *mut u8 {
    let size = size as u64;
    if size == 0 || !inside_a_bound_bar(phys, size) {
        crate::warn!("ioremap({phys:#x}, {size:#x}) refused: not inside a bound device's BAR");
        return core::ptr::null_mut();
    }
    if let Some(id) = crate::domain::current() {
        return crate::domain::ioremap(id, phys, size)
            .map_or(core::ptr::null_mut(), |v| v as *mut u8);
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
