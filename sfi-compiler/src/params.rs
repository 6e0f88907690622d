//! Which of its inner entry's parameters a lifted function needs, so that a
//! call between two rewritten functions passes only those.
//!
//! Every inner entry takes all six argument registers, the emulated stack
//! pointer and RAX (see `lift::inner_signature`): the lifter cannot know
//! which registers a callee reads. Passing all of them costs little at the
//! call itself, but it keeps every argument register alive up to every call:
//! a function that calls a two-argument helper in a loop holds its own R8 and
//! R9 across the whole loop, spilling and reloading them around each call.
//!
//! A parameter is needed when its value can reach an effect: a store, a load
//! (it may fault), a call, a trap, a branch condition or a returned value.
//! Pure arithmetic passes the need back to its operands, a block parameter
//! to the values its predecessors pass, and a call to another inner entry
//! only to the arguments that callee needs — a least fixpoint over the
//! object's functions (`needs`), so a parameter a recursive function only
//! passes to itself is not needed. Where a callee does not need a
//! parameter, its callers pass zero instead (`pass_only_needed`): the
//! register dies at its last real use. The same liveness drops the
//! parameters of a body's own blocks that reach no effect
//! (`drop_dead_block_params`). `NOOKS_DEBUG_PARAMS` prints what each inner
//! entry needs.

use crate::{HashMap, HashSet};
use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::ir::{self, InstBuilder, Value, types::I64};
use cranelift_module::FuncId;

/// The inner entry a direct call reaches, if it is one of the object's.
fn callee(func: &ir::Function, inst: ir::Inst, inner: &HashSet<FuncId>) -> Option<FuncId> {
    let ir::InstructionData::Call { func_ref, .. } = func.dfg.insts[inst] else {
        return None;
    };
    let ir::ExternalName::User(name) = &func.dfg.ext_funcs[func_ref].name else {
        return None;
    };
    let name = &func.params.user_named_funcs()[*name];
    let id = FuncId::from_u32(name.index);
    (name.namespace == 0 && inner.contains(&id)).then_some(id)
}

/// Which parameters of `func` reach an effect, given what every inner entry
/// it calls needs (`needs`; a callee not in it needs nothing yet).
fn needed(func: &ir::Function, needs: &HashMap<FuncId, Vec<bool>>) -> Vec<bool> {
    let live = live_values(func, needs);
    let Some(entry) = func.layout.entry_block() else {
        return Vec::new();
    };
    func.dfg
        .block_params(entry)
        .iter()
        .map(|p| live.contains(p))
        .collect()
}

/// The values of `func` that reach an effect.
fn live_values(func: &ir::Function, needs: &HashMap<FuncId, Vec<bool>>) -> HashSet<Value> {
    let inner: HashSet<FuncId> = needs.keys().copied().collect();
    // Where each block parameter's incoming values come from.
    let mut incoming: HashMap<Value, Vec<Value>> = HashMap::default();
    let mut live: HashSet<Value> = HashSet::default();
    let mut work: Vec<Value> = Vec::new();
    let pool = &func.dfg.value_lists;
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            let data = &func.dfg.insts[inst];
            let opcode = data.opcode();
            for call in data.branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables) {
                let dest = call.block(pool);
                for (&param, arg) in func.dfg.block_params(dest).iter().zip(call.args(pool)) {
                    if let ir::BlockArg::Value(v) = arg {
                        incoming.entry(param).or_default().push(v);
                    }
                }
            }
            if crate::instrument::is_pure(opcode) {
                continue;
            }
            // The instruction's own operands (for a branch: its condition or
            // index; the values it passes are followed through `incoming`).
            let args = func.dfg.inst_args(inst);
            match callee(func, inst, &inner) {
                Some(id) => {
                    let wants = &needs[&id];
                    for (k, &v) in args.iter().enumerate() {
                        if wants.get(k).copied().unwrap_or(true) {
                            work.push(v);
                        }
                    }
                }
                None => work.extend_from_slice(args),
            }
        }
    }
    while let Some(v) = work.pop() {
        let v = func.dfg.resolve_aliases(v);
        if !live.insert(v) {
            continue;
        }
        match func.dfg.value_def(v) {
            ir::ValueDef::Result(inst, _) => {
                // A pure instruction (an effect's operands are already in).
                work.extend_from_slice(func.dfg.inst_args(inst));
            }
            ir::ValueDef::Param(..) => {
                if let Some(vs) = incoming.get(&v) {
                    work.extend_from_slice(vs);
                }
            }
            _ => {}
        }
    }
    live
}

/// What every function of `funcs` (inner entry id, lifted body) needs: the
/// least fixpoint over their calls to one another.
pub fn needs(funcs: &[(FuncId, &ir::Function)]) -> HashMap<FuncId, Vec<bool>> {
    let mut needs: HashMap<FuncId, Vec<bool>> = funcs
        .iter()
        .map(|(id, f)| (*id, vec![false; f.signature.params.len()]))
        .collect();
    // Needs only grow, and each round adds one at least: it ends.
    loop {
        let mut changed = false;
        for (id, f) in funcs {
            let n = needed(f, &needs);
            if n != needs[id] {
                needs.insert(*id, n);
                changed = true;
            }
        }
        if !changed {
            if std::env::var_os("NOOKS_DEBUG_PARAMS").is_some() {
                for (id, _) in funcs {
                    eprintln!("params: {id}: {:?}", needs[id]);
                }
            }
            return needs;
        }
    }
}

/// Replaces every argument of a call from `func` to an inner entry that the
/// callee does not need with zero.
pub fn pass_only_needed(func: &mut ir::Function, needs: &HashMap<FuncId, Vec<bool>>) {
    let inner: HashSet<FuncId> = needs.keys().copied().collect();
    let mut calls = Vec::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            if let Some(id) = callee(func, inst, &inner) {
                calls.push((inst, id));
            }
        }
    }
    for (inst, id) in calls {
        let wants = &needs[&id];
        let mut cursor = FuncCursor::new(func).at_inst(inst);
        let zero = cursor.ins().iconst(I64, 0);
        for (k, arg) in func.dfg.inst_args_mut(inst).iter_mut().enumerate() {
            if !wants.get(k).copied().unwrap_or(true) {
                *arg = zero;
            }
        }
    }
}

/// Removes the parameters of `func`'s blocks (other than the entry) whose
/// values reach no effect, and the values branches pass them. The lifter
/// carries every register and flag through every block, so a loop passes
/// around values that nothing after it reads (a register the loop body sets
/// for a call, then dead): Cranelift keeps such a parameter, and with it a
/// register or a spill slot on every iteration.
pub fn drop_dead_block_params(func: &mut ir::Function, needs: &HashMap<FuncId, Vec<bool>>) {
    let live = live_values(func, needs);
    let Some(entry) = func.layout.entry_block() else {
        return;
    };
    let mut dead: HashMap<ir::Block, Vec<usize>> = HashMap::default();
    for block in func.layout.blocks().filter(|&b| b != entry) {
        for (k, &p) in func.dfg.block_params(block).iter().enumerate() {
            // Registers and flags (a zero stands in for them below).
            let scalar = func.dfg.value_type(p).is_int() && func.dfg.value_type(p).bits() <= 64;
            if scalar && !live.contains(&p) {
                dead.entry(block).or_default().push(k);
            }
        }
    }
    if dead.is_empty() {
        return;
    }
    // Highest index first, so the lower ones stay where they are.
    for ks in dead.values_mut() {
        ks.sort_unstable_by(|a, b| b.cmp(a));
    }
    let insts: Vec<ir::Inst> = func
        .layout
        .blocks()
        .flat_map(|b| func.layout.block_insts(b).collect::<Vec<_>>())
        .collect();
    let dfg = &mut func.dfg;
    for inst in insts {
        for call in
            dfg.insts[inst].branch_destination_mut(&mut dfg.jump_tables, &mut dfg.exception_tables)
        {
            if let Some(ks) = dead.get(&call.block(&dfg.value_lists)) {
                for &k in ks {
                    call.remove(k, &mut dfg.value_lists);
                }
            }
        }
    }
    // What used a removed parameter is dead too (the optimiser drops it):
    // it reads zero of the parameter's type instead.
    let mut zeros: HashMap<ir::Type, Value> = HashMap::default();
    for (block, ks) in dead {
        for k in ks {
            let p = func.dfg.block_params(block)[k];
            let ty = func.dfg.value_type(p);
            let zero = *zeros.entry(ty).or_insert_with(|| {
                let mut cursor = FuncCursor::new(func).at_first_insertion_point(entry);
                cursor.ins().iconst(ty, 0)
            });
            func.dfg.remove_block_param(p);
            func.dfg.change_to_alias(p, zero);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{AbiParam, Signature};
    use cranelift_codegen::isa::CallConv;
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

    /// `f(x, y)`: a loop counting `i` to `x` that also carries `y + i`
    /// (read by nothing after the loop) and returns `i`.
    fn loop_with_a_dead_value() -> ir::Function {
        let mut sig = Signature::new(CallConv::SystemV);
        sig.params.push(AbiParam::new(I64));
        sig.params.push(AbiParam::new(I64));
        sig.returns.push(AbiParam::new(I64));
        let mut func = ir::Function::with_name_signature(ir::UserFuncName::default(), sig);
        let mut fbc = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fbc);
        let (entry, head, exit) = (b.create_block(), b.create_block(), b.create_block());
        b.append_block_params_for_function_params(entry);
        let i = b.append_block_param(head, I64);
        let dead = b.append_block_param(head, I64);
        b.switch_to_block(entry);
        let (x, y) = (b.block_params(entry)[0], b.block_params(entry)[1]);
        let zero = b.ins().iconst(I64, 0);
        b.ins().jump(head, &[zero.into(), y.into()]);
        b.switch_to_block(head);
        let i1 = b.ins().iadd_imm_s(i, 1);
        let dead1 = b.ins().iadd(dead, i1);
        let more = b.ins().icmp(IntCC::NotEqual, i1, x);
        b.ins()
            .brif(more, head, &[i1.into(), dead1.into()], exit, &[]);
        b.switch_to_block(exit);
        b.ins().return_(&[i1]);
        b.seal_all_blocks();
        b.finalize(cranelift_codegen::isa::TargetFrontendConfig {
            default_call_conv: CallConv::SystemV,
            pointer_width: target_lexicon::PointerWidth::U64,
            page_size_align_log2: 12,
        });
        func
    }

    #[test]
    fn a_value_nothing_reads_leaves_the_loop() {
        let mut func = loop_with_a_dead_value();
        let none = HashMap::default();
        // `x` decides the loop, `y` only feeds the dead value.
        assert_eq!(needed(&func, &none), vec![true, false]);
        let head = func.layout.blocks().nth(1).unwrap();
        assert_eq!(func.dfg.block_params(head).len(), 2);
        drop_dead_block_params(&mut func, &none);
        assert_eq!(func.dfg.block_params(head).len(), 1);
        let flags = cranelift_codegen::settings::Flags::new(cranelift_codegen::settings::builder());
        cranelift_codegen::verify_function(&func, &flags).expect("still valid IR");
    }
}

/// Puts a check that never fails — the address of `anchor` (plus a small
/// constant) is not zero — at the start of every block a storing loop exits
/// to.
///
/// Why: Cranelift 0.135's dead-store elimination (part of its egraph pass,
/// which cannot be switched off) removes a store inside a loop when a store
/// to the same address after the loop post-dominates it, even though the
/// loop's next iteration reads that address first (the loop header's load
/// does not count as observing it). An explicitly trapping instruction
/// marks every store before it as observed, so with one on every loop exit
/// no store of a loop is dead by a store after it. A compare and a branch
/// never taken, once per loop run rather than per iteration.
pub fn guard_loop_exits(
    func: &mut ir::Function,
    anchor: impl FnOnce(&mut ir::Function) -> ir::GlobalValue,
) {
    use cranelift_codegen::dominator_tree::DominatorTree;
    use cranelift_codegen::flowgraph::ControlFlowGraph;
    use cranelift_codegen::loop_analysis::LoopAnalysis;
    let cfg = ControlFlowGraph::with_function(func);
    let domtree = DominatorTree::with_function(func, &cfg);
    let mut loops = LoopAnalysis::new();
    loops.compute(func, &cfg, &domtree);
    // Only loops that store (a search loop's exits need nothing).
    let mut storing = crate::HashSet::default();
    for block in func.layout.blocks() {
        if func
            .layout
            .block_insts(block)
            .any(|i| func.dfg.insts[i].opcode().can_store())
        {
            let mut lp = loops.innermost_loop(block);
            while let Some(l) = lp {
                storing.insert(l);
                lp = loops.loop_parent(l);
            }
        }
    }
    let mut exits = Vec::new();
    for block in func.layout.blocks() {
        let Some(lp) = loops.innermost_loop(block) else {
            continue;
        };
        for succ in cfg.succ_iter(block) {
            // The loop this edge leaves, and every loop around it that it
            // leaves too: guard if any of them stores.
            let mut left = Some(lp);
            let mut stores = false;
            while let Some(l) = left.filter(|&l| !loops.is_in_loop(succ, l)) {
                stores |= storing.contains(&l);
                left = loops.loop_parent(l);
            }
            if !stores {
                continue;
            }
            if !exits.contains(&succ) {
                exits.push(succ);
            }
        }
    }
    if exits.is_empty() {
        return;
    }
    let anchor = anchor(func);
    // Each on its own value (`anchor + k`, never zero either), so the optimiser,
    // which runs twice, does not merge one into the one dominating it.
    for (k, exit) in exits.into_iter().enumerate() {
        let mut cursor = FuncCursor::new(func).at_first_insertion_point(exit);
        let a = cursor.ins().symbol_value(I64, anchor);
        let v = cursor.ins().iadd_imm_s(a, k as i64);
        cursor.ins().trapz(v, ir::TrapCode::unwrap_user(4));
    }
}
