//! Loops whose stores can be checked once, before the loop: the SFI pass
//! (`instrument`) asks here whether a store's address is `invariant +
//! scale * i + c` for an induction variable `i` whose every value is known.
//!
//! Only loops whose shape makes that exact are accepted, so a hoisted check
//! covers exactly the addresses the loop writes — never one it would not:
//! - the header has two predecessors: a preheader outside the loop that
//!   jumps to it unconditionally, and one latch inside;
//! - the latch is the loop's only exit, and the store's block dominates it:
//!   every iteration runs the store, and the loop runs until its condition
//!   ends it;
//! - `i` enters as `a`, steps by a constant `s`, and the latch continues
//!   while `i != b` (or `i + s != b`), with `b - a` a non-negative multiple
//!   of `s`; or while `i < b` (unsigned or signed, `s > 0`) — where `a` and
//!   `b` are constants, or (for `!=` tests) the same value defined before
//!   the loop plus constants (gcc counts `for (i = 0; i < 64; i++) p[i] =
//!   v + i` from `v` to `v + 63`), or two counters of an enclosing loop that
//!   provably differ by a constant (gcc keeps `it` and `it + 2048` in two
//!   registers and counts from one to the other).
//!
//! A store whose address does not vary in its loop at all (`dev->stats.x++`
//! in a loop over a ring) is checked before the loop when every way out of
//! the loop passes the store (`Loops::hoist_invariant`): the first iteration
//! writes that address whenever the loop runs.
//!
//! Everything else keeps its checks in the loop.

use crate::HashMap;
use cranelift_codegen::dominator_tree::DominatorTree;
use cranelift_codegen::flowgraph::ControlFlowGraph;
use cranelift_codegen::ir::condcodes::{CondCode, IntCC};
use cranelift_codegen::ir::{self, Block, BlockArg, InstructionData, Opcode, Value};
use cranelift_codegen::loop_analysis::{Loop, LoopAnalysis};

/// The largest range a hoisted check covers (the window is far larger).
pub const MAX_SPAN: i64 = 1 << 20;

/// A store address the loop's preheader can check for every iteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hoist {
    /// The loop (a grouping key).
    pub lp: Loop,
    /// Where the check goes: before the preheader's jump into the loop.
    pub jump: ir::Inst,
    /// The address's term that varies: `scale * i`.
    pub varying: Value,
    /// Its other terms, all defined outside the loop (sorted).
    pub invariant: Vec<Value>,
    /// `scale * i` is `scale * base + [low, high]`: the base (defined before
    /// the loop) and the scale, when `i` does not count from a constant.
    pub base: Option<(Value, i64)>,
    /// The lowest value of `scale * i` over the whole loop.
    pub low: i64,
    /// Its highest value.
    pub high: i64,
}

/// What is known about one loop.
#[derive(Clone)]
struct Shape {
    jump: ir::Inst,
    latch: Block,
    /// Induction variables: header parameter -> (base, lowest, highest):
    /// `i` is `base + [lowest, highest]` (or just the constants).
    ivs: HashMap<Value, (Option<Value>, i64, i64)>,
}

/// The loop analysis of one function, with each loop's shape worked out once.
pub struct Loops {
    cfg: ControlFlowGraph,
    domtree: DominatorTree,
    loops: LoopAnalysis,
    shapes: HashMap<Loop, Option<Shape>>,
}

impl Loops {
    /// Analyses `func`.
    pub fn new(func: &ir::Function) -> Self {
        let cfg = ControlFlowGraph::with_function(func);
        let domtree = DominatorTree::with_function(func, &cfg);
        let mut loops = LoopAnalysis::new();
        loops.compute(func, &cfg, &domtree);
        Loops {
            cfg,
            domtree,
            loops,
            shapes: HashMap::default(),
        }
    }

    /// Whether the store in `block` whose address has these `terms` can be
    /// checked once before its innermost loop (see the module's conditions).
    pub fn hoist(&mut self, func: &ir::Function, block: Block, terms: &[Value]) -> Option<Hoist> {
        let lp = self.loops.innermost_loop(block)?;
        let shape = match self.shapes.get(&lp) {
            Some(s) => s.clone(),
            None => {
                let s = self.shape(func, lp);
                self.shapes.insert(lp, s.clone());
                s
            }
        }?;
        if !self.domtree.block_dominates(block, shape.latch) {
            return None;
        }
        let mut varying = None;
        let mut invariant = Vec::new();
        for &t in terms {
            if let Some((iv, scale)) = scaled(func, t)
                && let Some(&(base, lo, hi)) = shape.ivs.get(&iv)
            {
                if varying.is_some() {
                    return None;
                }
                let (a, b) = (
                    i128::from(lo) * i128::from(scale),
                    i128::from(hi) * i128::from(scale),
                );
                varying = Some((t, a.min(b), a.max(b), base.map(|b| (b, scale))));
            } else if self.outside(func, t, lp) {
                invariant.push(t);
            } else {
                return None;
            }
        }
        let (varying, low, high, base) = varying?;
        if high - low > i128::from(MAX_SPAN) || low.abs() > 1 << 48 || high.abs() > 1 << 48 {
            return None;
        }
        Some(Hoist {
            lp,
            jump: shape.jump,
            varying,
            invariant,
            base,
            low: low as i64,
            high: high as i64,
        })
    }

    /// Whether the store in `block` whose address is the sum of these
    /// `terms` (plus constants), all defined before its innermost loop, can
    /// be checked once before that loop: the loop is entered only by an
    /// unconditional jump from one block outside it, and the store's block
    /// dominates every way out of the loop (every block leaving it,
    /// returning or trapping), so whenever the loop runs, its first
    /// iteration writes that very address. Gives the loop and the jump.
    pub fn hoist_invariant(
        &self,
        func: &ir::Function,
        block: Block,
        terms: &[Value],
    ) -> Option<(Loop, ir::Inst)> {
        let lp = self.loops.innermost_loop(block)?;
        if terms.is_empty() || !terms.iter().all(|&t| self.outside(func, t, lp)) {
            return None;
        }
        let header = self.loops.loop_header(lp);
        let mut entries = self
            .cfg
            .pred_iter(header)
            .filter(|p| !self.loops.is_in_loop(p.block, lp));
        let (Some(entry), None) = (entries.next(), entries.next()) else {
            return None;
        };
        if func.dfg.insts[entry.inst].opcode() != Opcode::Jump {
            return None;
        }
        for b in func.layout.blocks() {
            if !self.loops.is_in_loop(b, lp) {
                continue;
            }
            let leaves = func.layout.last_inst(b).is_none_or(|last| {
                let op = func.dfg.insts[last].opcode();
                op.is_return() || op == Opcode::Trap
            }) || self.cfg.succ_iter(b).any(|s| !self.loops.is_in_loop(s, lp));
            if leaves && !self.domtree.block_dominates(block, b) {
                return None;
            }
        }
        Some((lp, entry.inst))
    }

    /// Whether `v` is defined outside loop `lp`.
    fn outside(&self, func: &ir::Function, v: Value, lp: Loop) -> bool {
        let block = match func.dfg.value_def(v) {
            ir::ValueDef::Result(inst, _) => func.layout.inst_block(inst),
            ir::ValueDef::Param(block, _) => Some(block),
            _ => None,
        };
        block.is_some_and(|b| !self.loops.is_in_loop(b, lp))
    }

    /// The loop's preheader, latch and induction variables, if its shape is
    /// the simple one.
    fn shape(&self, func: &ir::Function, lp: Loop) -> Option<Shape> {
        let header = self.loops.loop_header(lp);
        let preds: Vec<(Block, ir::Inst)> = self
            .cfg
            .pred_iter(header)
            .map(|p| (p.block, p.inst))
            .collect();
        let [p0, p1] = preds[..] else { return None };
        let (pre, latch) = match (
            self.loops.is_in_loop(p0.0, lp),
            self.loops.is_in_loop(p1.0, lp),
        ) {
            (false, true) => (p0, p1),
            (true, false) => (p1, p0),
            _ => return None,
        };
        if func.dfg.insts[pre.1].opcode() != Opcode::Jump {
            return None;
        }
        // The latch is the only way out.
        for b in func.layout.blocks() {
            if self.loops.is_in_loop(b, lp)
                && b != latch.0
                && self.cfg.succ_iter(b).any(|s| !self.loops.is_in_loop(s, lp))
            {
                return None;
            }
        }
        let InstructionData::Brif { arg, blocks, .. } = func.dfg.insts[latch.1] else {
            return None;
        };
        let pool = &func.dfg.value_lists;
        let (then_block, else_block) = (blocks[0].block(pool), blocks[1].block(pool));
        let (back, continue_if) = match (then_block == header, else_block == header) {
            (true, false) => (blocks[0], true),
            (false, true) => (blocks[1], false),
            _ => return None,
        };
        let args = |call: &ir::BlockCall| -> Option<Vec<Value>> {
            call.args(pool)
                .map(|a| match a {
                    BlockArg::Value(v) => Some(v),
                    _ => None,
                })
                .collect()
        };
        let InstructionData::Jump { destination, .. } = func.dfg.insts[pre.1] else {
            return None;
        };
        let entry_args = args(&destination)?;
        let back_args = args(&back)?;
        let (cc, lhs, rhs) = condition(func, arg)?;
        let mut ivs = HashMap::default();
        for (k, &param) in func.dfg.block_params(header).iter().enumerate() {
            let (Some(&init), Some(&next)) = (entry_args.get(k), back_args.get(k)) else {
                continue;
            };
            if func.dfg.value_type(param) != ir::types::I64 {
                continue;
            }
            let Some(step) = step(func, next, param) else {
                continue;
            };
            // Which side of the test is i (or i + s), and which the bound.
            let (tested, cc, bound) = if lhs == param || lhs == next {
                (lhs, cc, rhs)
            } else if rhs == param || rhs == next {
                (rhs, cc.swap_args(), lhs)
            } else {
                continue;
            };
            let tested = if tested == param { 0 } else { step };
            let ((base_a, a), (base_b, mut b)) = (affine(func, init), affine(func, bound));
            // Two counters of an enclosing loop that step together differ by
            // a constant: `it` and `it + 2048` carried in two registers.
            let base_b = match (base_a, base_b) {
                (Some(x), Some(y)) if x != y => {
                    match self.linked(func, x, y).or_else(|| same_symbol(func, x, y)) {
                        Some(d) => {
                            b = b.wrapping_add(d);
                            Some(x)
                        }
                        None => Some(y),
                    }
                }
                _ => base_b,
            };
            // With a base, only (in)equality tests cancel it out: `X + c < X + d`
            // depends on X wrapping around, `X + c != X + d` does not.
            if base_a != base_b
                || (base_a.is_some() && !matches!(cc, IntCC::Equal | IntCC::NotEqual))
            {
                continue;
            }
            if let Some((lo, hi)) = range(a, step, tested, cc, b, continue_if) {
                ivs.insert(param, (base_a, lo, hi));
            }
        }
        Some(Shape {
            jump: pre.1,
            latch: latch.0,
            ivs,
        })
    }

    /// `d` such that `y == x + d` whenever both are live, if `x` and `y` are
    /// parameters of one block that every edge into it passes either as
    /// constants `d` apart, or as `x + k` and `y + k` (both stepped alike):
    /// true on entry, kept by every step.
    fn linked(&self, func: &ir::Function, x: Value, y: Value) -> Option<i64> {
        let (ir::ValueDef::Param(hx, ix), ir::ValueDef::Param(hy, iy)) =
            (func.dfg.value_def(x), func.dfg.value_def(y))
        else {
            return None;
        };
        if hx != hy {
            return None;
        }
        let pool = &func.dfg.value_lists;
        let mut diff = None;
        for pred in self.cfg.pred_iter(hx) {
            let calls = func.dfg.insts[pred.inst]
                .branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables);
            for call in calls.iter().filter(|c| c.block(pool) == hx) {
                let args: Vec<BlockArg> = call.args(pool).collect();
                let (BlockArg::Value(ax), BlockArg::Value(ay)) = (*args.get(ix)?, *args.get(iy)?)
                else {
                    return None;
                };
                let edge = match (affine(func, ax), affine(func, ay)) {
                    ((None, cx), (None, cy)) => Some(cy.wrapping_sub(cx)),
                    ((Some(px), kx), (Some(py), ky)) if px == py => Some(ky.wrapping_sub(kx)),
                    ((Some(px), kx), (Some(py), ky)) if (px, py) == (x, y) && kx == ky => None,
                    _ => return None,
                };
                match (edge, diff) {
                    (Some(e), None) => diff = Some(e),
                    (Some(e), Some(d)) if e != d => return None,
                    _ => {}
                }
            }
        }
        diff
    }
}

/// `i`'s lowest and highest value over every iteration, for `i` starting at
/// `a` and stepping by `s`, when the latch continues while `cc(i + tested,
/// b) == continue_if`.
fn range(a: i64, s: i64, tested: i64, cc: IntCC, b: i64, continue_if: bool) -> Option<(i64, i64)> {
    let (a, s, t, b) = (
        i128::from(a),
        i128::from(s),
        i128::from(tested),
        i128::from(b),
    );
    if s == 0 || a.abs() > 1 << 48 || b.abs() > 1 << 48 || s.abs() > 1 << 20 {
        return None;
    }
    // The last value of i: the first (from a) whose test ends the loop.
    let last = match (cc, continue_if) {
        (IntCC::NotEqual, true) | (IntCC::Equal, false) => {
            let d = b - t - a;
            if d % s != 0 || d / s < 0 {
                return None;
            }
            b - t
        }
        (IntCC::UnsignedLessThan | IntCC::SignedLessThan, true)
        | (IntCC::UnsignedGreaterThanOrEqual | IntCC::SignedGreaterThanOrEqual, false)
            if s > 0 =>
        {
            // Unsigned: every value stays non-negative and below 2^48.
            if matches!(
                cc,
                IntCC::UnsignedLessThan | IntCC::UnsignedGreaterThanOrEqual
            ) && (a < 0 || b < 0)
            {
                return None;
            }
            // The first i >= a with i + t >= b.
            let need = b - t - a;
            if need <= 0 {
                a
            } else {
                a + (need + s - 1) / s * s
            }
        }
        _ => return None,
    };
    let (lo, hi) = (a.min(last), a.max(last));
    Some((i64::try_from(lo).ok()?, i64::try_from(hi).ok()?))
}

/// The latch's condition as (cc, lhs, rhs).
fn condition(func: &ir::Function, v: Value) -> Option<(IntCC, Value, Value)> {
    let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(v) else {
        return None;
    };
    let InstructionData::IntCompare { cond, args, .. } = func.dfg.insts[inst] else {
        return None;
    };
    Some((cond, args[0], args[1]))
}

/// A value as `base + constant`: a constant has no base.
fn affine(func: &ir::Function, v: Value) -> (Option<Value>, i64) {
    if let Some(k) = constant(func, v) {
        return (None, k);
    }
    if let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(v)
        && let InstructionData::Binary {
            opcode: Opcode::Iadd,
            args,
        } = func.dfg.insts[inst]
    {
        match (constant(func, args[0]), constant(func, args[1])) {
            (None, Some(k)) => return (Some(args[0]), k),
            (Some(k), None) => return (Some(args[1]), k),
            _ => {}
        }
    }
    (Some(v), 0)
}

/// `d` such that `y == x + d`, when both are the address of one symbol plus
/// constants (the lifter writes `&a[4096]` as `a+0x8000`, one relocation,
/// rather than `a` plus an add).
fn same_symbol(func: &ir::Function, x: Value, y: Value) -> Option<i64> {
    let symbol = |v: Value| {
        let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(v) else {
            return None;
        };
        let InstructionData::UnaryGlobalValue {
            opcode: Opcode::SymbolValue,
            global_value,
        } = func.dfg.insts[inst]
        else {
            return None;
        };
        match &func.global_values[global_value] {
            ir::GlobalValueData::Symbol {
                name, offset, tls, ..
            } if !tls => Some((name.clone(), offset.bits())),
            _ => None,
        }
    };
    let ((nx, ox), (ny, oy)) = (symbol(x)?, symbol(y)?);
    (nx == ny).then(|| oy.wrapping_sub(ox))
}

/// `next = param + s`: the step s.
fn step(func: &ir::Function, next: Value, param: Value) -> Option<i64> {
    let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(next) else {
        return None;
    };
    match func.dfg.insts[inst] {
        InstructionData::Binary {
            opcode: Opcode::Iadd,
            args,
        } => match (args[0] == param, args[1] == param) {
            (true, _) => constant(func, args[1]),
            (_, true) => constant(func, args[0]),
            _ => None,
        },
        _ => None,
    }
}

/// A term `scale * i`: `i`, `i << k`, `i * k`.
fn scaled(func: &ir::Function, t: Value) -> Option<(Value, i64)> {
    let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(t) else {
        return Some((t, 1));
    };
    match func.dfg.insts[inst] {
        InstructionData::Binary {
            opcode: Opcode::Ishl,
            args,
        } => constant(func, args[1])
            .filter(|k| (0..16).contains(k))
            .map(|k| (args[0], 1i64 << k)),
        InstructionData::Binary {
            opcode: Opcode::Imul,
            args,
        } => match (constant(func, args[0]), constant(func, args[1])) {
            (None, Some(k)) if (1..1 << 16).contains(&k) => Some((args[0], k)),
            (Some(k), None) if (1..1 << 16).contains(&k) => Some((args[1], k)),
            _ => None,
        },
        _ => Some((t, 1)),
    }
}

/// The value of an `iconst`, sign-extended.
pub fn constant(func: &ir::Function, v: Value) -> Option<i64> {
    let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(v) else {
        return None;
    };
    match func.dfg.insts[inst] {
        InstructionData::UnaryImm {
            opcode: Opcode::Iconst,
            imm,
        } => {
            let bits = func.dfg.value_type(v).bits();
            let raw = imm.bits();
            Some(if bits < 64 {
                (raw << (64 - bits)) >> (64 - bits)
            } else {
                raw
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_counted_loops() {
        // for (i = 0; i != 0xfff8; i += 8), tested before the step.
        assert_eq!(
            range(0, 8, 0, IntCC::NotEqual, 0xfff8, true),
            Some((0, 0xfff8))
        );
        // ... tested after it: i + 8 != 0x10000.
        assert_eq!(
            range(0, 8, 8, IntCC::NotEqual, 0x10000, true),
            Some((0, 0xfff8))
        );
        // A count that never meets its bound runs away: refused.
        assert_eq!(range(0, 8, 0, IntCC::NotEqual, 0xfffc, true), None);
        assert_eq!(range(8, 8, 0, IntCC::NotEqual, 0, true), None);
        // while (i < 10) with i from 0 by 3: 0, 3, 6, 9 run; 9 fails the test after its body.
        assert_eq!(
            range(0, 3, 0, IntCC::UnsignedLessThan, 10, true),
            Some((0, 12))
        );
        assert_eq!(
            range(0, 3, 3, IntCC::UnsignedLessThan, 10, true),
            Some((0, 9))
        );
        // Counting down with !=.
        assert_eq!(range(100, -4, 0, IntCC::NotEqual, 0, true), Some((0, 100)));
        // Exit on equality: continue while i != b, written as brif (i == b), exit, header.
        assert_eq!(range(0, 1, 1, IntCC::Equal, 64, false), Some((0, 63)));
    }
}
