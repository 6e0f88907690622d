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
//! register dies at its last real use.

use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::ir::{self, InstBuilder, Value, types::I64};
use cranelift_module::FuncId;
use std::collections::{HashMap, HashSet};

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
    let inner: HashSet<FuncId> = needs.keys().copied().collect();
    // Where each block parameter's incoming values come from.
    let mut incoming: HashMap<Value, Vec<Value>> = HashMap::new();
    let mut live: HashSet<Value> = HashSet::new();
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
            let effect = opcode.is_call()
                || opcode.is_branch()
                || opcode.is_terminator()
                || opcode.can_load()
                || opcode.can_store()
                || opcode.can_trap()
                || opcode.other_side_effects();
            if !effect {
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
    let Some(entry) = func.layout.entry_block() else {
        return Vec::new();
    };
    func.dfg
        .block_params(entry)
        .iter()
        .map(|p| live.contains(p))
        .collect()
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
