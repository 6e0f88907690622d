//! Hardware interrupt lines: a handler table per PIC line (lines may be shared,
//! as PCI INTx lines often are), dispatch, and end-of-interrupt.

use crate::arch::idt::TrapFrame;
use crate::arch::pic;
use crate::sync::IrqMutex;

/// An interrupt handler: called with the context it was registered with.
pub type Handler = fn(ctx: usize);

const MAX_PER_LINE: usize = 8;

#[derive(Clone, Copy)]
struct Slot {
    handler: Handler,
    ctx: usize,
}

static HANDLERS: IrqMutex<[[Option<Slot>; MAX_PER_LINE]; 16]> =
    IrqMutex::new([[None; MAX_PER_LINE]; 16]);

/// Why a handler could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// Not a PIC line (0..15).
    BadLine(u8),
    /// The line already has the maximum number of handlers.
    LineFull(u8),
    /// No such handler on that line.
    NotRegistered(u8),
}

/// Adds a handler to `line` and unmasks the line.
pub fn register(line: u8, handler: Handler, ctx: usize) -> Result<(), IrqError> {
    if line >= 16 || line == 2 {
        return Err(IrqError::BadLine(line));
    }
    let mut table = HANDLERS.lock();
    let slot = table[line as usize]
        .iter_mut()
        .find(|s| s.is_none())
        .ok_or(IrqError::LineFull(line))?;
    *slot = Some(Slot { handler, ctx });
    pic::unmask(line);
    Ok(())
}

/// Removes a handler; masks the line when it was the last one.
pub fn unregister(line: u8, handler: Handler, ctx: usize) -> Result<(), IrqError> {
    if line >= 16 {
        return Err(IrqError::BadLine(line));
    }
    let mut table = HANDLERS.lock();
    let slots = &mut table[line as usize];
    let found = slots
        .iter_mut()
        .find(|s| matches!(s, Some(x) if x.handler as usize == handler as usize && x.ctx == ctx))
        .ok_or(IrqError::NotRegistered(line))?;
    *found = None;
    if slots.iter().all(Option::is_none) {
        pic::mask(line);
    }
    Ok(())
}

/// Interrupt handlers running now (0: process context).
static DEPTH: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Whether the CPU is running an interrupt handler.
pub fn in_interrupt() -> bool {
    DEPTH.load(core::sync::atomic::Ordering::Relaxed) != 0
}

/// Called from the entry path for vectors 32..47.
pub fn dispatch(line: u8, frame: &mut TrapFrame) {
    DEPTH.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    dispatch_line(line);
    DEPTH.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
    if line == 0 {
        // After the tick, as seen by the context it interrupted.
        crate::watchdog::check(frame);
    }
}

/// How many interrupt handlers are running (0: process context).
pub fn depth() -> u32 {
    DEPTH.load(core::sync::atomic::Ordering::Relaxed)
}

fn dispatch_line(line: u8) {
    if (line == 7 || line == 15) && !pic::in_service(line) {
        if line == 15 {
            pic::eoi(2); // the master saw a real cascade interrupt
        }
        return;
    }
    if line == 0 {
        crate::timer::tick();
        pic::eoi(0);
        return;
    } else {
        // Copy the slots out so handlers run without the table lock.
        let slots = HANDLERS.lock()[line as usize];
        for slot in slots.iter().flatten() {
            (slot.handler)(slot.ctx);
        }
    }
    pic::eoi(line);
}
