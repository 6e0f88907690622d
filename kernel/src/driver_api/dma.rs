//! DMA: coherent buffers from physically contiguous frames, and streaming
//! mappings of buffers the driver already has (which must be physically
//! contiguous — a domain's RAM and skb data are).
//!
//! A domain gets bus addresses only for its own RAM (where the kernel also
//! builds the frames it hands the domain to send), through the IOMMU
//! ([`crate::iommu::map`]): with `iommu=strict` each mapping maps the
//! buffer's pages and each unmapping takes them away again. What the device
//! does with any other address is the IOMMU's to refuse.

use crate::domain::{self, UMem};
use crate::memory::{PAGE_SIZE, frames, phys_to_virt, virt_to_phys};
use crate::sync::IrqMutex;
use alloc::vec::Vec;

/// `DMA_MAPPING_ERROR`.
pub const DMA_ERROR: u64 = !0;

/// Live coherent buffers: (virtual, physical, pages — 0 for a domain's).
static COHERENT: IrqMutex<Vec<(u64, u64, u64, Option<usize>)>> = IrqMutex::new(Vec::new());

fn own_pdev(export: &'static str, pdev: *mut u8) -> bool {
    pdev.is_null() || super::pci::is_mine(export, pdev.cast())
}

pub unsafe extern "C" fn dma_alloc_coherent(
    pdev: *mut u8,
    size: usize,
    handle: *mut u64,
    _gfp: u32,
) -> *mut u8 {
    let Some(handle) = UMem::of("dma_alloc_coherent", "handle", handle) else {
        return core::ptr::null_mut();
    };
    if !own_pdev("dma_alloc_coherent", pdev) || size == 0 || size > (4 << 20) {
        return core::ptr::null_mut();
    }
    let pages = (size as u64).div_ceil(PAGE_SIZE);
    if let Some(id) = domain::current() {
        // Inside the domain's window: its RAM is one physically contiguous run.
        let p = super::mem::alloc_aligned(
            (pages * PAGE_SIZE) as usize,
            PAGE_SIZE as usize,
            super::mem::Kind::Object,
        );
        let mapped = (!p.is_null())
            .then(|| virt_to_phys(p as u64))
            .flatten()
            .and_then(|phys| crate::iommu::map(id, phys, pages * PAGE_SIZE));
        let Some(phys) = mapped else {
            super::mem::free(p, super::mem::Kind::Object);
            return core::ptr::null_mut();
        };
        COHERENT.lock().push((p as u64, phys, 0, Some(id)));
        handle.write(0, phys);
        return p;
    }
    let Some(phys) = frames::alloc_contiguous(pages, PAGE_SIZE) else {
        return core::ptr::null_mut();
    };
    let virt = phys_to_virt(phys);
    COHERENT.lock().push((virt, phys, pages, None));
    handle.write(0, phys);
    virt as *mut u8
}

pub extern "C" fn dma_free_coherent(_pdev: *mut u8, _size: usize, cpu: *mut u8, _handle: u64) {
    let me = domain::current();
    let found = {
        let mut c = COHERENT.lock();
        c.iter()
            .position(|&(v, _, _, owner)| v == cpu as u64 && owner == me)
            .map(|i| c.remove(i))
    };
    match found {
        Some((virt, phys, 0, Some(id))) => {
            let size = super::mem::block(virt as *const u8).map_or(0, |b| b.2);
            crate::iommu::unmap(id, phys, size as u64);
            super::mem::free(virt as *const u8, super::mem::Kind::Object);
        }
        Some((_, phys, pages, _)) => {
            for p in 0..pages {
                // SAFETY: the run came from alloc_contiguous and is no longer mapped for DMA.
                unsafe { frames::free_frame(phys + p * PAGE_SIZE) };
            }
        }
        None => domain::misuse(
            "dma_free_coherent",
            "cpu_addr",
            cpu as u64,
            "not a coherent buffer of this domain",
        ),
    }
}

/// The bus address of [ptr, ptr+size), if it is physically contiguous.
pub fn map(ptr: u64, size: u64) -> Option<u64> {
    let start = virt_to_phys(ptr)?;
    let mut page = ptr & !(PAGE_SIZE - 1);
    while page < ptr.checked_add(size)? {
        let p = virt_to_phys(page)?;
        if p != (start & !(PAGE_SIZE - 1)) + (page - (ptr & !(PAGE_SIZE - 1))) {
            return None;
        }
        page += PAGE_SIZE;
    }
    Some(start)
}

pub extern "C" fn dma_map_single(pdev: *mut u8, ptr: *mut u8, size: usize, _dir: i32) -> u64 {
    if !own_pdev("dma_map_single", pdev) {
        return DMA_ERROR;
    }
    let (ptr, size) = (ptr as u64, size as u64);
    if UMem::new("dma_map_single", "ptr", ptr, size).is_none() {
        return DMA_ERROR;
    }
    let phys = map(ptr, size);
    match domain::current() {
        Some(id) => phys.and_then(|p| crate::iommu::map(id, p, size)),
        None => phys,
    }
    .unwrap_or(DMA_ERROR)
}

pub extern "C" fn dma_unmap_single(pdev: *mut u8, addr: u64, size: usize, _dir: i32) {
    if !own_pdev("dma_unmap_single", pdev) {
        return;
    }
    if let Some(id) = domain::current()
        && !crate::iommu::unmap(id, addr, size as u64)
    {
        domain::misuse(
            "dma_unmap_single",
            "addr",
            addr,
            "not a DMA mapping of this domain",
        );
    }
}

pub extern "C" fn dma_mapping_error(_pdev: *mut u8, addr: u64) -> i32 {
    i32::from(addr == DMA_ERROR)
}

/// Forgets domain `id`'s coherent buffers (its window is abandoned).
pub fn forget(id: usize) {
    COHERENT.lock().retain(|c| c.3 != Some(id));
}
