//! The kernel heap: power-of-two size classes up to 4 KiB on free lists,
//! over a linked-list allocator for everything else, on a physically
//! contiguous run reached through the direct map, behind a lock that masks
//! interrupts (so an interrupt handler may allocate).
//!
//! The classes are what make the kernel's own bookkeeping cheap: its maps
//! (live blocks, skbs, devices) allocate and free small nodes all the time,
//! and a linked-list allocator walks its holes to place each one, more of
//! them the longer the kernel runs. A freed small block goes on its class's
//! list (threaded through the block: kernel memory, which no domain writes)
//! and the next request of that class takes it back.

use super::{PAGE_SIZE, SizeClasses, frames, phys_to_virt};
use crate::sync::IrqMutex;
use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::Heap;

/// Heap size.
pub const HEAP_SIZE: u64 = 32 << 20;

/// The size classes: 16 B to 4 KiB.
const CLASSES: SizeClasses = SizeClasses { min: 4, max: 12 };

struct State {
    heap: Heap,
    /// The first free block of each class (0: none); each holds the next.
    free: [usize; CLASSES.count()],
    /// Bytes sitting on the class lists.
    cached: usize,
}

struct KernelHeap(IrqMutex<State>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqMutex::new(State {
    heap: Heap::empty(),
    free: [0; CLASSES.count()],
    cached: 0,
}));

/// The size class of `layout`, if it has one.
fn class(layout: Layout) -> Option<usize> {
    CLASSES.of(layout.size() as u64, layout.align() as u64)
}

fn class_layout(c: usize) -> Layout {
    let size = CLASSES.bytes(c) as usize;
    // A power of two no larger than 4 KiB: always a valid layout.
    Layout::from_size_align(size, size).unwrap_or(Layout::new::<u8>())
}

// SAFETY: every block handed out is either a class block (carved from the
// linked-list heap with its class's size and alignment, so it satisfies any
// layout of that class) or a linked-list block of the exact layout; a block
// is on at most one list, under the lock.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut s = self.0.lock();
        let Some(c) = class(layout) else {
            return s
                .heap
                .allocate_first_fit(layout)
                .map_or(core::ptr::null_mut(), |p| p.as_ptr());
        };
        let head = s.free[c];
        if head != 0 {
            // SAFETY: a block on class list `c`, whose first word is the next.
            s.free[c] = unsafe { (head as *const usize).read() };
            s.cached -= class_layout(c).size();
            return head as *mut u8;
        }
        s.heap
            .allocate_first_fit(class_layout(c))
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = core::ptr::NonNull::new(ptr) else {
            return;
        };
        let mut s = self.0.lock();
        match class(layout) {
            Some(c) => {
                // SAFETY: GlobalAlloc's contract: `ptr` is a live block of
                // this layout, hence of class `c` and at least a word long.
                unsafe { (ptr as *mut usize).write(s.free[c]) };
                s.free[c] = ptr as usize;
                s.cached += class_layout(c).size();
            }
            // SAFETY: GlobalAlloc's contract: ptr came from alloc with this layout.
            None => unsafe { s.heap.deallocate(p, layout) },
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
            .heap
            .init(phys_to_virt(phys) as *mut u8, HEAP_SIZE as usize)
    };
}

/// (used, free) bytes; blocks on the class lists count as free.
pub fn stats() -> (usize, usize) {
    let s = HEAP.0.lock();
    (s.heap.used() - s.cached, s.heap.free() + s.cached)
}
