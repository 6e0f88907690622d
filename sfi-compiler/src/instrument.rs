//! Stage 4, instrument: the SFI pass (`--isolation sfi`), a separate pass over
//! the lifted IR (after Cranelift's optimiser, so it sees one value for one
//! address), plus the small runtime every sandboxed object carries.
//!
//! - **Stores**: every store and atomic read-modify-write is covered by an
//!   inline fast path that checks its range against the domain's writable
//!   window: `off = addr - lo` must be below `SPAN - len + 1`. `-lo` is a
//!   link-time constant (a relocation against the window symbol: see
//!   [`crate::window`]), and every window spans the ABI's constant `SPAN`,
//!   so a check is `lea off, [addr - lo]; cmp off, imm; jae` — no load, no
//!   register held for it across the function. Outside the window,
//!   an out-of-line slow path (cold, `preserve_all`) scans the byte-granular
//!   grants wrappers make for the duration of a call; if none covers the
//!   store, it records the address and traps. One check covers several
//!   stores where it provably can (see [`instrument`] and `loops`).
//! - **Indirect calls**: the target must be one of the object's own entry
//!   points or one of its imports (`__nooks_sfi_targets`); otherwise trap.
//! - **Entry invariants**: every native entry compares the held-lock count and
//!   the virtual interrupt flag (one 64-bit word of the state) at return
//!   against their value at entry.
//! - **Privileged instructions**: `cli`/`sti`/`pushf`/`popf` act on the virtual
//!   interrupt flag (in the lifter); every other one is refused at rewrite time.
//!
//! The state lives in the object (`__nooks_sfi`, global, so the kernel — or a
//! host test — sets the window), in a section of its own (`.nooks.state`)
//! that the kernel places outside the window's writable part, so no store the
//! checks allow can widen the window. By default the window is the whole
//! address space, so an SFI object also links into host programs and behaves
//! as the original (stores beyond the first `SPAN` bytes of the address
//! space take the slow path, which accepts them). The kernel confines it at
//! load time. Traps use distinct codes and `fault_kind` says which check
//! failed.

use crate::error::{ErrorKind, Result, RewriteError};
use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{self, InstBuilder, InstructionData, MemFlagsData, TrapCode, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Module};

/// Offsets in `__nooks_sfi` (shared with the kernel, which sets the window).
pub use nooks_policy::abi::state as layout;

/// Why an SFI check trapped: the ABI's kinds, shared with the kernel.
pub use nooks_policy::abi::FaultKind;

/// The trap code Cranelift emits for a check of `kind`.
pub fn trap_code(kind: FaultKind) -> TrapCode {
    TrapCode::unwrap_user(10 + kind as u8)
}

/// The runtime symbols of a sandboxed object.
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    /// `__nooks_sfi`.
    pub state: DataId,
    /// `__nooks_sfi_targets`: count, then the allowed indirect-call targets.
    pub targets: DataId,
    /// `__nooks_sfi_slow(addr - lo, size)`.
    pub slow: FuncId,
    /// `__nooks_sfi_check_call(target)`.
    pub check_call: FuncId,
}

/// The slow path's calling convention: it saves every register it uses, so a
/// check's call to it clobbers nothing and values live across the check stay
/// in caller-saved registers (with SysV, every check in a loop would force
/// the loop's values into callee-saved registers or onto the stack).
pub const SLOW_PATH_CALL_CONV: cranelift_codegen::isa::CallConv =
    cranelift_codegen::isa::CallConv::PreserveAll;

fn flags() -> MemFlagsData {
    MemFlagsData::new()
}

/// An access of the rewriter's own to its own data (the runtime state, which
/// is always mapped and outside the window; the published emulated stack
/// pointer): `notrap`, which also marks a store as not the driver's, so
/// [`instrument`] never checks it (see `store_target`).
pub fn rewriter_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// A store the checks must cover: its address as a sum of terms plus a
/// constant offset, and its size in bytes.
#[derive(Clone)]
struct Target {
    inst: ir::Inst,
    /// The non-constant terms of the address, sorted: stores with the same
    /// terms differ by a constant.
    terms: Vec<Value>,
    /// The constant part of the address written (with the store's offset).
    offset: i64,
    size: u32,
}

/// Where a store-like instruction writes, if it must be checked. A store
/// flagged `notrap` is one the rewriter itself made to its own data (the
/// emulated stack pointer it publishes before a call to native code): the
/// lifter marks no store of the driver's that way.
fn store_target(func: &ir::Function, inst: ir::Inst) -> Option<Target> {
    let args = func.dfg.inst_args(inst);
    let (addr, extra, size) = match func.dfg.insts[inst] {
        InstructionData::Store { offset, flags, .. } => {
            if func.dfg.mem_flags[flags].notrap() {
                return None;
            }
            let size = func.dfg.value_type(args[0]).bytes();
            (args[1], i64::from(i32::from(offset)), size)
        }
        InstructionData::AtomicRmw { .. } | InstructionData::AtomicCas { .. } => {
            let size = func.dfg.value_type(func.dfg.first_result(inst)).bytes();
            (args[0], 0, size)
        }
        _ => return None,
    };
    let (terms, addr_const) = split_terms(func, addr);
    Some(Target {
        inst,
        terms,
        offset: addr_const + extra,
        size,
    })
}

/// Inserts the store checks into a lifted function; returns how many.
///
/// Checks are merged where one provably covers others:
/// - stores relative to the function's entry stack pointer (`frame_root`,
///   see `lift::Lifted`: its frame: pushes, locals, outgoing and incoming
///   stack arguments), wherever they are, share one check of their whole
///   range at entry — the entry value never changes, so a range that is
///   inside the window at entry is inside it at every one of those stores;
/// - a store in a counted loop whose address is `invariant + scale * i` is
///   checked once, before the loop, for every value `i` takes, when
///   `loops::Loops::hoist` can prove that range exact;
/// - a store in a loop whose address does not vary in it is checked once,
///   before the loop, when every way out of the loop passes it
///   (`loops::Loops::hoist_invariant`);
/// - other stores in one block whose addresses differ by constants (the
///   fields of one struct) share one check of their range, placed before the
///   first of them.
///
/// A store that provably lands inside one of the object's own writable
/// sections (a static variable, or a static table indexed by a value whose
/// bound [`crate::bounds`] proves) gets no check: the loader places those
/// sections inside the window.
pub fn instrument<M: Module>(
    func: &mut ir::Function,
    module: &mut M,
    rt: &Runtime,
    own: &OwnData,
    frame_root: Option<Value>,
    placeholder: i64,
    entry_only: bool,
) -> Result<usize> {
    let targets: Vec<Target> = func
        .layout
        .blocks()
        .flat_map(|b| func.layout.block_insts(b).collect::<Vec<_>>())
        .filter_map(|inst| store_target(func, inst))
        .collect();
    if targets.is_empty() {
        return Ok(0);
    }
    let slow = module.declare_func_in_func(rt.slow, func);
    let entry = func
        .layout
        .entry_block()
        .ok_or_else(|| RewriteError::new(ErrorKind::Codegen("function without entry".into())))?;
    let mut frame: Option<Group> = None;
    let mut hoisted: Vec<(crate::loops::Hoist, Group)> = Vec::new();
    let mut invariant: Vec<(cranelift_codegen::loop_analysis::Loop, Group)> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut loops = crate::loops::Loops::new(func);
    let mut bounds: Option<crate::bounds::Bounds> = None;
    for t in &targets {
        if t.terms.iter().any(|&v| own_section(func, own, v).is_some()) {
            let b = bounds.get_or_insert_with(|| crate::bounds::Bounds::new(func));
            if in_own_data(func, b, own, t) {
                continue;
            }
        }
        let end = t.offset.saturating_add(i64::from(t.size));
        if let (Some(root), [only]) = (frame_root, &t.terms[..])
            && *only == root
        {
            // Right after the root is known: the function's start, or the
            // load of a natively entered body's stack pointer.
            let first = match func.dfg.value_def(root) {
                ir::ValueDef::Result(def, _) => func.layout.next_inst(def),
                _ => None,
            };
            let g = frame.get_or_insert(Group {
                block: Some(entry),
                first,
                site: t.inst,
                terms: t.terms.clone(),
                base: Base::Terms,
                min: t.offset,
                end,
            });
            g.min = g.min.min(t.offset);
            g.end = g.end.max(end);
            continue;
        }
        let block = func.layout.inst_block(t.inst);
        if let Some(h) = block.and_then(|b| loops.hoist(func, b, &t.terms)) {
            match hoisted
                .iter_mut()
                .find(|(k, _)| (k.lp, k.varying, &k.invariant) == (h.lp, h.varying, &h.invariant))
            {
                Some((_, g)) => {
                    g.min = g.min.min(t.offset);
                    g.end = g.end.max(end);
                }
                None => {
                    let g = Group {
                        block: None,
                        first: Some(h.jump),
                        site: t.inst,
                        terms: Vec::new(),
                        base: Base::Sum(h.invariant.clone(), h.base, h.low, h.high - h.low),
                        min: t.offset,
                        end,
                    };
                    hoisted.push((h, g));
                }
            }
            continue;
        }
        if let Some((lp, jump)) = block.and_then(|b| loops.hoist_invariant(func, b, &t.terms)) {
            match invariant
                .iter_mut()
                .find(|(l, g)| *l == lp && g.terms == t.terms)
            {
                Some((_, g)) => {
                    g.min = g.min.min(t.offset);
                    g.end = g.end.max(end);
                }
                None => invariant.push((
                    lp,
                    Group {
                        block: None,
                        first: Some(jump),
                        site: t.inst,
                        terms: t.terms.clone(),
                        base: Base::Sum(t.terms.clone(), None, 0, 0),
                        min: t.offset,
                        end,
                    },
                )),
            }
            continue;
        }
        match groups
            .iter_mut()
            .find(|g| g.block == block && g.terms == t.terms)
        {
            Some(g) => {
                g.min = g.min.min(t.offset);
                g.end = g.end.max(end);
            }
            None => groups.push(Group {
                block,
                first: Some(t.inst),
                site: t.inst,
                terms: t.terms.clone(),
                base: Base::Terms,
                min: t.offset,
                end,
            }),
        }
    }
    if entry_only {
        // Measuring what the store checks cost: only the frame's stays.
        (groups, hoisted, invariant) = (Vec::new(), Vec::new(), Vec::new());
    }
    let checks = groups.len() + hoisted.len() + invariant.len() + usize::from(frame.is_some());
    if checks == 0 {
        return Ok(0);
    }
    // Each check adds minus the window's low bound, a link-time constant
    // (`window`), and compares against a constant: nothing is loaded or kept
    // live for the checks.
    let state = module.declare_data_in_func(rt.state, func);
    let pos = FuncCursor::new(func).at_first_insertion_point(entry);
    // The frame's check goes at the function's start, before its own first
    // instruction.
    let at_start = pos.current_inst();
    for g in frame
        .iter()
        .chain(hoisted.iter().map(|(_, g)| g))
        .chain(invariant.iter().map(|(_, g)| g))
        .chain(&groups)
    {
        let func = &mut *pos.func;
        // Earlier checks split blocks: find where the first store lives now.
        let Some(mut split_at) = g.first.or(at_start) else {
            continue;
        };
        // A block's check goes up past the loads and arithmetic before its
        // first store (so a read-modify-write stays one instruction).
        if g.first == Some(g.site) {
            split_at = earliest(func, split_at, &g.terms);
        }
        let Some(block) = func.layout.inst_block(split_at) else {
            continue;
        };
        let cont = func.dfg.make_block();
        func.layout.split_block(cont, split_at);
        let cold = func.dfg.make_block();
        func.layout.append_block(cold);
        // Out of line: the hot path falls through a branch never taken.
        func.layout.set_cold(cold);
        // The check, and its call to the slow path (whose return address a
        // fault report names), carry the line of the store they protect.
        let srcloc = func.srcloc(g.site);
        let mut c = FuncCursor::new(func).at_bottom(block);
        c.set_srcloc(srcloc);
        // The group's lowest address as terms and a constant (one constant:
        // one `lea`, whatever value the store itself computed).
        let (terms, k, len) = match &g.base {
            Base::Terms => (g.terms.clone(), g.min, g.end - g.min),
            // A loop's: its invariant terms plus the lowest `scale * i`.
            Base::Sum(terms, base, low, spread) => {
                let mut terms = terms.clone();
                if let Some((b, scale)) = base {
                    terms.push(c.ins().imul_imm_s(*b, *scale));
                }
                (terms, low + g.min, spread + g.end - g.min)
            }
        };
        let off = window_offset(&mut c, &terms, k, state, placeholder);
        // The bound is an immediate: every window spans `layout::SPAN` bytes.
        let lim = c.ins().iconst(I64, layout::limit(len.max(0) as u64) as i64);
        let ok = c.ins().icmp(IntCC::UnsignedLessThan, off, lim);
        c.ins().brif(ok, cont, &[], cold, &[]);
        c.goto_bottom(cold);
        // The slow path takes the offset the fast path computed (and adds
        // `lo` back itself), so the address need not stay live to here.
        let sz = c.ins().iconst(I64, len);
        c.ins().call(slow, &[off, sz]);
        c.ins().jump(cont, &[]);
    }
    Ok(checks)
}

/// An instruction that only computes its results: no memory access, no
/// trap, no call, no control flow, no other effect.
pub fn is_pure(op: ir::Opcode) -> bool {
    !(op.can_load()
        || op.can_store()
        || op.can_trap()
        || op.is_call()
        || op.is_branch()
        || op.is_terminator()
        || op.other_side_effects())
}

/// The earliest instruction of `at`'s block that a check of an address
/// made of `terms` can go before in place of `at`: up past loads and pure
/// instructions, not past anything else (a call, a store, a trap: the check
/// must come after what the program did before the store) nor past where a
/// term is defined.
fn earliest(func: &ir::Function, mut at: ir::Inst, terms: &[Value]) -> ir::Inst {
    while let Some(prev) = func.layout.prev_inst(at) {
        let op = func.dfg.insts[prev].opcode();
        let load = op.can_load() && !op.can_store() && !op.is_call();
        if !(load || is_pure(op))
            || func
                .dfg
                .inst_results(prev)
                .iter()
                .any(|r| terms.contains(r))
        {
            break;
        }
        at = prev;
    }
    at
}

/// `sum(terms) + k - lo`: plus the window's placeholder, which becomes a
/// relocation against the window symbol (`window`). Cranelift folds the
/// constants of a chain of additions into one: an address with no other
/// term would have its check decided at compile time against the
/// placeholder, and a large constant would carry the sum out of
/// `window::sites`' reach. Such an address subtracts `lo` loaded from the
/// state instead.
fn window_offset(
    c: &mut FuncCursor<'_>,
    terms: &[Value],
    k: i64,
    state: ir::GlobalValue,
    placeholder: i64,
) -> Value {
    /// The constants summed along `v`'s additions, and whether it has a
    /// term that is not one; `None` past a depth the walk gives up at.
    fn sum(func: &ir::Function, v: Value, depth: u32) -> Option<(i128, bool)> {
        let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(v) else {
            return Some((0, true));
        };
        let both = |a, b, sign: i128| {
            let (x, vx) = sum(func, a, depth + 1)?;
            let (y, vy) = sum(func, b, depth + 1)?;
            Some((x + sign * y, vx || vy))
        };
        match func.dfg.insts[inst] {
            _ if depth > 12 => None,
            InstructionData::UnaryImm {
                opcode: ir::Opcode::Iconst,
                imm,
            } => Some((i128::from(imm.bits()), false)),
            InstructionData::Binary {
                opcode: ir::Opcode::Iadd,
                args,
            } => both(args[0], args[1], 1),
            InstructionData::Binary {
                opcode: ir::Opcode::Isub,
                args,
            } => both(args[0], args[1], -1),
            _ => Some((0, true)),
        }
    }
    let mut total = None;
    for &t in terms {
        total = Some(match total {
            None => t,
            Some(s) => c.ins().iadd(s, t),
        });
    }
    if let Some(t) = total
        && let Some((hidden, true)) = sum(c.func, t, 0)
        && (hidden + i128::from(k)).unsigned_abs() < (crate::window::REACH / 2) as u128
    {
        return c.ins().iadd_imm_s(t, k + placeholder);
    }
    let start = match total {
        Some(t) => c.ins().iadd_imm_s(t, k),
        None => c.ins().iconst(I64, k),
    };
    let base = c.ins().symbol_value(I64, state);
    let lo = c.ins().load(I64, rewriter_flags(), base, layout::LO);
    c.ins().isub(start, lo)
}

/// The object's own writable sections and COMMON blocks, with their sizes:
/// the loader places all of them inside the domain's window.
pub type OwnData = crate::HashMap<DataId, u64>;

/// If `v` is the address of one of the object's own writable sections: the
/// symbol's offset into it and the section's size.
fn own_section(func: &ir::Function, own: &OwnData, v: Value) -> Option<(i64, u64)> {
    let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(v) else {
        return None;
    };
    let InstructionData::UnaryGlobalValue {
        opcode: ir::Opcode::SymbolValue,
        global_value,
    } = func.dfg.insts[inst]
    else {
        return None;
    };
    let ir::GlobalValueData::Symbol {
        name: ir::ExternalName::User(r),
        offset,
        tls: false,
        ..
    } = func.global_values[global_value]
    else {
        return None;
    };
    // cranelift-module names data objects in namespace 1.
    let name = &func.params.user_named_funcs()[r];
    if name.namespace != 1 {
        return None;
    }
    let size = *own.get(&DataId::from_u32(name.index))?;
    Some((offset.bits(), size))
}

/// Whether every byte the store writes lies in one of the object's own
/// writable sections: its address is that section's symbol plus a constant
/// plus terms whose upper bounds `bounds` proves, and even the largest sum
/// ends inside the section.
fn in_own_data(
    func: &ir::Function,
    bounds: &crate::bounds::Bounds,
    own: &OwnData,
    t: &Target,
) -> bool {
    let mut section = None;
    let mut spread: u64 = 0;
    for &term in &t.terms {
        if section.is_none()
            && let Some(s) = own_section(func, own, term)
        {
            section = Some(s);
            continue;
        }
        match bounds.umax(func, term).and_then(|m| spread.checked_add(m)) {
            Some(s) => spread = s,
            None => return false,
        }
    }
    let Some((symbol_offset, size)) = section else {
        return false;
    };
    let Some(lo) = t
        .offset
        .checked_add(symbol_offset)
        .and_then(|o| u64::try_from(o).ok())
    else {
        return false;
    };
    lo.checked_add(spread)
        .and_then(|e| e.checked_add(u64::from(t.size)))
        .is_some_and(|end| end <= size)
}

/// Stores sharing one check (of `terms + min .. terms + end`), placed
/// before `first` (or at entry, for the frame).
struct Group {
    block: Option<ir::Block>,
    first: Option<ir::Inst>,
    /// The first store it covers: the check reports that store's source line.
    site: ir::Inst,
    terms: Vec<Value>,
    base: Base,
    min: i64,
    end: i64,
}

/// How a group's check computes its lowest address.
enum Base {
    /// The group's terms plus its lowest offset.
    Terms,
    /// A loop's stores, checked before the loop: the sum of the invariant
    /// terms and of `scale * base`, plus the lowest and the spread of
    /// `scale * i` beyond it.
    Sum(Vec<Value>, Option<(Value, i64)>, i64, i64),
}

/// An address as a sum: its non-constant terms (sorted) and a constant,
/// through trees of additions and subtractions of constants (`push` after
/// `push` gives `rsp - 8 - 8`; the optimiser writes `[rcx+rdx+8]` as
/// `(rcx + 8) + rdx`). Offsets stay small, so a group never wraps or spans
/// more than a frame or a few structs; past that the address is one term.
fn split_terms(func: &ir::Function, addr: Value) -> (Vec<Value>, i64) {
    fn constant(func: &ir::Function, v: Value) -> Option<i64> {
        match func.dfg.value_def(v) {
            ir::ValueDef::Result(i, 0) => match func.dfg.insts[i] {
                InstructionData::UnaryImm {
                    opcode: ir::Opcode::Iconst,
                    imm,
                } => Some(imm.bits()),
                _ => None,
            },
            _ => None,
        }
    }
    fn walk(func: &ir::Function, v: Value, depth: u32, terms: &mut Vec<Value>, c: &mut i64) {
        if let Some(k) = constant(func, v) {
            *c = c.saturating_add(k);
            return;
        }
        if depth < 6
            && let ir::ValueDef::Result(inst, 0) = func.dfg.value_def(v)
            && let InstructionData::Binary { opcode, args } = func.dfg.insts[inst]
        {
            match opcode {
                ir::Opcode::Iadd => {
                    walk(func, args[0], depth + 1, terms, c);
                    walk(func, args[1], depth + 1, terms, c);
                    return;
                }
                ir::Opcode::Isub => {
                    if let Some(k) = constant(func, args[1]) {
                        walk(func, args[0], depth + 1, terms, c);
                        *c = c.saturating_sub(k);
                        return;
                    }
                }
                _ => {}
            }
        }
        terms.push(v);
    }
    let (mut terms, mut c) = (Vec::new(), 0i64);
    walk(func, addr, 0, &mut terms, &mut c);
    if c.unsigned_abs() >= 1 << 20 {
        return (vec![addr], 0);
    }
    terms.sort_unstable();
    (terms, c)
}

fn err(e: impl std::fmt::Display) -> RewriteError {
    RewriteError::new(ErrorKind::Codegen(e.to_string()))
}

/// Defines the state, the target table and the two checker functions.
/// `targets` are the object's entries and imported functions; `data_targets` are
/// imports only ever referenced by address (a function pointer in a table), which
/// may be functions too.
pub fn define_runtime<M: Module>(
    module: &mut M,
    rt: &Runtime,
    targets: &[FuncId],
    data_targets: &[DataId],
) -> Result<()> {
    // State: lo = 0, hi = all ones (no confinement until the kernel sets it), vif = 1.
    let mut bytes = vec![0u8; layout::SIZE];
    bytes[layout::HI as usize..layout::HI as usize + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    bytes[layout::VIF as usize..layout::VIF as usize + 4].copy_from_slice(&1u32.to_le_bytes());
    let mut d = DataDescription::new();
    d.define(bytes.into_boxed_slice());
    d.set_align(64);
    // A section of its own, which the kernel places outside the window's
    // writable part: no store the checks allow reaches the window's bounds.
    d.set_custom_section(nooks_policy::abi::STATE_SECTION);
    module.define_data(rt.state, &d).map_err(err)?;

    let mut d = DataDescription::new();
    let n = targets.len() + data_targets.len();
    let mut table = vec![0u8; 8 * (n + 1)];
    table[..8].copy_from_slice(&(n as u64).to_le_bytes());
    d.define(table.into_boxed_slice());
    d.set_align(8);
    for (i, &f) in targets.iter().enumerate() {
        let fr = module.declare_func_in_data(f, &mut d);
        d.write_function_addr((8 * (i + 1)) as u32, fr);
    }
    for (i, &g) in data_targets.iter().enumerate() {
        let gv = module.declare_data_in_data(g, &mut d);
        d.write_data_addr((8 * (targets.len() + i + 1)) as u32, gv, 0);
    }
    module.define_data(rt.targets, &d).map_err(err)?;

    let mut ctx = module.make_context();
    let mut fbc = FunctionBuilderContext::new();

    // __nooks_sfi_slow(addr - lo, size): return if the window (the fast path
    // is conservative near its end) or a grant covers [addr, addr+size), else
    // trap.
    define_checker(
        module,
        &mut ctx,
        &mut fbc,
        rt.slow,
        SLOW_PATH_CALL_CONV,
        2,
        |module, b, ok, fail| {
            let gv = module.declare_data_in_func(rt.state, b.func);
            let entry = b.current_block().expect("in the entry block");
            let (off, size) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let base = b.ins().symbol_value(I64, gv);
            let lo = b.ins().load(I64, flags(), base, layout::LO);
            let addr = b.ins().iadd(off, lo);
            let end = b.ins().iadd(addr, size);
            let covers = |b: &mut FunctionBuilder<'_>, lo: Value, hi: Value| {
                let above = b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, addr, lo);
                let below = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, hi);
                let no_wrap = b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, end, addr);
                let inside = b.ins().band(above, below);
                b.ins().band(inside, no_wrap)
            };
            let hi = b.ins().load(I64, flags(), base, layout::HI);
            let in_window = covers(b, lo, hi);
            let grants = b.create_block();
            b.ins().brif(in_window, ok, &[], grants, &[]);
            b.switch_to_block(grants);
            let n = b.ins().load(I64, flags(), base, layout::NGRANTS);
            let cap = b.ins().iconst(I64, layout::MAX_GRANTS as i64);
            let n = b.ins().umin(n, cap);
            let table = b.ins().iadd_imm_s(base, i64::from(layout::GRANTS));
            emit_scan(b, table, n, 16, ok, fail, |b, slot| {
                let g_lo = b.ins().load(I64, flags(), slot, 0);
                let g_hi = b.ins().load(I64, flags(), slot, 8);
                covers(b, g_lo, g_hi)
            });
            b.switch_to_block(fail);
            emit_refuse(b, base, addr, FaultKind::WildStore);
        },
    )?;

    // __nooks_sfi_check_call(target): return if target is in the table, else trap.
    define_checker(
        module,
        &mut ctx,
        &mut fbc,
        rt.check_call,
        module.isa().default_call_conv(),
        1,
        |module, b, ok, fail| {
            let tgv = module.declare_data_in_func(rt.targets, b.func);
            let sgv = module.declare_data_in_func(rt.state, b.func);
            let entry = b.current_block().expect("in the entry block");
            let target = b.block_params(entry)[0];
            let table = b.ins().symbol_value(I64, tgv);
            let n = b.ins().load(I64, flags(), table, 0);
            let entries = b.ins().iadd_imm_s(table, 8);
            emit_scan(b, entries, n, 8, ok, fail, |b, slot| {
                let t = b.ins().load(I64, flags(), slot, 0);
                b.ins().icmp(IntCC::Equal, t, target)
            });
            b.switch_to_block(fail);
            let base = b.ins().symbol_value(I64, sgv);
            emit_refuse(b, base, target, FaultKind::BadCallTarget);
        },
    )?;
    Ok(())
}

/// Defines a runtime checker `id(i64 x params)`: `body` fills the entry block,
/// branching to `ok` (return) or filling `fail` (which must trap).
fn define_checker<M: Module>(
    module: &mut M,
    ctx: &mut cranelift_codegen::Context,
    fbc: &mut FunctionBuilderContext,
    id: FuncId,
    call_conv: cranelift_codegen::isa::CallConv,
    params: usize,
    body: impl FnOnce(&mut M, &mut FunctionBuilder<'_>, ir::Block, ir::Block),
) -> Result<()> {
    ctx.func.signature.call_conv = call_conv;
    ctx.func.signature.params = vec![ir::AbiParam::new(I64); params];
    ctx.func.name = ir::UserFuncName::user(0, id.as_u32());
    let config = module.isa().frontend_config();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fbc);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        let ok = b.create_block();
        let fail = b.create_block();
        b.switch_to_block(entry);
        body(module, &mut b, ok, fail);
        b.switch_to_block(ok);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(config);
    }
    module
        .define_function(id, ctx)
        .map_err(|e| err(format!("{e:?}")))?;
    module.clear_context(ctx);
    Ok(())
}

/// Emits `for i in 0..n { if matches(table + stride * i) { goto ok } }; goto fail`.
fn emit_scan(
    b: &mut FunctionBuilder<'_>,
    table: Value,
    n: Value,
    stride: i64,
    ok: ir::Block,
    fail: ir::Block,
    matches: impl Fn(&mut FunctionBuilder<'_>, Value) -> Value,
) {
    let head = b.create_block();
    b.append_block_param(head, I64);
    let body = b.create_block();
    let next = b.create_block();
    let zero = b.ins().iconst(I64, 0);
    b.ins().jump(head, &[zero.into()]);
    b.switch_to_block(head);
    let i = b.block_params(head)[0];
    let more = b.ins().icmp(IntCC::UnsignedLessThan, i, n);
    b.ins().brif(more, body, &[], fail, &[]);
    b.switch_to_block(body);
    let off = b.ins().imul_imm_s(i, stride);
    let slot = b.ins().iadd(table, off);
    let hit = matches(b, slot);
    b.ins().brif(hit, ok, &[], next, &[]);
    b.switch_to_block(next);
    let i1 = b.ins().iadd_imm_s(i, 1);
    b.ins().jump(head, &[i1.into()]);
}

/// Records the refused address (or port), the driver code, and the cause; traps.
pub fn refuse(b: &mut FunctionBuilder<'_>, state: Value, addr: Value, kind: FaultKind) {
    emit_refuse(b, state, addr, kind)
}

/// Records the refused address, the driver code that asked, and the cause; traps.
fn emit_refuse(b: &mut FunctionBuilder<'_>, state: Value, addr: Value, kind: FaultKind) {
    b.ins()
        .store(rewriter_flags(), addr, state, layout::FAULT_ADDR);
    let site = b.ins().get_return_address(I64);
    b.ins()
        .store(rewriter_flags(), site, state, layout::FAULT_SITE);
    let k = b.ins().iconst(I64, kind as i64);
    b.ins()
        .store(rewriter_flags(), k, state, layout::FAULT_KIND);
    b.ins().trap(trap_code(kind));
}

/// Removes what nothing uses any more once an invariant check is gone: pure instructions and the rewriter's own loads (`notrap`, of the
/// runtime state and the published stack pointer), which Cranelift keeps
/// because a load is not pure to it.
pub fn drop_dead_code(func: &mut ir::Function) {
    loop {
        let mut used = crate::HashSet::default();
        for block in func.layout.blocks() {
            for inst in func.layout.block_insts(block) {
                used.extend(func.dfg.inst_values(inst));
            }
        }
        let mut dead = Vec::new();
        for block in func.layout.blocks() {
            for inst in func.layout.block_insts(block) {
                let results = func.dfg.inst_results(inst);
                if results.is_empty() || results.iter().any(|r| used.contains(r)) {
                    continue;
                }
                let op = func.dfg.insts[inst].opcode();
                let removable = match func.dfg.insts[inst] {
                    InstructionData::Load { flags, .. } => func.dfg.mem_flags[flags].notrap(),
                    _ => is_pure(op),
                };
                if removable {
                    dead.push(inst);
                }
            }
        }
        if dead.is_empty() {
            return;
        }
        for inst in dead {
            func.layout.remove_inst(inst);
        }
    }
}

/// The entry invariants (the virtual interrupt flag and the lock count, one
/// 64-bit word of the state) as they are now: a native entry reads them at
/// entry and passes them to [`check_after`] at every return.
pub fn entry_state(b: &mut FunctionBuilder<'_>, state: ir::GlobalValue) -> Value {
    let base = b.ins().symbol_value(I64, state);
    // The state is always mapped: a load that cannot trap, which the
    // optimiser drops when the check using it goes (see `check_after`).
    b.ins()
        .load(I64, rewriter_flags(), base, layout::INVARIANTS)
}

/// Traps unless the lock count and the virtual interrupt flag are what they
/// were at entry: one compare on the way out; which one changed is sorted
/// out on the cold path. Returns the compare's branch and the block it
/// continues in, so a body that provably changes neither can drop the check
/// (`Lifter::lift`).
pub fn check_after(
    b: &mut FunctionBuilder<'_>,
    state: ir::GlobalValue,
    at_entry: Value,
) -> (ir::Inst, ir::Block) {
    // A global value of its own: its address is one `lea` here, where the
    // entry's would be kept (spilled) across the whole function.
    let data = b.func.global_values[state].clone();
    let state = b.func.create_global_value(data);
    let now = entry_state(b, state);
    let bad = b.ins().icmp(IntCC::NotEqual, now, at_entry);
    let fail = b.create_block();
    let cont = b.create_block();
    let branch = b.ins().brif(bad, fail, &[], cont, &[]);
    b.set_cold_block(fail);
    b.switch_to_block(fail);
    b.seal_block(fail);
    let base = b.ins().symbol_value(I64, state);
    // The low half is the interrupt flag; if it is unchanged, the lock count
    // is what changed.
    let vif_now = b.ins().ireduce(I32, now);
    let vif_then = b.ins().ireduce(I32, at_entry);
    let same_vif = b.ins().icmp(IntCC::Equal, vif_now, vif_then);
    let locks_block = b.create_block();
    let irq_block = b.create_block();
    b.ins().brif(same_vif, locks_block, &[], irq_block, &[]);
    for (blk, k) in [
        (locks_block, FaultKind::LocksHeld),
        (irq_block, FaultKind::InterruptsOff),
    ] {
        b.set_cold_block(blk);
        b.switch_to_block(blk);
        b.seal_block(blk);
        let kind = b.ins().iconst(I64, k as i64);
        b.ins()
            .store(rewriter_flags(), kind, base, layout::FAULT_KIND);
        b.ins().trap(trap_code(k));
    }
    b.switch_to_block(cont);
    b.seal_block(cont);
    (branch, cont)
}
