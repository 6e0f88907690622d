//! The load-time verifier: the kernel runs a sandboxed driver object only
//! after this crate has proved, from the machine code alone, that it keeps
//! the SFI rules — so a bug in nooks-cc (its lifter, its optimiser, or
//! Cranelift) or a patched object is a load error, not a hole.
//!
//! Nothing nooks-cc says is trusted: not the `.nooks` metadata, not which
//! stores it meant to check. The verifier decodes every function of the
//! code section along its control flow and runs an abstract interpreter
//! over it (`function`): registers and real-stack slots hold linear
//! expressions over symbols (`value`), symbols may carry strided ranges,
//! and a set of *facts* records which address ranges are known writable.
//! Facts come only from
//! - a window check: `cmp (addr - lo), k` followed by a branch on unsigned
//!   below (the `-lo` term is a relocation against the window symbol, so its
//!   value is the domain's), giving `[addr, addr + SPAN - k + 1)`;
//! - a return from the slow path `__nooks_sfi_slow(addr - lo, n)`, which
//!   returns only if `[addr, addr + n)` is writable.
//!
//! The rules, checked on the fixpoint's states:
//! - every instruction is one the verifier knows; none is privileged; no
//!   `fs`/`gs` memory, no string instruction, no vector register;
//! - every store (moves, read-modify-writes, `xchg`, `xadd`, `cmpxchg`,
//!   `setcc` to memory, `push` and `call`) writes a range a fact covers, the
//!   object's writable data (bounded by ranges: `table[i & 63]`), the state
//!   fields the code may write (the interrupt flag, the fault record, the
//!   emulated stack pointer), or the function's own real-stack frame (at
//!   most `MAX_FRAME` bytes below the return address, above it never);
//! - branches stay in the function and land on instruction starts; there
//!   are no indirect jumps; a direct call goes to the start of a function or
//!   an import; an indirect call's target is the very value the call check
//!   accepted;
//! - every `ret` finds the stack pointer and the callee-saved registers as
//!   they were at entry, and, in a function the kernel may enter, either no
//!   call or state store since entry or an equality test of the lock count
//!   and interrupt flag against their values at entry since the last call;
//! - the runtime (slow path, call check) is byte for byte the reviewed one,
//!   and the call check's table is read-only and lists only functions and
//!   imports (`runtime`).
//!
//! What the verifier relies on (the kernel's side of the contract): the
//! loader places writable data inside the window, the state outside it and
//! the code read-only; every window spans `SPAN` bytes; each real stack
//! sits above a guard of more than `MAX_FRAME` bytes; the window symbol
//! gets the domain's `-lo`; imports follow the System V ABI.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
extern crate alloc;
#[cfg(feature = "trace")]
extern crate std;

pub mod function;
pub mod image;
pub mod runtime;
pub mod state;
pub mod value;

use alloc::string::{String, ToString};
use core::fmt;
use image::Image;
use nooks_loader::object::{Area, Object};
use nooks_policy::abi::{self, state as layout};
use value::Expr;

/// Why an object is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The object's structure.
    Object(&'static str),
    /// Bytes that are no instruction.
    Undecodable,
    /// An instruction the verifier does not know.
    Unsupported,
    /// A privileged instruction.
    Privileged,
    /// Memory through `fs` or `gs`.
    Segment,
    /// A relocation where none may be.
    Relocation(&'static str),
    /// A branch out of the function.
    BranchOutside(u64),
    /// A branch into the middle of an instruction.
    BranchIntoInstruction(u64),
    /// Execution runs past the function's end.
    FallsOffEnd,
    /// A jump through a register or memory.
    IndirectJump,
    /// An indirect call whose target the call check did not accept.
    UncheckedCall,
    /// A direct call to something that is not a function or an import.
    BadCallTarget,
    /// A store of this many bytes no check covers.
    UncheckedStore(u64),
    /// A store to the real stack outside the function's frame.
    StackStore,
    /// The stack pointer is lost or the frame too deep.
    StackPointer,
    /// A callee-saved register (index) differs at return.
    CalleeSaved(usize),
    /// An entry returns without comparing the lock count and interrupt flag.
    MissingInvariantCheck,
    /// The runtime differs from the reviewed one.
    Runtime(&'static str),
    /// The analysis did not converge.
    NoFixpoint,
    /// A function too large to analyse.
    TooLarge,
}

const REGS: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Object(s) => write!(f, "{s}"),
            Reason::Undecodable => write!(f, "undecodable bytes"),
            Reason::Unsupported => write!(f, "an instruction the verifier does not accept"),
            Reason::Privileged => write!(f, "a privileged instruction"),
            Reason::Segment => write!(f, "memory through fs or gs"),
            Reason::Relocation(s) => write!(f, "{s}"),
            Reason::BranchOutside(t) => write!(f, "a branch to {t:#x}, outside the function"),
            Reason::BranchIntoInstruction(t) => {
                write!(f, "a branch to {t:#x}, inside another instruction")
            }
            Reason::FallsOffEnd => write!(f, "execution runs past the function's end"),
            Reason::IndirectJump => write!(f, "an indirect jump"),
            Reason::UncheckedCall => write!(
                f,
                "an indirect call to a target the call check did not accept"
            ),
            Reason::BadCallTarget => write!(
                f,
                "a call to something that is neither a function nor an import"
            ),
            Reason::UncheckedStore(n) => {
                write!(f, "a store of {n} bytes that no window check covers")
            }
            Reason::StackStore => {
                write!(f, "a store to the real stack outside the function's frame")
            }
            Reason::StackPointer => write!(
                f,
                "the stack pointer is not its entry value minus at most the frame limit"
            ),
            Reason::CalleeSaved(r) => write!(f, "{} is not restored at return", REGS[*r]),
            Reason::MissingInvariantCheck => write!(
                f,
                "an entry returns without checking the lock count and interrupt flag"
            ),
            Reason::Runtime(s) => write!(f, "runtime: {s}"),
            Reason::NoFixpoint => write!(f, "the analysis did not converge"),
            Reason::TooLarge => write!(f, "a function too large to verify"),
        }
    }
}

/// A refused object: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The function (empty for the object as a whole).
    pub function: String,
    /// Offset of the instruction in the function.
    pub offset: u64,
    /// The instruction, disassembled (empty if none).
    pub instruction: String,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.function.is_empty() {
            return write!(f, "not verified: {}", self.reason);
        }
        write!(f, "not verified: {}+{:#x}", self.function, self.offset)?;
        if !self.instruction.is_empty() {
            write!(f, " `{}`", self.instruction)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Functions.
    pub functions: usize,
    /// Instructions (reachable ones).
    pub instructions: u64,
    /// Bytes of code.
    pub bytes: u64,
}

/// Where the runtime is, and what of the state the code may write.
pub struct Runtime {
    /// The slow path's offset in the code.
    pub slow: Option<u64>,
    /// The call check's.
    pub check_call: Option<u64>,
    /// The address of the invariants word (lock count and interrupt flag).
    pub invariants: Option<Expr>,
    /// The address of the state's `LO` (the window's low bound).
    pub lo: Option<Expr>,
    /// (section, lo, hi) ranges of the state the code may write.
    pub writable_state: alloc::vec::Vec<(usize, u64, u64)>,
}

fn whole(reason: Reason) -> Rejection {
    Rejection {
        function: String::new(),
        offset: 0,
        instruction: String::new(),
        reason,
    }
}

/// Verifies the sandboxed object `object` (see the crate doc).
pub fn verify(object: &Object<'_>) -> Result<Report, Rejection> {
    let image = Image::of(object).map_err(whole)?;
    let mut rt = Runtime {
        slow: None,
        check_call: None,
        invariants: None,
        lo: None,
        writable_state: alloc::vec::Vec::new(),
    };
    if let Some((sec, v, size)) = image.symbol(abi::STATE_SYMBOL) {
        if object.sections[sec].area != Some(Area::Runtime) || size < layout::SIZE as u64 {
            return Err(whole(Reason::Runtime(
                "the state is not in its own section",
            )));
        }
        rt.invariants =
            Some(Expr::sym(value::section(sec)).offset((v + layout::INVARIANTS as u64) as i64));
        rt.lo = Some(Expr::sym(value::section(sec)).offset((v + layout::LO as u64) as i64));
        rt.writable_state
            .push((sec, v + layout::VIF as u64, v + layout::VIF as u64 + 4));
        rt.writable_state.push((
            sec,
            v + layout::FAULT_ADDR as u64,
            v + layout::FAULT_SITE as u64 + 8,
        ));
    } else {
        return Err(whole(Reason::Runtime("no state")));
    }
    if let Some((sec, v, _)) = image.symbol(abi::ESP_SYMBOL) {
        if object.sections[sec].area != Some(Area::Runtime) {
            return Err(whole(Reason::Runtime(
                "the emulated stack pointer is not in the state's section",
            )));
        }
        rt.writable_state.push((sec, v, v + 8));
    }
    for (name, code, fields, slot) in [
        (
            abi::SLOW_PATH,
            &runtime::SLOW_PATH[..],
            &runtime::SLOW_PATH_FIELDS[..],
            0,
        ),
        (
            abi::CHECK_CALL,
            &runtime::CHECK_CALL[..],
            &runtime::CHECK_CALL_FIELDS[..],
            1,
        ),
    ] {
        let Some((sec, v, size)) = image.symbol(name) else {
            continue;
        };
        let fail = |reason| Rejection {
            function: name.to_string(),
            offset: 0,
            instruction: String::new(),
            reason,
        };
        if sec != image.text {
            return Err(fail(Reason::Runtime("not in the code section")));
        }
        runtime::check(&image, v, v + size, code, fields).map_err(fail)?;
        if slot == 0 {
            rt.slow = Some(v);
        } else {
            rt.check_call = Some(v);
        }
    }
    if rt.check_call.is_some() {
        runtime::check_targets(&image).map_err(|r| Rejection {
            function: abi::CHECK_CALL.to_string(),
            offset: 0,
            instruction: String::new(),
            reason: r,
        })?;
    }
    let mut report = Report {
        functions: 0,
        instructions: 0,
        bytes: image.code.len() as u64,
    };
    for f in &image.functions {
        if Some(f.start) == rt.slow || Some(f.start) == rt.check_call {
            report.functions += 1;
            continue;
        }
        match function::verify(&image, &rt, f.start, f.end, f.entry) {
            Ok(n) => {
                report.functions += 1;
                report.instructions += n;
            }
            Err((at, reason)) => {
                let (offset, instruction) = match at {
                    Some(a) => (a.offset - f.start, format(&a.ins)),
                    None => (0, String::new()),
                };
                return Err(Rejection {
                    function: f.name.to_string(),
                    offset,
                    instruction,
                    reason,
                });
            }
        }
    }
    Ok(report)
}

fn format(ins: &iced_x86::Instruction) -> String {
    let mut out = String::new();
    let mut f = iced_x86::FastFormatter::new();
    f.format(ins, &mut out);
    out
}
