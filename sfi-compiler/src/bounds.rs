//! Unsigned upper bounds of a function's integer values, for the SFI pass: a
//! store to `data + i`, where `data` is one of the object's own writable
//! sections and `i` provably stays below its size, needs no check at all —
//! the loader places every writable section inside the domain's window.
//! Drivers index their own tables that way (`keys[hash & (N - 1)]`,
//! `ring[tail % RING]`).
//!
//! The analysis is an abstract interpretation over intervals `[0, max]`:
//! every value starts at `max = 0` (nothing seen yet) and only grows, so
//! iterating the transfer functions to a fixpoint gives bounds that hold on
//! every path. Cycles in SSA go through block parameters; a parameter whose
//! bound grows is widened to the next power of two less one, and after a few
//! increases to its type's maximum, so the iteration ends. An operation the analysis does not model gets its type's maximum.

use crate::HashMap;
use cranelift_codegen::ir::{self, InstructionData, Opcode, Value};

/// After this many increases, a block parameter is widened to its type's
/// maximum (before that, to the next power of two less one).
const WIDEN_AFTER: u32 = 8;
/// A safety net: past this many rounds the analysis gives up (every bound unknown).
const MAX_ROUNDS: u32 = 200;

/// Upper bounds (as unsigned integers) of a function's values.
pub struct Bounds {
    max: HashMap<Value, u64>,
    gave_up: bool,
}

/// The largest unsigned value of `ty` (all ones for types wider than 64 bits,
/// which the analysis never bounds).
fn type_max(ty: ir::Type) -> u64 {
    match ty.bits() {
        b @ 1..=63 if ty.is_int() => (1u64 << b) - 1,
        _ => u64::MAX,
    }
}

/// `x` with every bit below its highest set bit set: a bound of `a | b`.
fn fill(x: u64) -> u64 {
    match x {
        0 => 0,
        _ => u64::MAX >> x.leading_zeros(),
    }
}

impl Bounds {
    /// Analyses `func`.
    pub fn new(func: &ir::Function) -> Self {
        let mut b = Bounds {
            max: HashMap::default(),
            gave_up: false,
        };
        let mut grew: HashMap<Value, u32> = HashMap::default();
        if let Some(entry) = func.layout.entry_block() {
            for &p in func.dfg.block_params(entry) {
                b.max.insert(p, type_max(func.dfg.value_type(p)));
            }
        }
        for _ in 0..MAX_ROUNDS {
            let mut changed = false;
            for block in func.layout.blocks() {
                for inst in func.layout.block_insts(block) {
                    for (i, &r) in func.dfg.inst_results(inst).iter().enumerate() {
                        let m = b
                            .transfer(func, inst, i)
                            .min(type_max(func.dfg.value_type(r)));
                        if b.raise(r, m) {
                            changed = true;
                        }
                    }
                    for call in func.dfg.insts[inst]
                        .branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables)
                    {
                        let dest = call.block(&func.dfg.value_lists);
                        let args: Vec<Option<Value>> = call
                            .args(&func.dfg.value_lists)
                            .map(|a| a.as_value())
                            .collect();
                        for (k, &p) in func.dfg.block_params(dest).iter().enumerate() {
                            let tmax = type_max(func.dfg.value_type(p));
                            // A block-call argument that is not a plain value
                            // (a call's result, an exception payload) is unknown.
                            let m = match args.get(k).copied().flatten() {
                                Some(a) => fill(b.get(a)).min(tmax),
                                None => tmax,
                            };
                            if b.raise(p, m) {
                                changed = true;
                                let n = grew.entry(p).or_insert(0);
                                *n += 1;
                                if *n > WIDEN_AFTER {
                                    b.max.insert(p, tmax);
                                }
                            }
                        }
                    }
                }
            }
            if !changed {
                return b;
            }
        }
        b.gave_up = true;
        b
    }

    /// Raises the bound of `v` to `m`; whether it grew.
    fn raise(&mut self, v: Value, m: u64) -> bool {
        let e = self.max.entry(v).or_insert(0);
        if m > *e {
            *e = m;
            true
        } else {
            false
        }
    }

    fn get(&self, v: Value) -> u64 {
        self.max.get(&v).copied().unwrap_or(0)
    }

    /// The largest unsigned value `v` can take, if the analysis knows one
    /// below its type's maximum.
    pub fn umax(&self, func: &ir::Function, v: Value) -> Option<u64> {
        let m = self.max.get(&v).copied()?;
        (!self.gave_up && m < type_max(func.dfg.value_type(v))).then_some(m)
    }

    /// The bound of result `i` of `inst` from its operands' current bounds.
    fn transfer(&self, func: &ir::Function, inst: ir::Inst, i: usize) -> u64 {
        let results = func.dfg.inst_results(inst);
        let ty = func.dfg.value_type(results[i]);
        let tmax = type_max(ty);
        if i > 0 || !ty.is_int() || ty.bits() > 64 {
            return tmax;
        }
        let bits = ty.bits();
        let add = |a: u64, b: u64| a.checked_add(b).filter(|&s| s <= tmax).unwrap_or(tmax);
        let mul = |a: u64, b: u64| a.checked_mul(b).filter(|&s| s <= tmax).unwrap_or(tmax);
        let shl = |a: u64, k: u64| {
            if a == 0 {
                0
            } else if u64::from(a.leading_zeros()) >= k && (a << k) <= tmax {
                a << k
            } else {
                tmax
            }
        };
        let konst = |v: Value| -> Option<u64> {
            match func.dfg.value_def(v) {
                ir::ValueDef::Result(d, 0) => match func.dfg.insts[d] {
                    InstructionData::UnaryImm {
                        opcode: Opcode::Iconst,
                        imm,
                    } => Some((imm.bits() as u64) & type_max(func.dfg.value_type(v))),
                    _ => None,
                },
                _ => None,
            }
        };
        let g = |v: Value| self.get(v);
        match func.dfg.insts[inst] {
            InstructionData::UnaryImm {
                opcode: Opcode::Iconst,
                imm,
            } => (imm.bits() as u64) & tmax,
            InstructionData::Unary { opcode, arg } => {
                let a = g(arg);
                let from = func.dfg.value_type(arg);
                match opcode {
                    Opcode::Uextend | Opcode::Ireduce => a,
                    // A narrow value below its sign bit extends to itself.
                    Opcode::Sextend if a <= type_max(from) >> 1 => a,
                    Opcode::Popcnt | Opcode::Clz | Opcode::Ctz => u64::from(from.bits()),
                    _ => tmax,
                }
            }
            InstructionData::Binary { opcode, args } => {
                let (a, b) = (g(args[0]), g(args[1]));
                match opcode {
                    Opcode::Band => a.min(b),
                    Opcode::Bor | Opcode::Bxor => fill(a.max(b)),
                    Opcode::Iadd => add(a, b),
                    Opcode::Imul => mul(a, b),
                    Opcode::Umin => a.min(b),
                    Opcode::Umax => a.max(b),
                    Opcode::Ushr => match konst(args[1]) {
                        Some(k) => a >> (k & u64::from(bits - 1)),
                        None => a,
                    },
                    Opcode::Sshr if a <= tmax >> 1 => a,
                    Opcode::Ishl => match konst(args[1]) {
                        Some(k) => shl(a, k & u64::from(bits - 1)),
                        None => tmax,
                    },
                    // `a % b` is below `b` (and `a % 0` traps).
                    Opcode::Urem => a.min(b.saturating_sub(1)),
                    Opcode::Udiv => a,
                    _ => tmax,
                }
            }
            InstructionData::Ternary {
                opcode: Opcode::Select | Opcode::SelectSpectreGuard,
                args,
            } => g(args[1]).max(g(args[2])),
            InstructionData::IntCompare { .. } => 1,
            _ => tmax,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::types::{I32, I64};
    use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature};
    use cranelift_codegen::isa::CallConv;
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

    /// `h = x >> 51; loop { h = (h + 1) & 0x1fff }` and a counter that only grows.
    fn probe_loop() -> (ir::Function, [Value; 4]) {
        let mut sig = Signature::new(CallConv::SystemV);
        sig.params.push(AbiParam::new(I64));
        let mut func = ir::Function::with_name_signature(ir::UserFuncName::default(), sig);
        let mut fbc = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fbc);
        let entry = b.create_block();
        let head = b.create_block();
        let exit = b.create_block();
        b.append_block_params_for_function_params(entry);
        let h = b.append_block_param(head, I64);
        let n = b.append_block_param(head, I64);
        b.switch_to_block(entry);
        let x = b.block_params(entry)[0];
        let h0 = b.ins().ushr_imm_s(x, 51);
        let zero = b.ins().iconst(I64, 0);
        b.ins().jump(head, &[h0.into(), zero.into()]);
        b.switch_to_block(head);
        let h32 = b.ins().ireduce(I32, h);
        let h1 = b.ins().iadd_imm_s(h32, 1);
        let h1 = b.ins().band_imm_s(h1, 0x1fff);
        let h1 = b.ins().uextend(I64, h1);
        let n1 = b.ins().iadd_imm_s(n, 1);
        let more = b.ins().icmp_imm_s(IntCC::NotEqual, h1, 7);
        b.ins().brif(more, head, &[h1.into(), n1.into()], exit, &[]);
        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(cranelift_codegen::isa::TargetFrontendConfig {
            default_call_conv: CallConv::SystemV,
            pointer_width: target_lexicon::PointerWidth::U64,
            page_size_align_log2: 12,
        });
        (func, [x, h, n, h1])
    }

    #[test]
    fn a_masked_index_stays_bounded_through_the_loop() {
        let (func, [x, h, n, h1]) = probe_loop();
        let b = Bounds::new(&func);
        assert_eq!(b.umax(&func, x), None, "a parameter is unknown");
        assert_eq!(b.umax(&func, h), Some(0x1fff));
        assert_eq!(b.umax(&func, h1), Some(0x1fff));
        assert_eq!(
            b.umax(&func, n),
            None,
            "a counter that only grows is widened"
        );
    }

    #[test]
    fn bit_tricks() {
        assert_eq!(fill(0), 0);
        assert_eq!(fill(5), 7);
        assert_eq!(fill(0x100), 0x1ff);
        assert_eq!(type_max(I32), 0xffff_ffff);
        assert_eq!(type_max(I64), u64::MAX);
    }
}
