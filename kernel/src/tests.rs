//! The kernel's own tests: faults are caught and reported, the timer ticks,
//! W^X holds, the hardware QEMU emulates is found, boot modules arrive intact,
//! and memory management does what it says.

use crate::fault::{self, WATCHDOG_VECTOR};
use crate::memory::{self, frames, paging};
use crate::{cmdline, kassert, ktest, pci, timer};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Page-fault error-code bits.
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_FETCH: u64 = 16;

ktest! {
    fn page_fault_caught() {
        let addr = 0xdead_b000u64;
        // SAFETY: deliberately unmapped; the fault is caught.
        let r = fault::catch(|| unsafe { core::ptr::read_volatile(addr as *const u64) });
        let Err(f) = r else { return Err("a read of an unmapped address did not fault".into()) };
        crate::info!("caught: {} at {}", f, crate::symbols::Symbolized(f.rip));
        kassert!(f.vector == 14, "vector {} instead of 14", f.vector);
        kassert!(f.cr2 == addr, "cr2 {:#x} instead of {:#x}", f.cr2, addr);
        kassert!(f.error & (PF_PRESENT | PF_WRITE) == 0, "error code {:#x}: not a read of a non-present page", f.error);
        Ok(())
    }
}

ktest! {
    fn nested_catch_unwinds_to_the_innermost() {
        let depth = fault::depth();
        let outer = fault::catch(|| {
            // SAFETY: deliberately unmapped; the fault is caught.
            let inner = fault::catch(|| unsafe { core::ptr::read_volatile(0x10 as *const u8) });
            inner.err().map(|f| f.cr2)
        });
        kassert!(outer == Ok(Some(0x10)), "outer saw {:?}", outer);
        kassert!(fault::depth() == depth, "catch depth {} after, {} before", fault::depth(), depth);
        Ok(())
    }
}

ktest! {
    fn timer_ticks() {
        kassert!(crate::arch::interrupts_enabled(), "interrupts are off");
        let t0 = timer::ticks();
        let deadline = crate::arch::rdtsc() + 20 * timer::tsc_hz().max(1_000_000);
        while timer::ticks() < t0 + 20 {
            kassert!(crate::arch::rdtsc() < deadline, "only {} ticks in 20 s", timer::ticks() - t0);
            core::hint::spin_loop();
        }
        kassert!(timer::tsc_hz() > 0, "the TSC was not calibrated");
        Ok(())
    }
}

ktest! {
    fn kernel_text_is_write_protected() {
        let text = crate::ktest::run as *const () as usize as *mut u8;
        // SAFETY: reading our own code is fine.
        let before = unsafe { core::ptr::read_volatile(text) };
        // SAFETY: deliberately writes to .text; W^X must turn it into a caught fault.
        let r = fault::catch(|| unsafe { core::ptr::write_volatile(text, 0xcc) });
        let Err(f) = r else { return Err("a write to kernel text succeeded".into()) };
        kassert!(f.vector == 14 && f.cr2 == text as u64, "{}", f);
        kassert!(f.error & (PF_PRESENT | PF_WRITE) == PF_PRESENT | PF_WRITE, "error code {:#x}", f.error);
        // SAFETY: reading our own code.
        kassert!(unsafe { core::ptr::read_volatile(text) } == before, "text changed");

        static RODATA: [u8; 4] = [1, 2, 3, 4];
        let ro = RODATA.as_ptr() as *mut u8;
        // SAFETY: deliberately writes to .rodata; must fault.
        let r = fault::catch(|| unsafe { core::ptr::write_volatile(ro, 9) });
        kassert!(matches!(r, Err(f) if f.vector == 14 && f.cr2 == ro as u64), "rodata write: {:?}", r);
        Ok(())
    }
}

ktest! {
    fn data_and_heap_are_not_executable() {
        let code: Box<[u8; 16]> = Box::new([0xc3; 16]); // ret
        let addr = code.as_ptr() as u64;
        // SAFETY: deliberately jumps into the heap; NX must turn it into a caught fault.
        let f: extern "C" fn() = unsafe { core::mem::transmute(addr) };
        let r = fault::catch(|| f());
        let Err(fault) = r else { return Err("executing from the heap succeeded".into()) };
        kassert!(fault.vector == 14 && fault.cr2 == addr, "{}", fault);
        kassert!(fault.error & PF_FETCH != 0, "error code {:#x} lacks the fetch bit", fault.error);
        Ok(())
    }
}

ktest! {
    fn control_registers_enforce_protection() {
        kassert!(crate::arch::cr0() & (1 << 16) != 0, "CR0.WP is off");
        // SAFETY: EFER exists on every x86-64 CPU.
        let efer = unsafe { crate::arch::rdmsr(0xc000_0080) };
        kassert!(efer & (1 << 11) != 0, "EFER.NXE is off");
        Ok(())
    }
}

ktest! {
    fn two_e1000_found() {
        let nics = pci::find(0x8086, 0x100e);
        kassert!(nics.len() == 2, "found {} 8086:100e functions", nics.len());
        for n in &nics {
            match n.bars[0] {
                pci::Bar::Memory { base, size, .. } => {
                    kassert!(base != 0, "{:02x}:{:02x}.{} BAR0 unassigned", n.bus, n.dev, n.func);
                    kassert!(size == 0x20000, "BAR0 size {:#x}, expected 128 KiB", size);
                    crate::info!("e1000 at {:02x}:{:02x}.{} BAR0 {:#x} irq {}", n.bus, n.dev, n.func, base, n.irq_line);
                }
                other => return Err(alloc::format!("BAR0 is {:?}", other)),
            }
        }
        Ok(())
    }
}

ktest! {
    fn e1000_registers_readable_through_ioremap() {
        let nic = pci::find(0x8086, 0x100e).into_iter().next().ok_or("no e1000")?;
        let pci::Bar::Memory { base, size, .. } = nic.bars[0] else { return Err("BAR0 not memory".into()) };
        nic.enable(0x2);
        let regs = paging::ioremap(base, size).map_err(|e| alloc::format!("ioremap: {e}"))?;
        // SAFETY: BAR0 of an e1000 is 128 KiB of registers; STATUS is at 0x8.
        let status = unsafe { core::ptr::read_volatile((regs + 0x8) as *const u32) };
        kassert!(status & 0x2 != 0, "STATUS {:#x}: link not up", status);
        let (_, flags) = paging::kernel_translate(regs).ok_or("ioremap left no mapping")?;
        kassert!(flags & paging::flags::NO_CACHE != 0, "MMIO mapped cacheable");
        Ok(())
    }
}

ktest! {
    fn boot_module_intact() {
        let line = crate::cmdline();
        let want = cmdline::get(line, "initrd_fnv").ok_or("no initrd_fnv= on the command line")?;
        let want = u64::from_str_radix(want, 16).map_err(|_| "initrd_fnv is not hex")?;
        let want_len = cmdline::get_u64(line, "initrd_len").ok_or("no initrd_len=")?;
        let bytes = crate::boot_info().module(0).ok_or("no boot module")?;
        kassert!(bytes.len() as u64 == want_len, "module is {} bytes, host sent {}", bytes.len(), want_len);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        kassert!(h == want, "FNV-1a {:016x}, host computed {:016x}", h, want);
        crate::info!("boot module: {} bytes, FNV-1a {:016x} matches the host's", bytes.len(), h);
        Ok(())
    }
}

ktest! {
    fn frames_are_distinct_and_zeroed() {
        let mut got = Vec::new();
        for _ in 0..64 {
            let f = frames::alloc_frame().ok_or("out of frames")?;
            kassert!(f % 4096 == 0, "frame {:#x} misaligned", f);
            kassert!(!got.contains(&f), "frame {:#x} handed out twice", f);
            // SAFETY: the frame is ours; reached through the direct map.
            let page = unsafe { core::slice::from_raw_parts_mut(memory::phys_to_virt(f) as *mut u8, 4096) };
            kassert!(page.iter().all(|&b| b == 0), "frame {:#x} not zeroed", f);
            page.fill(0xa5);
            got.push(f);
        }
        let (k0, k1) = memory::kernel_image_phys();
        kassert!(got.iter().all(|&f| f >= k1 || f + 4096 <= k0), "a frame overlaps the kernel image");
        for f in got {
            // SAFETY: allocated above, no longer used.
            unsafe { frames::free_frame(f) };
        }
        let again = frames::alloc_frame().ok_or("out of frames")?;
        // SAFETY: the frame is ours.
        let first = unsafe { core::ptr::read_volatile(memory::phys_to_virt(again) as *const u64) };
        kassert!(first == 0, "a recycled frame was not zeroed");
        // SAFETY: allocated just above.
        unsafe { frames::free_frame(again) };
        Ok(())
    }
}

ktest! {
    fn map_translate_unmap() {
        let virt = memory::DOMAIN_AREA.1 - 0x10_0000;
        let phys = frames::alloc_frame().ok_or("out of frames")?;
        paging::kernel_map(virt, phys, paging::flags::DATA).map_err(|e| alloc::format!("{e}"))?;
        kassert!(paging::kernel_map(virt, phys, paging::flags::DATA).is_err(), "double map accepted");
        // SAFETY: just mapped RW.
        unsafe { core::ptr::write_volatile(virt as *mut u64, 0x1234_5678) };
        kassert!(memory::virt_to_phys(virt + 8) == Some(phys + 8), "translate disagrees");
        // SAFETY: the same frame through the direct map.
        let seen = unsafe { core::ptr::read_volatile(memory::phys_to_virt(phys) as *const u64) };
        kassert!(seen == 0x1234_5678, "direct map sees {:#x}", seen);
        paging::kernel_protect(virt, paging::flags::RODATA).map_err(|e| alloc::format!("{e}"))?;
        // SAFETY: deliberately writes a read-only page; must fault.
        let r = fault::catch(|| unsafe { core::ptr::write_volatile(virt as *mut u64, 0) });
        kassert!(matches!(r, Err(f) if f.cr2 == virt), "write to a read-only page: {:?}", r);
        kassert!(paging::kernel_unmap(virt) == Ok(phys), "unmap returned the wrong frame");
        // SAFETY: deliberately reads an unmapped page; must fault.
        let r = fault::catch(|| unsafe { core::ptr::read_volatile(virt as *const u64) });
        kassert!(matches!(r, Err(f) if f.cr2 == virt), "read after unmap: {:?}", r);
        // SAFETY: unmapped above, no other user.
        unsafe { frames::free_frame(phys) };
        Ok(())
    }
}

ktest! {
    fn heap_allocates_and_frees() {
        let (used0, _) = memory::heap::stats();
        {
            let mut v: Vec<u64> = Vec::new();
            for i in 0..100_000u64 {
                v.push(i * 3);
            }
            kassert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3), "heap contents wrong");
            let big = alloc::vec![7u8; 4 << 20];
            kassert!(big.iter().all(|&b| b == 7), "4 MiB block wrong");
        }
        let (used1, _) = memory::heap::stats();
        kassert!(used1 <= used0 + 64, "heap leaked {} bytes", used1 - used0);
        Ok(())
    }
}

ktest! {
    fn watchdog_stops_a_runaway_loop() {
        let saved = crate::watchdog::arm(30);
        let r = fault::catch(|| loop {
            core::hint::spin_loop();
        });
        crate::watchdog::restore(saved);
        let Err(f): Result<(), _> = r else { return Err("the loop returned".into()) };
        kassert!(f.vector == WATCHDOG_VECTOR, "vector {}", f.vector);
        Ok(())
    }
}

/// Spins for `ms` milliseconds of TSC time.
fn spin_ms(ms: u64) {
    let until = crate::arch::rdtsc() + ms * (timer::tsc_hz() / 1000);
    while crate::arch::rdtsc() < until {
        core::hint::spin_loop();
    }
}

ktest! {
    fn a_nested_entry_gets_its_own_watchdog_budget() {
        // An interrupt handler's driver call inside a driver call: the inner
        // loop is caught, and the outer one is still watched afterwards.
        let outer = crate::watchdog::arm(40);
        let r = fault::catch(|| {
            let inner = crate::watchdog::arm(20);
            let r = fault::catch(|| loop {
                core::hint::spin_loop();
            });
            crate::watchdog::restore(inner);
            let inner_caught = matches!(r, Err(f) if f.vector == WATCHDOG_VECTOR);
            if inner_caught {
                loop {
                    core::hint::spin_loop();
                }
            }
        });
        crate::watchdog::restore(outer);
        match r {
            Err(f) => kassert!(f.vector == WATCHDOG_VECTOR, "outer vector {}", f.vector),
            Ok(()) => return Err("the inner loop was not caught".into()),
        }
        Ok(())
    }
}

ktest! {
    fn the_watchdog_never_unwinds_kernel_code_holding_a_lock() {
        // A lock taken inside the watched call and held past the deadline
        // (interrupts off: only the NMI tick sees it) is released before the
        // watchdog unwinds the loop that follows.
        static LOCK: crate::sync::IrqMutex<u32> = crate::sync::IrqMutex::new(0);
        let saved = crate::watchdog::arm(10);
        let r = fault::catch(|| {
            {
                let mut held = LOCK.lock();
                spin_ms(60);
                *held += 1;
            }
            loop {
                core::hint::spin_loop();
            }
        });
        crate::watchdog::restore(saved);
        let Err(f): Result<(), _> = r else { return Err("the loop returned".into()) };
        kassert!(f.vector == WATCHDOG_VECTOR, "vector {}", f.vector);
        kassert!(*LOCK.lock() == 1, "the lock holder was unwound");
        kassert!(crate::sync::held() == 0, "{} kernel locks still held", crate::sync::held());
        Ok(())
    }
}

ktest! {
    fn exceptions_are_symbolised() {
        let here = crate::ktest::run as *const () as usize as u64;
        let sym = alloc::format!("{}", crate::symbols::Symbolized(here + 1));
        kassert!(sym.contains("ktest::run+0x1"), "symbolised as {}", sym);
        Ok(())
    }
}

ktest! {
    fn the_dma_remapping_unit_is_found_and_on() {
        let units = crate::acpi::remapping_units(crate::boot_info().rsdp)
            .map_err(|e| alloc::format!("{e}"))?;
        crate::info!("DMA remapping units: {:?}", units);
        kassert!(units.iter().any(|u| u.segment == 0), "no unit for segment 0: {:?}", units);
        for f in pci::functions().iter().filter(|f| f.vendor == 0x8086 && f.device == 0x100e) {
            kassert!(units.iter().any(|u| u.serves(f.bus, f.dev, f.func)),
                "the e1000 at {:02x}:{:02x}.{} is outside every unit's scope", f.bus, f.dev, f.func);
        }
        kassert!(crate::iommu::mode() == crate::iommu::Mode::On, "iommu mode {:?} by default", crate::iommu::mode());
        Ok(())
    }
}

ktest! {
    fn io_page_tables_map_translate_unmap() {
        use crate::iommu::vtd::{PageTable, IOVA_LIMIT};
        let mut t = PageTable::new(false).map_err(|e| alloc::format!("{e}"))?;
        let frame = frames::alloc_frame().ok_or("no frame")?;
        let iova = 0x4321_5000;
        kassert!(t.translate(iova).is_none(), "an empty table translates {:#x}", iova);
        t.map(iova, frame).map_err(|e| alloc::format!("{e}"))?;
        kassert!(t.translate(iova + 0x18) == Some(frame + 0x18), "{:#x} -> {:?}", iova, t.translate(iova + 0x18));
        kassert!(t.translate(iova + 0x1000).is_none(), "the next page is mapped too");
        kassert!(t.map(IOVA_LIMIT, frame).is_err(), "a bus address past 39 bits was mapped");
        t.unmap(iova);
        kassert!(t.translate(iova).is_none(), "still mapped after unmap");
        t.free();
        // SAFETY: our frame, never handed to a device.
        unsafe { frames::free_frame(frame) };
        Ok(())
    }
}
