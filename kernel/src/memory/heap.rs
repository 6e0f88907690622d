//! The kernel heap: a linked-list allocator over a physically contiguous run
//! reached through the direct map, behind a lock that masks interrupts (so an
//! interrupt handler may allocate).

use super::{PAGE_SIZE, frames, phys_to_virt};
use crate::sync::IrqMutex;
use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::Heap;

/// Heap size.
pub const HEAP_SIZE: u64 = 32 << 20;

struct KernelHeap(IrqMutex<Heap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqMutex::new(Heap::empty()));

// SAFETY: delegates to linked_list_allocator's Heap under a lock.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = core::ptr::NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: ptr came from alloc with this layout.
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }
}

/// Gives the heap its memory.
pub fn init() {
    let phys = frames::alloc_contiguous(HEAP_SIZE / PAGE_SIZE, PAGE_SIZE)
        .unwrap_or_else(|| panic!("no {} MiB of contiguous RAM for the heap", HEAP_SIZE >> 20));
    // SAFETY: the run is ours alone and mapped RW by the direct map.
    unsafe {
        HEAP.0
            .lock()
            .init(phys_to_virt(phys) as *mut u8, HEAP_SIZE as usize)
    };
}

/// (used, free) bytes.
pub fn stats() -> (usize, usize) {
    let h = HEAP.0.lock();
    (h.used(), h.free())
}
