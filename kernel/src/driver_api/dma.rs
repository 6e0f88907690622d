//! DMA: coherent buffers from physically contiguous frames, and streaming
//! mappings of buffers the driver already has (which must be physically
//! contiguous — kernel heap memory and skb data are).

use crate::memory::{PAGE_SIZE, frames, phys_to_virt, virt_to_phys};
use crate::sync::IrqMutex;
use alloc::vec::Vec;

/// `DMA_MAPPING_ERROR`.
pub const DMA_ERROR: u64 = !0;

/// Live coherent buffers: (virtual, physical, pages).
static COHERENT: IrqMutex<Vec<(u64, u64, u64)>> = IrqMutex::new(Vec::new());

pub unsafe extern "C" fn dma_alloc_coherent(
    _pdev: *mut u8,
    size: usize,
    handle: *mut u64,
    _gfp: u32,
) -> *mut u8 {
    if size == 0 || size > (4 << 20) || handle.is_null() {
        return core::ptr::null_mut();
    }
    let pages = (size as u64).div_ceil(PAGE_SIZE);
    if crate::domain::current().is_some() {
        // Inside the domain's window: its RAM is one physically contiguous run.
        let p = super::mem::alloc_aligned((pages * PAGE_SIZE) as usize, PAGE_SIZE as usize);
        let Some(phys) = (!p.is_null()).then(|| virt_to_phys(p as u64)).flatten() else {
            return core::ptr::null_mut();
        };
        COHERENT.lock().push((p as u64, phys, 0));
        // SAFETY: the driver passes a pointer to its dma_addr_t.
        unsafe { handle.write(phys) };
        return p;
    }
    let Some(phys) = frames::alloc_contiguous(pages, PAGE_SIZE) else {
        return core::ptr::null_mut();
    };
    let virt = phys_to_virt(phys);
    COHERENT.lock().push((virt, phys, pages));
    // SAFETY: the driver passes a pointer to its dma_addr_t.
    unsafe { handle.write(phys) };
    virt as *mut u8
}

pub extern "C" fn dma_free_coherent(_pdev: *mut u8, _size: usize, cpu: *mut u8, _handle: u64) {
    let found = {
        let mut c = COHERENT.lock();
        c.iter()
            .position(|&(v, _, _)| v == cpu as u64)
            .map(|i| c.remove(i))
    };
    match found {
        Some((virt, _, 0)) => {
            super::mem::free(virt as *const u8);
        }
        Some((_, phys, pages)) => {
            for p in 0..pages {
                // SAFETY: the run came from alloc_contiguous and is no longer mapped for DMA.
                unsafe { frames::free_frame(phys + p * PAGE_SIZE) };
            }
        }
        None => crate::warn!("dma_free_coherent({cpu:p}): not a coherent buffer"),
    }
}

/// The bus address of [ptr, ptr+size), if it is physically contiguous.
pub fn map(ptr: u64, size: u64) -> Option<u64> {
    let start = virt_to_phys(ptr)?;
    let mut page = ptr & !(PAGE_SIZE - 1);
    while page < ptr + size {
        let p = virt_to_phys(page)?;
        if p != (start & !(PAGE_SIZE - 1)) + (page - (ptr & !(PAGE_SIZE - 1))) {
            return None;
        }
        page += PAGE_SIZE;
    }
    Some(start)
}

pub extern "C" fn dma_map_single(_pdev: *mut u8, ptr: *mut u8, size: usize, _dir: i32) -> u64 {
    map(ptr as u64, size as u64).unwrap_or(DMA_ERROR)
}

pub extern "C" fn dma_unmap_single(_pdev: *mut u8, _addr: u64, _size: usize, _dir: i32) {}

pub extern "C" fn dma_mapping_error(_pdev: *mut u8, addr: u64) -> i32 {
    i32::from(addr == DMA_ERROR)
}
