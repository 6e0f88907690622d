//! Faults: catching them, and reporting the ones nobody catches.
//!
//! [`catch`] runs a closure under a *catch frame* (setjmp-like: the callee-saved
//! registers, stack pointer, return address and RFLAGS of the call). When an
//! exception — or the watchdog — hits while a catch frame is armed, the handler
//! records the [`Fault`] and rewrites the interrupted context's trap frame so that
//! `iretq` resumes as if the catch call had returned "faulted". This is how a
//! protection domain's fault unwinds to the wrapper that entered it; the kernel
//! tests use it to provoke faults on purpose.
//!
//! An exception with no catch frame armed is a kernel bug: it is reported as
//! `EXCEPTION vector=.. error=.. rip=.. cr2=.. symbol=..` and the kernel panics.

use crate::arch::idt::{TrapFrame, exception_name};
use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Pseudo-vector recorded when the watchdog interrupts a runaway context.
pub const WATCHDOG_VECTOR: u64 = 256;

/// What went wrong inside a [`catch`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fault {
    /// The exception vector, or [`WATCHDOG_VECTOR`].
    pub vector: u64,
    /// The CPU's error code.
    pub error: u64,
    /// Where it happened.
    pub rip: u64,
    /// The faulting linear address (page faults).
    pub cr2: u64,
    /// The stack pointer at the time.
    pub rsp: u64,
    /// The frame pointer at the time (code is built with frame pointers).
    pub rbp: u64,
}

impl Fault {
    /// A human name for the cause.
    pub fn cause(&self) -> &'static str {
        if self.vector == WATCHDOG_VECTOR {
            "watchdog: runaway loop"
        } else {
            exception_name(self.vector)
        }
    }
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (vector={} error={:#x} rip={:#x} cr2={:#x})",
            self.cause(),
            self.vector,
            self.error,
            self.rip,
            self.cr2
        )
    }
}

/// The saved context of one armed [`catch`]. Field order is fixed: the
/// assembly below writes it.
#[repr(C)]
struct CatchFrame {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rsp: u64,
    rip: u64,
    rflags: u64,
    prev: *mut CatchFrame,
    fault: Fault,
    /// Interrupt handlers running and kernel locks held when it was armed.
    irq_depth: u32,
    locks: u32,
}

static CURRENT: AtomicPtr<CatchFrame> = AtomicPtr::new(core::ptr::null_mut());

// catch_call(frame, f, arg) -> 0 when f(arg) returned, 1 (via the exception
// handler's redirect) when it faulted. It records the state the redirect
// restores: callee-saved registers, RSP and RIP as after a normal return, RFLAGS.
global_asm!(
    r#"
    .pushsection .text.catch_call, "ax"
    .globl nooks_catch_call
nooks_catch_call:
    mov [rdi + 0], rbx
    mov [rdi + 8], rbp
    mov [rdi + 16], r12
    mov [rdi + 24], r13
    mov [rdi + 32], r14
    mov [rdi + 40], r15
    lea rax, [rsp + 8]
    mov [rdi + 48], rax
    mov rax, [rsp]
    mov [rdi + 56], rax
    pushfq
    pop rax
    mov [rdi + 64], rax
    push rbx
    mov rdi, rdx
    call rsi
    pop rbx
    xor eax, eax
    ret
    .popsection
    "#
);

unsafe extern "C" {
    fn nooks_catch_call(frame: *mut CatchFrame, f: extern "C" fn(*mut u8), arg: *mut u8) -> u64;
}

/// Runs `f`; returns `Err(fault)` if an exception or the watchdog interrupts it.
///
/// After a fault, whatever `f` was doing is abandoned mid-way: values it owned
/// are leaked, not dropped (which is what containment needs: nothing of the
/// failed computation runs again). `f` must not hold kernel locks across code
/// that may fault.
pub fn catch<R, F: FnOnce() -> R>(f: F) -> Result<R, Fault> {
    struct Slot<F, R> {
        f: Option<F>,
        result: Option<R>,
    }
    extern "C" fn trampoline<F: FnOnce() -> R, R>(arg: *mut u8) {
        // SAFETY: `arg` is the `Slot` below, alive for the whole call.
        let slot = unsafe { &mut *(arg as *mut Slot<F, R>) };
        if let Some(f) = slot.f.take() {
            slot.result = Some(f());
        }
    }
    let mut slot = Slot {
        f: Some(f),
        result: None,
    };
    let mut frame = CatchFrame {
        rbx: 0,
        rbp: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
        rsp: 0,
        rip: 0,
        rflags: 0,
        prev: CURRENT.load(Ordering::SeqCst),
        fault: Fault::default(),
        irq_depth: crate::irq::depth(),
        locks: crate::sync::held(),
    };
    CURRENT.store(&mut frame, Ordering::SeqCst);
    // SAFETY: `frame` and `slot` outlive the call; the handler only redirects to
    // the state `nooks_catch_call` recorded in `frame`, which is a normal return.
    let faulted = unsafe {
        nooks_catch_call(
            &mut frame,
            trampoline::<F, R>,
            (&mut slot as *mut Slot<F, R>).cast(),
        )
    };
    CURRENT.store(frame.prev, Ordering::SeqCst);
    if faulted == 0 {
        // The trampoline always fills the result when f returns normally.
        slot.result.ok_or(frame.fault)
    } else {
        // SAFETY (of reading `frame` after a redirect): the handler wrote it with
        // plain stores before `iretq`; the compiler treats the opaque call as
        // having written it.
        let fault = unsafe { core::ptr::read_volatile(&frame.fault) };
        Err(fault)
    }
}

/// Whether a catch frame is armed.
pub fn armed() -> bool {
    !CURRENT.load(Ordering::SeqCst).is_null()
}

/// How many catch frames are armed (nesting depth).
pub fn depth() -> usize {
    let mut n = 0;
    let mut p = CURRENT.load(Ordering::SeqCst);
    while !p.is_null() {
        n += 1;
        // SAFETY: armed frames live on the stacks of catches that have not returned.
        p = unsafe { (*p).prev };
    }
    n
}

/// Redirects `tf` to the innermost catch frame with `fault` recorded.
/// Returns false when no frame is armed.
fn redirect(tf: &mut TrapFrame, fault: Fault) -> bool {
    let frame = CURRENT.load(Ordering::SeqCst);
    if frame.is_null() {
        return false;
    }
    // SAFETY: an armed frame lives on the stack of a `catch` that has not returned.
    let frame = unsafe { &mut *frame };
    frame.fault = fault;
    CURRENT.store(frame.prev, Ordering::SeqCst);
    tf.rbx = frame.rbx;
    tf.rbp = frame.rbp;
    tf.r12 = frame.r12;
    tf.r13 = frame.r13;
    tf.r14 = frame.r14;
    tf.r15 = frame.r15;
    tf.rsp = frame.rsp;
    tf.rip = frame.rip;
    tf.rflags = frame.rflags;
    tf.rax = 1;
    // Catch frames are armed on the kernel's tables: resume there, whatever
    // domain's tables the fault hit in.
    let kernel_cr3 = crate::arch::KERNEL_CR3.load(Ordering::SeqCst);
    // The kernel's rights too (an interrupted `pks` domain's are not).
    tf.pkrs = 0;
    if kernel_cr3 != 0 {
        tf.cr3 = kernel_cr3;
    }
    tf.cs = u64::from(crate::arch::gdt::KERNEL_CS);
    tf.ss = u64::from(crate::arch::gdt::KERNEL_DS);
    true
}

/// What became of a watchdog fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The interrupted context was redirected to its catch frame.
    Delivered,
    /// The interrupted context is not the one the innermost catch frame
    /// armed: an interrupt handler runs above it, or kernel code holds a lock
    /// it took since. Unwinding now would abandon that handler or lock.
    Deferred,
    /// No catch frame is armed.
    NothingArmed,
}

/// Delivers a watchdog fault to the interrupted context, if it is the one
/// that armed the innermost catch frame.
pub fn watchdog_now(tf: &mut TrapFrame) -> Delivery {
    let frame = CURRENT.load(Ordering::SeqCst);
    if frame.is_null() {
        return Delivery::NothingArmed;
    }
    // SAFETY: an armed frame lives on the stack of a `catch` that has not returned.
    let (irq_depth, locks) = unsafe { ((*frame).irq_depth, (*frame).locks) };
    if irq_depth != crate::irq::depth() || locks != crate::sync::held() {
        return Delivery::Deferred;
    }
    // The NMI tick may land in an interrupt handler's first or last
    // instructions, outside the depth count: on an interrupt stack the armed
    // frame is not on. Unwinding that context would abandon the handler. (A
    // context on no interrupt stack is the armed one, or runs on its behalf:
    // an MMU domain's code on the domain's stack.)
    let on = crate::arch::gdt::ist_slot_of;
    if on(tf.rsp).is_some_and(|slot| on(frame as u64) != Some(slot)) {
        return Delivery::Deferred;
    }
    let fault = Fault {
        vector: WATCHDOG_VECTOR,
        error: 0,
        rip: tf.rip,
        cr2: 0,
        rsp: tf.rsp,
        rbp: tf.rbp,
    };
    redirect(tf, fault);
    Delivery::Delivered
}

/// Handles CPU exceptions (vectors 0..31).
pub fn exception(tf: &mut TrapFrame) {
    if tf.vector == 2 && crate::watchdog::nmi_tick() {
        crate::watchdog::check(tf);
        return;
    }
    let fault = Fault {
        vector: tf.vector,
        error: tf.error,
        rip: tf.rip,
        cr2: if tf.vector == 14 {
            crate::arch::cr2()
        } else {
            0
        },
        rsp: tf.rsp,
        rbp: tf.rbp,
    };
    let recoverable = !matches!(tf.vector, 2 | 8 | 18);
    if recoverable && redirect(tf, fault) {
        return;
    }
    crate::serial::emergency_write(format_args!(
        "EXCEPTION vector={} ({}) error={:#x} rip={:#x} cr2={:#x} rsp={:#x} symbol={}\n",
        fault.vector,
        exception_name(fault.vector),
        fault.error,
        fault.rip,
        fault.cr2,
        fault.rsp,
        crate::symbols::Symbolized(fault.rip)
    ));
    panic!(
        "unhandled {} at {:#x}",
        exception_name(fault.vector),
        fault.rip
    );
}
