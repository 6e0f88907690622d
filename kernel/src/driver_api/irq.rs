//! `request_irq`/`free_irq`: driver handlers on the PIC lines the firmware
//! routed the devices to, shared lines included.
//!
//! A domain may register a handler only on the line of a device bound to it,
//! and only one of its own entry points (checked at registration, kept in
//! kernel memory); it may free only its own registrations.

use crate::domain::{self, Entry, Resource};
use crate::sync::IrqMutex;
use alloc::vec::Vec;

type CHandler = unsafe extern "C" fn(i32, *mut u8) -> i32;

#[derive(Clone, Copy)]
struct Registration {
    line: u8,
    handler: Entry,
    dev_id: u64,
    live: bool,
}

static REGS: IrqMutex<Vec<Registration>> = IrqMutex::new(Vec::new());

/// How many driver interrupt handlers ran.
pub static CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn trampoline(index: usize) {
    let Some(r) = REGS.lock().get(index).copied() else {
        return;
    };
    if r.live {
        CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let _ = domain::call(r.handler, &[u64::from(r.line), r.dev_id]);
    }
}

pub unsafe extern "C" fn request_irq(
    irq: u32,
    handler: Option<CHandler>,
    _flags: u64,
    _name: *const u8,
    dev_id: *mut u8,
) -> i32 {
    let addr = handler.map_or(0, |h| h as usize as u64);
    let Some(handler) = domain::entry::register("request_irq", "handler", addr) else {
        return -22;
    };
    let Ok(line) = u8::try_from(irq) else {
        domain::misuse("request_irq", "irq", u64::from(irq), "no such line");
        return -22;
    };
    if domain::current().is_some() && !super::pci::line_is_mine(line) {
        domain::misuse(
            "request_irq",
            "irq",
            u64::from(irq),
            "not the line of a device bound to this domain",
        );
        return -22;
    }
    domain::charge("request_irq", Resource::Irq);
    let reg = Registration {
        line,
        handler,
        dev_id: dev_id as u64,
        live: true,
    };
    let index = {
        let mut regs = REGS.lock();
        match regs.iter().position(|r| !r.live) {
            Some(i) => {
                regs[i] = reg;
                i
            }
            None => {
                regs.push(reg);
                regs.len() - 1
            }
        }
    };
    match crate::irq::register(line, trampoline, index) {
        Ok(()) => {
            super::pci::unmask_intx(line);
            0
        }
        Err(e) => {
            crate::warn!("request_irq({irq}): {e:?}");
            REGS.lock()[index].live = false;
            domain::uncharge(domain::current(), Resource::Irq);
            -16
        }
    }
}

pub extern "C" fn free_irq(irq: u32, dev_id: *mut u8) {
    let me = domain::current();
    let found = REGS.lock().iter().position(|r| {
        r.live
            && u32::from(r.line) == irq
            && r.dev_id == dev_id as u64
            && (me.is_none() || me == Some(r.handler.domain()))
    });
    match found {
        Some(index) => {
            REGS.lock()[index].live = false;
            let _ = crate::irq::unregister(irq as u8, trampoline, index);
            domain::uncharge(me, Resource::Irq);
        }
        None => domain::misuse(
            "free_irq",
            "dev_id",
            dev_id as u64,
            "no handler of this domain registered with it on that line",
        ),
    }
}

/// Disables every handler of domain `id` (it failed).
pub fn silence(id: usize) {
    let regs: Vec<(usize, Registration)> = REGS
        .lock()
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, r)| r.live && r.handler.domain() == id)
        .collect();
    for (index, r) in regs {
        REGS.lock()[index].live = false;
        let _ = crate::irq::unregister(r.line, trampoline, index);
    }
}
