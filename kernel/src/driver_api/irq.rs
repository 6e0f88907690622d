//! `request_irq`/`free_irq`: driver handlers on the PIC lines the firmware
//! routed the devices to, shared lines included.

use crate::sync::IrqMutex;
use alloc::vec::Vec;

type CHandler = unsafe extern "C" fn(i32, *mut u8) -> i32;

#[derive(Clone, Copy)]
struct Registration {
    line: u8,
    handler: CHandler,
    dev_id: *mut u8,
    live: bool,
}

// SAFETY: single CPU; dev_id is only handed back to the driver.
unsafe impl Send for Registration {}

static REGS: IrqMutex<Vec<Registration>> = IrqMutex::new(Vec::new());

/// How many driver interrupt handlers ran.
pub static CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn trampoline(index: usize) {
    let Some(r) = REGS.lock().get(index).copied() else {
        return;
    };
    if r.live {
        CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // The handler the driver registered for this line and dev_id.
        let entry = r.handler as usize as u64;
        let _ = crate::driver::in_irq_context(entry, || {
            crate::domain::call(entry, &[u64::from(r.line), r.dev_id as u64])
        });
    }
}

pub unsafe extern "C" fn request_irq(
    irq: u32,
    handler: Option<CHandler>,
    _flags: u64,
    _name: *const u8,
    dev_id: *mut u8,
) -> i32 {
    let (Some(handler), Ok(line)) = (handler, u8::try_from(irq)) else {
        return -22;
    };
    let index = {
        let mut regs = REGS.lock();
        regs.push(Registration {
            line,
            handler,
            dev_id,
            live: true,
        });
        regs.len() - 1
    };
    match crate::irq::register(line, trampoline, index) {
        Ok(()) => {
            super::pci::unmask_intx(line);
            0
        }
        Err(e) => {
            crate::warn!("request_irq({irq}): {e:?}");
            REGS.lock()[index].live = false;
            -16
        }
    }
}

pub extern "C" fn free_irq(irq: u32, dev_id: *mut u8) {
    let found = REGS
        .lock()
        .iter()
        .position(|r| r.live && u32::from(r.line) == irq && r.dev_id == dev_id);
    match found {
        Some(index) => {
            REGS.lock()[index].live = false;
            let _ = crate::irq::unregister(irq as u8, trampoline, index);
        }
        None => crate::warn!("free_irq({irq}, {dev_id:p}): no such handler"),
    }
}

/// Disables every handler whose code lies in `text` (a failed domain's).
pub fn silence(text: (u64, u64)) {
    let regs: Vec<(usize, Registration)> = REGS
        .lock()
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, r)| {
            let a = r.handler as usize as u64;
            r.live && a >= text.0 && a < text.1
        })
        .collect();
    for (index, r) in regs {
        REGS.lock()[index].live = false;
        let _ = crate::irq::unregister(r.line, trampoline, index);
    }
}
