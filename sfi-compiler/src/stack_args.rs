//! How many of its caller's stack words a lifted function may read, so that
//! its native entry copies only those onto the emulated stack (most driver
//! functions take at most six arguments and read none: copying twelve words
//! at every call from the kernel is the largest part of a crossing's cost).
//!
//! The inner function receives the emulated stack pointer `sp` at the call
//! (its stack arguments are at `sp + 8k`). Every use of a value derived from
//! `sp` is examined:
//! - a load from `sp + c`, `c >= 0`, reads argument words up to `c + size`;
//! - a store to any `sp + c`, and a call passing `sp + c` with `c < 0` (the
//!   stack pointer of a call: the callee's arguments are the caller's frame)
//!   read nothing of the caller's, nor does publishing such a stack pointer
//!   in `__nooks_esp` for callbacks;
//! - additions and subtractions of constants are followed to their uses, and
//!   so are block parameters every predecessor passes `sp + c` (the same c);
//! - a comparison reads nothing;
//! - anything else — `sp` combined with another value, stored, compared,
//!   masked, passed to a block or returned, passed to a call at `c >= 0` —
//!   may read anything: every word is copied.

use crate::HashMap;
use cranelift_codegen::ir::{self, InstructionData, Opcode, Value};

/// A value's relation to the entry stack pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Derived {
    /// It does not involve the stack pointer.
    Unrelated,
    /// `sp + c`.
    Offset(i64),
    /// The stack pointer combined with something else.
    Mixed,
    /// Not known yet (a block parameter, while the fixpoint runs).
    Unknown,
}

impl Derived {
    /// What a value passed either of two ways is.
    fn join(self, other: Derived) -> Derived {
        match (self, other) {
            (Derived::Unknown, x) | (x, Derived::Unknown) => x,
            (Derived::Unrelated, Derived::Unrelated) => Derived::Unrelated,
            (Derived::Offset(x), Derived::Offset(y)) if x == y => Derived::Offset(x),
            _ => Derived::Mixed,
        }
    }
}

/// How many stack argument words (at most `all`) `func` may read.
pub fn words_read(func: &ir::Function, all: usize) -> usize {
    let Some(entry) = func.layout.entry_block() else {
        return all;
    };
    let Some(&sp) = func.dfg.block_params(entry).get(crate::lift::INNER_SP) else {
        return all;
    };
    let params = block_params(func, sp);
    let mut memo = HashMap::default();
    let mut words = 0usize;
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            let data = &func.dfg.insts[inst];
            let opcode = data.opcode();
            if matches!(opcode, Opcode::Iadd | Opcode::Isub) {
                // Followed at the uses of its result, unless it subtracts the
                // stack pointer itself.
                if opcode == Opcode::Isub {
                    let args = func.dfg.inst_args(inst);
                    if derived(func, args[1], sp, &params, &mut memo) != Derived::Unrelated {
                        debug_print(func, inst);
                        return all;
                    }
                }
                continue;
            }
            let args: Vec<Value> = func.dfg.inst_values(inst).collect();
            for (k, &v) in args.iter().enumerate() {
                let c = match derived(func, v, sp, &params, &mut memo) {
                    Derived::Unrelated => continue,
                    Derived::Mixed | Derived::Unknown => return all,
                    Derived::Offset(c) => c,
                };
                match (data, k) {
                    (InstructionData::Load { offset, .. }, 0) => {
                        let at = c.saturating_add(i64::from(i32::from(*offset)));
                        if at >= 0 {
                            let size =
                                i64::from(func.dfg.value_type(func.dfg.first_result(inst)).bytes());
                            let end = at.saturating_add(size);
                            words = words.max(usize::try_from((end + 7) / 8).unwrap_or(all));
                        }
                    }
                    // The address of a store (not the value stored).
                    (InstructionData::Store { .. }, 1) => {}
                    // The rewriter publishing the stack pointer of a call to
                    // native code (`__nooks_esp`, a `notrap` store): callbacks
                    // start their frames below it.
                    (InstructionData::Store { flags, .. }, 0)
                        if c < 0 && func.dfg.mem_flags[*flags].notrap() => {}
                    (InstructionData::Call { .. }, _) if c < 0 => {}
                    (InstructionData::IntCompare { .. }, _) => {}
                    // Passed to a block whose parameter is followed.
                    (_, _) if is_branch_arg_to_followed(func, inst, v, &params) => {}
                    _ => {
                        debug_print(func, inst);
                        return all;
                    }
                }
            }
        }
    }
    words.min(all)
}

/// Every block parameter's relation to `sp`: a fixpoint over the values
/// each predecessor passes (a parameter only ever passed `sp + c` is
/// `sp + c`; one passed `sp`-derived values and others is mixed).
fn block_params(func: &ir::Function, sp: Value) -> HashMap<Value, Derived> {
    // Incoming values of every parameter.
    let mut incoming: HashMap<Value, Vec<Value>> = HashMap::default();
    for block in func.layout.blocks() {
        let Some(inst) = func.layout.last_inst(block) else {
            continue;
        };
        for call in func.dfg.insts[inst]
            .branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables)
        {
            let pool = &func.dfg.value_lists;
            let dest = call.block(pool);
            for (param, arg) in func.dfg.block_params(dest).iter().zip(call.args(pool)) {
                let v = match arg {
                    ir::BlockArg::Value(v) => Some(v),
                    _ => None,
                };
                // A non-value argument (an exception payload) is unrelated.
                if let Some(v) = v {
                    incoming.entry(*param).or_default().push(v);
                }
            }
        }
    }
    // From "unknown", each parameter moves up at most three times
    // (unrelated or offset, then mixed).
    let mut params: HashMap<Value, Derived> =
        incoming.keys().map(|&p| (p, Derived::Unknown)).collect();
    let mut stable = false;
    for _ in 0..=3 * incoming.len() + 1 {
        let mut changed = false;
        let mut memo = HashMap::default();
        for (&param, args) in &incoming {
            let joined = args.iter().fold(Derived::Unknown, |j, &a| {
                j.join(derived(func, a, sp, &params, &mut memo))
            });
            let old = params[&param];
            let new = old.join(joined);
            if new != old {
                params.insert(param, new);
                changed = true;
            }
        }
        if !changed {
            stable = true;
            break;
        }
    }
    for d in params.values_mut() {
        if !stable {
            // Never happens (the lattice is finite); if it did, trust nothing.
            *d = Derived::Mixed;
        } else if *d == Derived::Unknown {
            // Only ever passed itself around a cycle: not the stack pointer.
            *d = Derived::Unrelated;
        }
    }
    params
}

/// Whether `inst` passes `v` only to block parameters that are followed (an
/// `sp + c` parameter: its own uses are examined like any value's).
fn is_branch_arg_to_followed(
    func: &ir::Function,
    inst: ir::Inst,
    v: Value,
    params: &HashMap<Value, Derived>,
) -> bool {
    let pool = &func.dfg.value_lists;
    let dests =
        func.dfg.insts[inst].branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables);
    if dests.is_empty() || func.dfg.inst_args(inst).contains(&v) {
        return false;
    }
    dests.iter().all(|call| {
        let dest = call.block(pool);
        func.dfg
            .block_params(dest)
            .iter()
            .zip(call.args(pool))
            .filter(|(_, a)| *a == ir::BlockArg::Value(v))
            .all(|(p, _)| matches!(params.get(p), Some(Derived::Offset(_))))
    })
}

/// With `NOOKS_DEBUG_STACK` set, says which instruction made a function
/// copy every stack word.
fn debug_print(func: &ir::Function, inst: ir::Inst) {
    if std::env::var_os("NOOKS_DEBUG_STACK").is_some() {
        eprintln!(
            "stack_args: every word, for {}",
            func.dfg.display_inst(inst)
        );
    }
}

/// `v`'s relation to `sp`, through additions and subtractions (and block
/// parameters, as `params` says).
fn derived(
    func: &ir::Function,
    v: Value,
    sp: Value,
    params: &HashMap<Value, Derived>,
    memo: &mut HashMap<Value, Derived>,
) -> Derived {
    if v == sp {
        return Derived::Offset(0);
    }
    if let Some(&d) = memo.get(&v) {
        return d;
    }
    let d = match func.dfg.value_def(v) {
        ir::ValueDef::Param(..) => params.get(&v).copied().unwrap_or(Derived::Unrelated),
        ir::ValueDef::Result(inst, 0) => match func.dfg.insts[inst] {
            InstructionData::Binary {
                opcode: opcode @ (Opcode::Iadd | Opcode::Isub),
                args,
            } => {
                let (a, b) = (
                    derived(func, args[0], sp, params, memo),
                    derived(func, args[1], sp, params, memo),
                );
                let constant = |x: Value| crate::loops::constant(func, x);
                match (a, b, opcode) {
                    (Derived::Unknown, _, _) | (_, Derived::Unknown, _) => Derived::Unknown,
                    (Derived::Unrelated, Derived::Unrelated, _) => Derived::Unrelated,
                    (Derived::Offset(c), Derived::Unrelated, Opcode::Iadd) => constant(args[1])
                        .map_or(Derived::Mixed, |k| Derived::Offset(c.wrapping_add(k))),
                    (Derived::Unrelated, Derived::Offset(c), Opcode::Iadd) => constant(args[0])
                        .map_or(Derived::Mixed, |k| Derived::Offset(c.wrapping_add(k))),
                    (Derived::Offset(c), Derived::Unrelated, Opcode::Isub) => constant(args[1])
                        .map_or(Derived::Mixed, |k| Derived::Offset(c.wrapping_sub(k))),
                    _ => Derived::Mixed,
                }
            }
            _ => Derived::Unrelated,
        },
        _ => Derived::Unrelated,
    };
    memo.insert(v, d);
    d
}
