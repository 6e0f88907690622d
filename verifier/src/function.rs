//! One function: decoded along its control flow into blocks, then
//! abstractly interpreted to a fixpoint, then checked instruction by
//! instruction against the rules (see the crate doc).

use crate::image::{Field, Image};
use crate::state::{self, Flags, State};
use crate::value::{self, Expr, Range, Sym};
use crate::{Reason, Runtime};
use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use iced_x86::{ConditionCode, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use nooks_loader::object::Area;
use nooks_policy::abi::{self, state as layout};

const RSP: usize = 4;
const RDI: usize = 7;
const RSI: usize = 6;
const CALLEE_SAVED: [usize; 6] = [3, 5, 12, 13, 14, 15];
const CALLER_SAVED: [usize; 9] = [0, 1, 2, 6, 7, 8, 9, 10, 11];
/// Visits of one block before its ranges are widened.
const WIDEN_AFTER: u32 = 3;
/// Visits after which widening stops at thresholds and goes to the top.
const JUMP_AFTER: u32 = 40;
/// Visits of one block before the verifier gives up.
const MAX_VISITS: u32 = 100;

/// A decoded instruction and the relocated fields in it.
#[derive(Clone)]
pub struct Insn<'i> {
    /// The instruction (its IP is its offset in the code section).
    pub ins: Instruction,
    /// The displacement's relocation.
    pub disp: Option<&'i Field>,
    /// The immediate's (or branch displacement's) relocation.
    pub imm: Option<&'i Field>,
}

impl Insn<'_> {
    fn off(&self) -> u64 {
        self.ins.ip()
    }
    fn end(&self) -> u64 {
        self.ins.next_ip()
    }
}

/// A basic block: instructions `first..last` (indexes into the function's).
struct Block {
    first: usize,
    last: usize,
    succs: Vec<usize>,
    preds: Vec<(usize, usize)>,
    in_cycle: bool,
    /// Predecessors whose edge here closes a loop (a depth-first search
    /// from the entry finds this block still open when it takes the edge).
    back: Vec<usize>,
}

/// Where a rejection happened.
pub struct At {
    /// Offset of the instruction in the code section.
    pub offset: u64,
    /// The instruction.
    pub ins: Instruction,
}

/// Verifies the function `[start, end)` of `image`.
pub fn verify(
    image: &Image<'_>,
    rt: &Runtime,
    start: u64,
    end: u64,
    entry: bool,
) -> Result<u64, (Option<At>, Reason)> {
    let f = Analysis::decode(image, rt, start, end, entry)?;
    #[cfg(feature = "trace")]
    if std::env::var("NOOKS_DECODE_ONLY").is_ok() {
        return Ok(f.insns.len() as u64);
    }
    // Two iteration strategies, each sound on its own: loops analysed again
    // from their header when what enters them is renamed (precise on nested
    // loops), and, if that does not settle, plain chaotic iteration.
    if let Err(first) = f.run(true) {
        f.run(false).map_err(|second| {
            if first.1 == Reason::NoFixpoint {
                second
            } else {
                first
            }
        })?;
    }
    Ok(f.insns.len() as u64)
}

struct Analysis<'i, 'a> {
    image: &'i Image<'a>,
    rt: &'i Runtime,
    entry: bool,
    insns: Vec<Insn<'i>>,
    blocks: Vec<Block>,
    thresholds: core::cell::RefCell<Vec<(Sym, u64)>>,
}

fn at(i: &Insn<'_>) -> Option<At> {
    Some(At {
        offset: i.off(),
        ins: i.ins,
    })
}

/// A general register's index (rax = 0 ... r15 = 15) and width in bits.
fn gpr(r: Register) -> Option<(usize, u32)> {
    let full = r.full_register();
    if !full.is_gpr64() || r == Register::None {
        return None;
    }
    Some((full as usize - Register::RAX as usize, r.size() as u32 * 8))
}

fn is_branch(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Jo
            | Mnemonic::Jno
            | Mnemonic::Jb
            | Mnemonic::Jae
            | Mnemonic::Je
            | Mnemonic::Jne
            | Mnemonic::Jbe
            | Mnemonic::Ja
            | Mnemonic::Js
            | Mnemonic::Jns
            | Mnemonic::Jp
            | Mnemonic::Jnp
            | Mnemonic::Jl
            | Mnemonic::Jge
            | Mnemonic::Jle
            | Mnemonic::Jg
    )
}

/// Instructions the kernel keeps for itself.
fn is_privileged(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cli | Sti
            | Hlt
            | In
            | Out
            | Insb
            | Insw
            | Insd
            | Outsb
            | Outsw
            | Outsd
            | Lgdt
            | Lidt
            | Lldt
            | Ltr
            | Wrmsr
            | Rdmsr
            | Invlpg
            | Iret
            | Iretd
            | Iretq
            | Sysret
            | Sysretq
            | Sysexit
            | Sysexitq
            | Swapgs
            | Wbinvd
            | Invd
            | Popf
            | Popfd
            | Popfq
            | Int
            | Int1
            | Int3
            | Into
            | Syscall
            | Sysenter
            | Clts
            | Lmsw
            | Xsetbv
            | Wrpkru
            | Wrfsbase
            | Wrgsbase
            | Stac
            | Clac
            | Invpcid
            | Rdpmc
            | Mwait
            | Monitor
            | Vmcall
            | Vmlaunch
            | Vmresume
            | Vmxoff
            | Vmxon
            | Xrstors
            | Xsaves
            | Wrssd
            | Wrssq
    )
}

/// What an instruction's first operand does, for those that write it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op0 {
    /// Reads it only (or has none).
    Read,
    /// Writes (or reads and writes) it.
    Write,
}

/// The instructions the verifier knows, and whether they write their
/// first operand. Anything else is refused.
fn known(m: Mnemonic) -> Option<Op0> {
    use Mnemonic::*;
    Some(match m {
        Mov | Lea | Movzx | Movsx | Movsxd | Add | Sub | And | Or | Xor | Adc | Sbb | Neg | Not
        | Inc | Dec | Imul | Shl | Shr | Sar | Rol | Ror | Rcl | Rcr | Shld | Shrd | Seta
        | Setae | Setb | Setbe | Sete | Setg | Setge | Setl | Setle | Setne | Setno | Setnp
        | Setns | Seto | Setp | Sets | Cmova | Cmovae | Cmovb | Cmovbe | Cmove | Cmovg | Cmovge
        | Cmovl | Cmovle | Cmovne | Cmovno | Cmovnp | Cmovns | Cmovo | Cmovp | Cmovs | Pop
        | Xchg | Xadd | Cmpxchg | Bswap | Bsf | Bsr | Lzcnt | Tzcnt | Popcnt | Andn | Bzhi
        | Sarx | Shlx | Shrx | Rorx | Blsi | Blsr | Blsmsk | Pdep | Pext | Bextr | Mulx => {
            Op0::Write
        }
        Cmp | Test | Bt | Push | Call | Ret | Jmp | Ud2 | Nop | Pause | Mfence | Lfence
        | Sfence | Cdq | Cqo | Cdqe | Cwd | Cwde | Cbw | Mul | Div | Idiv | Jo | Jno | Jb | Jae
        | Je | Jne | Jbe | Ja | Js | Jns | Jp | Jnp | Jl | Jge | Jle | Jg => Op0::Read,
        _ => return None,
    })
}

fn negate(cc: ConditionCode) -> ConditionCode {
    use ConditionCode::*;
    match cc {
        o => no,
        no => o,
        b => ae,
        ae => b,
        e => ne,
        ne => e,
        be => a,
        a => be,
        s => ns,
        ns => s,
        p => np,
        np => p,
        l => ge,
        ge => l,
        le => g,
        g => le,
        None => None,
    }
}

/// The effect of a call on the caller's state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Callee {
    /// A function of the object, an import or a checked pointer: the
    /// System V ABI (callee-saved registers kept, the rest clobbered).
    SysV,
    /// The slow path: every register kept; establishes its range.
    Slow,
    /// The indirect-call check: establishes its target.
    CheckCall,
}

impl<'i, 'a> Analysis<'i, 'a> {
    fn decode(
        image: &'i Image<'a>,
        rt: &'i Runtime,
        start: u64,
        end: u64,
        entry: bool,
    ) -> Result<Self, (Option<At>, Reason)> {
        let code = &image.code[..end as usize];
        let size = (end - start) as usize;
        // 0: not decoded, 1: an instruction starts here, 2: inside one.
        let mut mark = vec![0u8; size];
        let mut index = vec![u32::MAX; size];
        let mut insns: Vec<Insn<'i>> = Vec::new();
        let mut leaders = BTreeSet::new();
        let mut todo = vec![start];
        leaders.insert(start);
        let thresholds = Vec::new();
        // One decoder over the function, moved to each place to decode.
        let mut decoder =
            Decoder::with_ip(64, &code[start as usize..], start, DecoderOptions::NONE);
        // The function's relocated fields (a few; searched per instruction).
        let fields = image.fields_in(start, end);
        while let Some(mut ip) = todo.pop() {
            decoder
                .set_position((ip - start) as usize)
                .map_err(|_| (None, Reason::FallsOffEnd))?;
            decoder.set_ip(ip);
            loop {
                let rel = (ip - start) as usize;
                if mark[rel] == 1 {
                    break;
                }
                if mark[rel] == 2 {
                    return Err((None, Reason::BranchIntoInstruction(ip)));
                }
                if !decoder.can_decode() {
                    return Err((None, Reason::FallsOffEnd));
                }
                let ins = decoder.decode();
                let here = Some(At { offset: ip, ins });
                if ins.is_invalid() {
                    return Err((here, Reason::Undecodable));
                }
                let m = ins.mnemonic();
                if is_privileged(m) {
                    return Err((here, Reason::Privileged));
                }
                let Some(_) = known(m) else {
                    return Err((here, Reason::Unsupported));
                };
                if ins.has_rep_prefix()
                    || ins.has_repne_prefix()
                    || ins.has_xacquire_prefix()
                    || ins.has_xrelease_prefix()
                {
                    return Err((here, Reason::Unsupported));
                }
                for k in 0..ins.op_count() {
                    match ins.op_kind(k) {
                        OpKind::Register => {
                            if gpr(ins.op_register(k)).is_none() {
                                return Err((here, Reason::Unsupported));
                            }
                        }
                        OpKind::Memory => {
                            let seg = ins.memory_segment();
                            if seg == Register::FS || seg == Register::GS {
                                return Err((here, Reason::Segment));
                            }
                            let base = ins.memory_base();
                            if !(base == Register::None || base == Register::RIP || base.is_gpr64())
                                || !(ins.memory_index() == Register::None
                                    || ins.memory_index().is_gpr64())
                            {
                                return Err((here, Reason::Unsupported));
                            }
                        }
                        OpKind::NearBranch64
                        | OpKind::Immediate8
                        | OpKind::Immediate16
                        | OpKind::Immediate32
                        | OpKind::Immediate64
                        | OpKind::Immediate8to16
                        | OpKind::Immediate8to32
                        | OpKind::Immediate8to64
                        | OpKind::Immediate32to64 => {}
                        _ => return Err((here, Reason::Unsupported)),
                    }
                }
                let len = ins.len() as u64;
                if ip + len > end {
                    return Err((here, Reason::FallsOffEnd));
                }
                let r0 = (ip - start) as usize;
                for k in 1..len as usize {
                    if mark[r0 + k] == 1 {
                        return Err((here, Reason::BranchIntoInstruction(ip + k as u64)));
                    }
                    mark[r0 + k] = 2;
                }
                mark[r0] = 1;
                // The relocated fields: a displacement, an immediate or a
                // branch's displacement, nothing else.
                let offsets = decoder.get_constant_offsets(&ins);
                let (mut disp, mut imm) = (None, None);
                let from = fields.partition_point(|f| f.offset < ip);
                for f in fields[from..].iter().take_while(|f| f.offset < ip + len) {
                    let rel = f.offset - ip;
                    let is_disp = offsets.has_displacement()
                        && rel == offsets.displacement_offset() as u64
                        && f.width == offsets.displacement_size() as u64;
                    let is_imm = (offsets.has_immediate()
                        && rel == offsets.immediate_offset() as u64
                        && f.width == offsets.immediate_size() as u64)
                        || (ins.op0_kind() == OpKind::NearBranch64
                            && rel + f.width == len
                            && f.width == 4);
                    if is_disp && disp.is_none() {
                        disp = Some(f);
                    } else if is_imm && imm.is_none() {
                        imm = Some(f);
                    } else {
                        return Err((
                            here,
                            Reason::Relocation(
                                "a relocation outside the instruction's displacement and immediate",
                            ),
                        ));
                    }
                    if f.offset + f.width > ip + len {
                        return Err((
                            here,
                            Reason::Relocation("a relocation across two instructions"),
                        ));
                    }
                }
                if insns.len() >= value::MAX_INSNS {
                    return Err((here, Reason::TooLarge));
                }
                index[r0] = insns.len() as u32;
                insns.push(Insn { ins, disp, imm });
                let next = ip + len;
                if is_branch(m) || m == Mnemonic::Jmp {
                    if imm.is_some() {
                        return Err((here, Reason::Relocation("a jump to another function")));
                    }
                    if ins.op0_kind() != OpKind::NearBranch64 {
                        return Err((here, Reason::IndirectJump));
                    }
                    let t = ins.near_branch_target();
                    if t < start || t >= end {
                        return Err((here, Reason::BranchOutside(t)));
                    }
                    leaders.insert(t);
                    todo.push(t);
                    if m == Mnemonic::Jmp {
                        break;
                    }
                    leaders.insert(next);
                    todo.push(next);
                    break;
                }
                if matches!(m, Mnemonic::Ret | Mnemonic::Ud2) {
                    break;
                }
                if next >= end {
                    return Err((here, Reason::FallsOffEnd));
                }
                ip = next;
            }
        }
        // Blocks, in address order.
        let mut order: Vec<u32> = Vec::with_capacity(insns.len());
        for (rel, m) in mark.iter().enumerate() {
            if *m == 1 {
                order.push(index[rel]);
            }
        }
        let insns: Vec<Insn<'i>> = order.iter().map(|&i| insns[i as usize].clone()).collect();
        let mut blocks: Vec<Block> = Vec::new();
        let mut block_of = alloc::collections::BTreeMap::new();
        let mut i = 0;
        while i < insns.len() {
            let first = i;
            loop {
                let m = insns[i].ins.mnemonic();
                let ends =
                    is_branch(m) || matches!(m, Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Ud2);
                let next_leads = i + 1 < insns.len() && leaders.contains(&insns[i + 1].off());
                if ends || next_leads || i + 1 == insns.len() {
                    break;
                }
                i += 1;
            }
            block_of.insert(insns[first].off(), blocks.len());
            blocks.push(Block {
                first,
                last: i,
                succs: Vec::new(),
                preds: Vec::new(),
                in_cycle: false,
                back: Vec::new(),
            });
            i += 1;
        }
        if blocks.len() >= value::MAX_BLOCKS {
            return Err((None, Reason::TooLarge));
        }
        for b in 0..blocks.len() {
            let last = &insns[blocks[b].last];
            let m = last.ins.mnemonic();
            let mut succs = Vec::new();
            if is_branch(m) || m == Mnemonic::Jmp {
                succs.push(block_of[&last.ins.near_branch_target()]);
            }
            if !(m == Mnemonic::Jmp || m == Mnemonic::Ret || m == Mnemonic::Ud2) {
                succs.push(block_of[&last.end()]);
            }
            for (k, &s) in succs.iter().enumerate() {
                blocks[s].preds.push((b, k));
            }
            blocks[b].succs = succs;
        }
        // Blocks on a cycle (their instructions may run again, so a result
        // must forget what its previous value was known to be): Tarjan's
        // strongly connected components, iteratively.
        for b in cyclic(&blocks) {
            blocks[b].in_cycle = true;
        }
        for (p, h) in back_edges(&blocks) {
            blocks[h].back.push(p);
        }
        Ok(Analysis {
            image,
            rt,
            entry,
            insns,
            blocks,
            thresholds: core::cell::RefCell::new(thresholds),
        })
    }

    /// The blocks of the loops headed by `h`: those that reach one of its
    /// back-edge predecessors without passing `h`, and `h`.
    fn natural_loop(&self, h: usize) -> Vec<usize> {
        let mut seen = vec![false; self.blocks.len()];
        seen[h] = true;
        let mut stack: Vec<usize> = self.blocks[h].back.clone();
        let mut out = vec![h];
        while let Some(x) = stack.pop() {
            if core::mem::replace(&mut seen[x], true) {
                continue;
            }
            out.push(x);
            stack.extend(self.blocks[x].preds.iter().map(|p| p.0));
        }
        out
    }

    fn run(&self, restart_loops: bool) -> Result<(), (Option<At>, Reason)> {
        let n = self.blocks.len();
        let mut ins: Vec<Option<State>> = vec![None; n];
        let mut outs: Vec<Vec<Option<State>>> = self
            .blocks
            .iter()
            .map(|b| vec![None; b.succs.len()])
            .collect();
        let mut visits = vec![0u32; n];
        let mut resets = 0u32;
        let mut errors: Vec<Option<(Option<At>, Reason)>> = (0..n).map(|_| None).collect();
        ins[0] = Some(State::entry());
        let mut work = BTreeSet::new();
        work.insert(0usize);
        while let Some(b) = work.pop_first() {
            visits[b] += 1;
            #[cfg(feature = "trace")]
            if visits[b] > MAX_VISITS - 2 {
                std::eprintln!(
                    "visit {} of block at {:#x}:\n{}",
                    visits[b],
                    self.insns[self.blocks[b].first].off(),
                    ins[b].as_ref().unwrap()
                );
            }
            if visits[b] > MAX_VISITS {
                let i = &self.insns[self.blocks[b].first];
                return Err((at(i), Reason::NoFixpoint));
            }
            let Some(st) = ins[b].clone() else { continue };
            // Checked on every round; a block's last round ran from its final
            // state (a change queues it again), so its last verdict stands.
            let mut err = None;
            let edges = self.block(b, st, &mut err);
            errors[b] = err;
            for (k, out) in edges.into_iter().enumerate() {
                let s = self.blocks[b].succs[k];
                if self.blocks[s].preds.len() == 1 {
                    // The only way in: its state, no join and no copy.
                    let new = out.map(|mut st| {
                        st.collect();
                        st
                    });
                    if new != ins[s] {
                        ins[s] = new;
                        work.insert(s);
                    }
                    continue;
                }
                // What enters a loop changed: the loop's states were computed
                // from the old entry, and the names they carry would not join
                // with the new ones (an inner pointer would lose the base the
                // outer loop advances). The loop is analysed again from its
                // header, as the first time.
                if restart_loops
                    && !self.blocks[s].back.is_empty()
                    && !self.blocks[s].back.contains(&b)
                    && renamed(outs[b][k].as_ref(), out.as_ref())
                {
                    resets += 1;
                    if resets > 16 * n as u32 + 64 {
                        let i = &self.insns[self.blocks[s].first];
                        return Err((at(i), Reason::NoFixpoint));
                    }
                    for x in self.natural_loop(s) {
                        if x != s {
                            ins[x] = None;
                            visits[x] = 0;
                            errors[x] = None;
                        }
                        for o in outs[x].iter_mut() {
                            *o = None;
                        }
                    }
                    visits[s] = 0;
                }
                outs[b][k] = out;
                let incoming: Vec<&State> = self.blocks[s]
                    .preds
                    .iter()
                    .filter_map(|&(p, e)| outs[p][e].as_ref())
                    .collect();
                let new = if incoming.is_empty() {
                    None
                } else {
                    Some(state::join(
                        s,
                        &incoming,
                        ins[s].as_ref(),
                        visits[s] >= WIDEN_AFTER,
                        visits[s] >= JUMP_AFTER,
                        &self.thresholds.borrow(),
                    ))
                };
                if new != ins[s] {
                    #[cfg(feature = "trace")]
                    if std::env::var("NOOKS_TRACE_AT")
                        .ok()
                        .and_then(|v| u64::from_str_radix(&v, 16).ok())
                        == Some(self.insns[self.blocks[s].first].off())
                    {
                        std::eprintln!(
                            "visit {} from {:#x}: {}",
                            visits[s],
                            self.insns[self.blocks[b].first].off(),
                            new.as_ref().unwrap()
                        );
                    }
                    ins[s] = new;
                    work.insert(s);
                }
            }
        }
        #[cfg(feature = "trace")]
        if std::env::var("NOOKS_TRACE_VISITS").is_ok() {
            std::eprintln!(
                "{:#x}: {} blocks, {} insns, {} visits",
                self.insns[0].off(),
                n,
                self.insns.len(),
                visits.iter().sum::<u32>()
            );
        }
        match errors.into_iter().flatten().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs block `b` from `st`; returns the state along each of its edges
    /// (`None`: the edge cannot be taken). With `check`, enforces the rules.
    fn block(
        &self,
        b: usize,
        mut st: State,
        err: &mut Option<(Option<At>, Reason)>,
    ) -> Vec<Option<State>> {
        let block = &self.blocks[b];
        for idx in block.first..=block.last {
            let i = &self.insns[idx];
            #[cfg(feature = "trace")]
            let before = st.clone();
            if let Err(r) = self.step(&mut st, idx, block.in_cycle, true)
                && err.is_none()
            {
                #[cfg(feature = "trace")]
                std::eprintln!("{before}");
                *err = Some((at(i), r));
            }
        }
        let last = &self.insns[block.last];
        let m = last.ins.mnemonic();
        if m == Mnemonic::Ret {
            if let Err(r) = self.ret(&st)
                && err.is_none()
            {
                *err = Some((at(last), r));
            }
            return Vec::new();
        }
        if is_branch(m) {
            let cc = last.ins.condition_code();
            let mut taken = st.clone();
            let mut seen = Vec::new();
            #[cfg(feature = "trace")]
            let flags = st.flags;
            let t = refine(&mut taken, cc, &mut seen);
            let f = refine(&mut st, negate(cc), &mut seen);
            #[cfg(feature = "trace")]
            if std::env::var("NOOKS_TRACE_BR")
                .ok()
                .and_then(|v| u64::from_str_radix(&v, 16).ok())
                == Some(last.off())
            {
                std::eprintln!(
                    "branch at {:#x}: flags {:?}: taken {t}, not taken {f}",
                    last.off(),
                    flags.map(|f| (alloc::format!("{}", f.a), alloc::format!("{}", f.b), f.bits))
                );
            }
            if !seen.is_empty() {
                // A bound on a symbol is also one on the locations holding it
                // (a loop's phi may be another name for the same counter).
                let mut also = Vec::new();
                for &(s, v) in &seen {
                    for (r, e) in st.regs.iter().enumerate() {
                        let e = st.normalize(e);
                        if let [(x, 1)] = e.terms()
                            && *x == s
                        {
                            also.push((value::loc_key(r), v.wrapping_add(e.c as u64)));
                        }
                    }
                }
                seen.extend(also);
                let mut th = self.thresholds.borrow_mut();
                for v in seen {
                    if let Err(i) = th.binary_search(&v) {
                        th.insert(i, v);
                    }
                }
            }
            return vec![t.then_some(taken), f.then_some(st)];
        }
        match block.succs.len() {
            0 => Vec::new(),
            1 => vec![Some(st)],
            _ => block.succs.iter().map(|_| Some(st.clone())).collect(),
        }
    }

    fn reg(&self, st: &State, r: Register) -> Expr {
        match gpr(r) {
            Some((i, 64)) => st.regs[i],
            Some((i, 32)) => zext(st, st.regs[i], 32),
            Some((i, bits)) => zext(st, st.regs[i], bits),
            None => Expr::TOP,
        }
    }

    /// Writes register operand `r` of instruction `idx` (result `k`).
    fn set(&self, st: &mut State, r: Register, v: Expr, idx: usize, k: usize, cycle: bool) {
        let Some((i, bits)) = gpr(r) else { return };
        let v = match bits {
            64 => v,
            32 => zext(st, v, 32),
            // A byte or word write keeps the register's other bits.
            _ => Expr::TOP,
        };
        // A fresh result: the value this instruction gave last time is gone.
        let v = if v.is_top() && bits >= 32 {
            self.fresh(
                st,
                idx,
                k,
                cycle,
                if bits == 32 {
                    Some(Range::new(0, u32::MAX as u64))
                } else {
                    None
                },
            )
        } else {
            v
        };
        st.regs[i] = v;
    }

    /// A new symbol for result `k` of instruction `idx`, with range `r`.
    fn fresh(&self, st: &mut State, idx: usize, k: usize, cycle: bool, r: Option<Range>) -> Expr {
        let s = value::def(idx, k);
        if cycle {
            st.kill(s);
        }
        if let Some(r) = r {
            st.set_range(s, r);
        }
        Expr::sym(s)
    }

    /// The address memory operand of `i` names.
    fn address(&self, st: &State, i: &Insn<'_>) -> Expr {
        let ins = &i.ins;
        if ins.memory_base() == Register::RIP {
            return match i.disp {
                Some(f) if f.pc_relative => f.value.offset((i.end() - f.offset) as i64),
                Some(_) => Expr::TOP,
                None => Expr::sym(value::section(self.image.text))
                    .offset(ins.memory_displacement64() as i64),
            };
        }
        let mut e = Expr::constant(0);
        if ins.memory_base() != Register::None {
            e = self.reg(st, ins.memory_base());
        }
        if ins.memory_index() != Register::None {
            e = e.add_scaled(
                &self.reg(st, ins.memory_index()),
                i64::from(ins.memory_index_scale()),
            );
        }
        match i.disp {
            Some(f) if !f.pc_relative => e.add(&f.value),
            Some(_) => Expr::TOP,
            None => e.offset(ins.memory_displacement64() as i64),
        }
    }

    /// Operand `k` of `i` as a value (a load reads memory).
    fn operand(&self, st: &mut State, i: &Insn<'_>, k: u32, idx: usize, cycle: bool) -> Expr {
        let ins = &i.ins;
        match ins.op_kind(k) {
            OpKind::Register => self.reg(st, ins.op_register(k)),
            OpKind::Memory => self.load(st, i, idx, cycle),
            OpKind::Immediate8to64
            | OpKind::Immediate32to64
            | OpKind::Immediate64
            | OpKind::Immediate32
            | OpKind::Immediate8to32
            | OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate8to16 => match i.imm {
                Some(f) if !f.pc_relative => f.value,
                Some(_) => Expr::TOP,
                None => {
                    let bits = ins.op0_register().size() as u32 * 8;
                    let v = ins.immediate(k);
                    Expr::constant(if bits == 32 || ins.op_kind(k) == OpKind::Immediate32 {
                        (v as u32) as i64
                    } else {
                        v as i64
                    })
                }
            },
            _ => Expr::TOP,
        }
    }

    /// A load through `i`'s memory operand: a stack slot's known value, the
    /// state's invariants word (noted), or something new.
    fn load(&self, st: &mut State, i: &Insn<'_>, idx: usize, cycle: bool) -> Expr {
        let addr = self.address(st, i);
        let size = i.ins.memory_size().size() as u64;
        if let [(s, 1)] = addr.terms()
            && *s == value::entry(RSP)
            && size == 8
            && let Some(v) = st.slot(addr.c)
        {
            return v;
        }
        let r = match size {
            1 | 2 | 4 => Some(Range::new(0, (1u64 << (8 * size)) - 1)),
            _ => None,
        };
        // Cranelift's constant pool: code bytes no relocation patches.
        if let [(s, 1)] = addr.terms()
            && *s == value::section(self.image.text)
            && matches!(size, 1 | 2 | 4 | 8)
            && addr.c >= 0
            && (addr.c as u64)
                .checked_add(size)
                .is_some_and(|e| e <= self.image.code.len() as u64)
            && self
                .image
                .fields_in(addr.c as u64 - (addr.c as u64).min(7), addr.c as u64 + size)
                .iter()
                .all(|f| f.offset + f.width <= addr.c as u64)
        {
            let mut b = [0u8; 8];
            b[..size as usize].copy_from_slice(
                &self.image.code[addr.c as usize..(addr.c as u64 + size) as usize],
            );
            return Expr::constant(u64::from_le_bytes(b) as i64);
        }
        if size == 8 && Some(addr) == self.rt.lo {
            // The window's low bound, which the kernel sets to the window
            // symbol's negation.
            return Expr::sym(value::WIN).scale(-1);
        }
        let v = self.fresh(st, idx, 1, cycle, r);
        if size == 8 && Some(addr) == self.rt.invariants {
            let s = value::def(idx, 1);
            if st.pristine {
                st.entry_inv = Some(s);
            }
            st.current_inv = Some(s);
        }
        v
    }

    fn step(&self, st: &mut State, idx: usize, cycle: bool, check: bool) -> Result<(), Reason> {
        let i = &self.insns[idx];
        let ins = &i.ins;
        let m = ins.mnemonic();
        let op0_mem = ins.op_count() > 0 && ins.op0_kind() == OpKind::Memory;
        // (One-operand `imul` reads its memory operand.)
        let writes_mem = op0_mem
            && known(m) == Some(Op0::Write)
            && !(m == Mnemonic::Imul && ins.op_count() == 1);
        let mut result: Result<(), Reason> = Ok(());
        if writes_mem {
            let addr = self.address(st, i);
            let len = ins.memory_size().size() as u64;
            let v = if m == Mnemonic::Mov {
                Some(self.operand(st, i, 1, idx, cycle))
            } else {
                None
            };
            result = self.store(st, &addr, len, v, check);
        }
        use Mnemonic::*;
        let flags_kept = matches!(
            m,
            Mov | Lea
                | Movzx
                | Movsx
                | Movsxd
                | Push
                | Pop
                | Nop
                | Pause
                | Jmp
                | Bswap
                | Xchg
                | Cdq
                | Cqo
                | Cdqe
                | Cwd
                | Cwde
                | Cbw
                | Mfence
                | Lfence
                | Sfence
        ) || matches!(
            m,
            Seta | Setae
                | Setb
                | Setbe
                | Sete
                | Setg
                | Setge
                | Setl
                | Setle
                | Setne
                | Setno
                | Setnp
                | Setns
                | Seto
                | Setp
                | Sets
        ) || matches!(
            m,
            Cmova
                | Cmovae
                | Cmovb
                | Cmovbe
                | Cmove
                | Cmovg
                | Cmovge
                | Cmovl
                | Cmovle
                | Cmovne
                | Cmovno
                | Cmovnp
                | Cmovns
                | Cmovo
                | Cmovp
                | Cmovs
        ) || is_branch(m);
        let old_flags = st.flags;
        let dst = if ins.op_count() > 0 && ins.op0_kind() == OpKind::Register {
            ins.op0_register()
        } else {
            Register::None
        };
        let bits = dst.size() as u32 * 8;
        match m {
            Mov | Movzx | Movsx | Movsxd if dst != Register::None => {
                let v = self.operand(st, i, 1, idx, cycle);
                let srcbits = match ins.op1_kind() {
                    OpKind::Register => ins.op1_register().size() as u32 * 8,
                    OpKind::Memory => ins.memory_size().size() as u32 * 8,
                    _ => bits,
                };
                let v = match m {
                    Movzx => zext(st, v, srcbits),
                    Movsx | Movsxd => {
                        // Sign extension is the identity on values below the sign bit.
                        let nonneg = st
                            .value_range(&v)
                            .is_some_and(|r| r.hi < 1u64 << (srcbits - 1));
                        if nonneg { v } else { Expr::TOP }
                    }
                    _ => v,
                };
                self.set(st, dst, v, idx, 0, cycle);
            }
            Lea => {
                let v = self.address(st, i);
                self.set(st, dst, v, idx, 0, cycle);
            }
            Add | Sub if dst != Register::None => {
                let a = self.reg(st, dst);
                let b = self.operand(st, i, 1, idx, cycle);
                let v = if m == Add { a.add(&b) } else { a.sub(&b) };
                let v = if bits == 64 {
                    v
                } else if bits == 32 {
                    fits32(st, v)
                } else {
                    Expr::TOP
                };
                self.set(st, dst, v, idx, 0, cycle);
            }
            Neg | Not if dst != Register::None && bits == 64 => {
                // -x, and !x = -x - 1: still linear.
                let a = self.reg(st, dst).scale(-1);
                let v = if m == Neg { a } else { a.offset(-1) };
                self.set(st, dst, v, idx, 0, cycle);
            }
            Xor | Sub
                if dst != Register::None
                    && ins.op1_kind() == OpKind::Register
                    && ins.op1_register() == dst =>
            {
                self.set(st, dst, Expr::constant(0), idx, 0, cycle);
            }
            And if dst != Register::None
                && bits == 64
                && ins.op1_kind() != OpKind::Register
                && (ins.immediate(1) as i64) < 0
                && (ins.immediate(1) as i64).wrapping_neg().count_ones() == 1 =>
            {
                // Alignment: `x & -2^k` is `x - t` with t = x mod 2^k.
                let a = self.reg(st, dst);
                let m = (ins.immediate(1) as i64).wrapping_neg() as u64;
                let t = self.fresh(st, idx, 1, cycle, Some(Range::new(0, m - 1)));
                let v = if a.is_top() { Expr::TOP } else { a.sub(&t) };
                self.set(st, dst, v, idx, 0, cycle);
            }
            And if dst != Register::None => {
                let b = self.operand(st, i, 1, idx, cycle);
                let a = self.reg(st, dst);
                let mut hi = match bits {
                    64 => u64::MAX,
                    32 => u32::MAX as u64,
                    _ => u64::MAX,
                };
                for x in [a, b] {
                    if let Some(r) = st.value_range(&x) {
                        hi = hi.min(r.hi);
                    }
                }
                let v = self.fresh(st, idx, 0, cycle, Some(Range::new(0, hi)));
                if bits >= 32 {
                    st.regs[gpr(dst).unwrap().0] = v;
                } else {
                    self.set(st, dst, Expr::TOP, idx, 0, cycle);
                }
            }
            Shl if dst != Register::None && ins.op1_kind() != OpKind::Register => {
                let a = self.reg(st, dst);
                let k = ins.immediate(1) as u32 & 63;
                let v = if bits == 64 {
                    a.scale(1i64 << k)
                } else if bits == 32 {
                    fits32(st, a.scale(1i64 << k))
                } else {
                    Expr::TOP
                };
                self.set(st, dst, v, idx, 0, cycle);
            }
            Shr if dst != Register::None && ins.op1_kind() != OpKind::Register => {
                let a = self.reg(st, dst);
                let k = ins.immediate(1) as u32 & 63;
                let top = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                let hi = st.value_range(&a).map_or(top, |r| r.hi.min(top)) >> k;
                if bits >= 32 {
                    let v = self.fresh(st, idx, 0, cycle, Some(Range::new(0, hi)));
                    st.regs[gpr(dst).unwrap().0] = v;
                } else {
                    self.set(st, dst, Expr::TOP, idx, 0, cycle);
                }
            }
            Imul if ins.op_count() == 3 => {
                let a = self.operand(st, i, 1, idx, cycle);
                let k = ins.immediate(2) as i64;
                let v = if bits == 64 {
                    a.scale(k)
                } else if bits == 32 {
                    fits32(st, a.scale(k))
                } else {
                    Expr::TOP
                };
                self.set(st, dst, v, idx, 0, cycle);
            }
            Imul if ins.op_count() == 2 => {
                let a = self.reg(st, dst);
                let b = self.operand(st, i, 1, idx, cycle);
                let v = match (a.as_const(), b.as_const()) {
                    (_, Some(k)) => a.scale(k),
                    (Some(k), _) => b.scale(k),
                    _ => Expr::TOP,
                };
                let v = if bits == 64 {
                    v
                } else if bits == 32 {
                    fits32(st, v)
                } else {
                    Expr::TOP
                };
                self.set(st, dst, v, idx, 0, cycle);
            }
            Cmp | Test => {
                let a = self.operand(st, i, 0, idx, cycle);
                let b = self.operand(st, i, 1, idx, cycle);
                let w = if op0_mem {
                    ins.memory_size().size() as u32 * 8
                } else {
                    bits
                };
                st.flags = if m == Cmp {
                    Some(Flags { a, b, bits: w })
                } else if ins.op0_kind() == OpKind::Register
                    && ins.op1_kind() == OpKind::Register
                    && ins.op0_register() == ins.op1_register()
                {
                    Some(Flags {
                        a,
                        b: Expr::constant(0),
                        bits: w,
                    })
                } else {
                    None
                };
                return result;
            }
            Push => {
                let v = self.operand(st, i, 0, idx, cycle);
                let sp = st.regs[RSP].offset(-8);
                let r = self.store(st, &sp, 8, Some(v), check);
                result = result.and(r);
                st.regs[RSP] = sp;
                result = result.and(self.stack_pointer(st));
            }
            Pop => {
                let sp = st.regs[RSP];
                let v = match sp.terms() {
                    [(s, 1)] if *s == value::entry(RSP) => st.slot(sp.c).unwrap_or(Expr::TOP),
                    _ => Expr::TOP,
                };
                st.regs[RSP] = sp.offset(8);
                result = result.and(self.stack_pointer(st));
                if dst != Register::None {
                    self.set(st, dst, v, idx, 0, cycle);
                }
            }
            Xchg if !op0_mem && ins.op1_kind() == OpKind::Register => {
                let (a, b) = (self.reg(st, dst), self.reg(st, ins.op1_register()));
                self.set(st, dst, b, idx, 0, cycle);
                self.set(st, ins.op1_register(), a, idx, 1, cycle);
            }
            Xchg | Xadd | Cmpxchg => {
                // The register operand (and for cmpxchg rax) gets memory's old value.
                for k in 0..ins.op_count() {
                    if ins.op_kind(k) == OpKind::Register {
                        self.set(
                            st,
                            ins.op_register(k),
                            Expr::TOP,
                            idx,
                            k as usize & 1,
                            cycle,
                        );
                    }
                }
                if m == Cmpxchg {
                    st.regs[0] = self.fresh(st, idx, 1, cycle, None);
                }
            }
            Cdq | Cqo | Cwd => st.regs[2] = self.fresh(st, idx, 0, cycle, None),
            Cdqe | Cwde | Cbw => st.regs[0] = self.fresh(st, idx, 0, cycle, None),
            Mul | Div | Idiv | Imul => {
                // A byte-sized operand writes ax only; wider ones rdx:rax.
                let width = if op0_mem {
                    ins.memory_size().size()
                } else {
                    ins.op0_register().size()
                };
                st.regs[0] = self.fresh(st, idx, 0, cycle, None);
                if width > 1 {
                    st.regs[2] = self.fresh(st, idx, 1, cycle, None);
                }
            }
            Bsf | Bsr | Lzcnt | Tzcnt | Popcnt => {
                let v = self.fresh(st, idx, 0, cycle, Some(Range::new(0, 64)));
                st.regs[gpr(dst).map_or(0, |g| g.0)] = v;
            }
            Call => result = result.and(self.call(st, i, idx, cycle, check)),
            Ret | Jmp | Ud2 | Nop | Pause | Mfence | Lfence | Sfence | Bt => {}
            _ if is_branch(m) => {}
            _ => {
                // Everything else writes its first operand with a value the
                // verifier does not follow.
                if dst != Register::None {
                    self.set(st, dst, Expr::TOP, idx, 0, cycle);
                }
                if m == Mulx && ins.op1_kind() == OpKind::Register {
                    self.set(st, ins.op1_register(), Expr::TOP, idx, 1, cycle);
                }
            }
        }
        if dst != Register::None && gpr(dst).is_some_and(|g| g.0 == RSP) && !matches!(m, Push | Pop)
        {
            result = result.and(self.stack_pointer(st));
        }
        st.flags = if flags_kept { old_flags } else { None };
        if m == Call {
            st.flags = None;
        }
        result
    }

    /// The stack pointer must stay `S0 + c` with `-MAX_FRAME <= c <= 0`.
    fn stack_pointer(&self, st: &State) -> Result<(), Reason> {
        let sp = st.regs[RSP];
        match sp.terms() {
            [(s, 1)]
                if *s == value::entry(RSP) && sp.c <= 0 && sp.c >= -(abi::MAX_FRAME as i64) =>
            {
                Ok(())
            }
            _ => Err(Reason::StackPointer),
        }
    }

    /// A store of `len` bytes at `addr` (value `v`): proves it and notes it.
    fn store(
        &self,
        st: &mut State,
        addr: &Expr,
        len: u64,
        v: Option<Expr>,
        check: bool,
    ) -> Result<(), Reason> {
        if let [(s, 1)] = addr.terms()
            && *s == value::entry(RSP)
        {
            let off = addr.c;
            if off >= -(abi::MAX_FRAME as i64) && off + len as i64 <= 0 {
                st.store_stack(off, len as i64, v);
                return Ok(());
            }
            return Err(Reason::StackStore);
        }
        if self.rt.invariants.is_some_and(|w| {
            let d = addr.sub(&w);
            d.as_const().is_some_and(|d| d > -(len as i64) && d < 8)
        }) {
            // The interrupt flag changes: the entry's invariants are stale.
            st.pristine = false;
            st.current_inv = None;
            st.inv_ok = false;
        }
        if !check || self.covered(st, addr, len) {
            return Ok(());
        }
        Err(Reason::UncheckedStore(len))
    }

    /// `addr - base`'s constant part plus the ranges of its other terms, as
    /// an interval; `None` if some other term has no range.
    fn spread(st: &State, addr: &Expr, base: &Expr) -> Option<(i128, i128)> {
        st.interval(&addr.sub(base))
    }

    /// Whether `[addr, addr + len)` is known writable: inside a window
    /// check's range, the object's writable data, or the state fields the
    /// code may write.
    fn covered(&self, st: &State, addr: &Expr, len: u64) -> bool {
        if addr.is_top() {
            return false;
        }
        let len = i128::from(len);
        for f in &st.facts {
            if let Some((lo, hi)) = Self::spread(st, addr, &f.base)
                && inside(lo, hi, len, i128::from(f.lo), i128::from(f.hi))
            {
                return true;
            }
        }
        for &(s, k) in addr.terms() {
            if k != 1 {
                continue;
            }
            let allowed: &[(u64, u64)] = match value::kind(s) {
                value::Kind::Section(i) => {
                    match self.image.object.sections.get(i).and_then(|x| x.area) {
                        Some(Area::Data) => &[(0, self.image.object.sections[i].size)][..],
                        Some(Area::Runtime) => {
                            let v: Vec<(u64, u64)> = self
                                .rt
                                .writable_state
                                .iter()
                                .filter(|w| w.0 == i)
                                .map(|w| (w.1, w.2))
                                .collect();
                            if let Some((lo, hi)) = Self::spread(st, addr, &Expr::sym(s)) {
                                if v.iter()
                                    .any(|w| inside(lo, hi, len, i128::from(w.0), i128::from(w.1)))
                                {
                                    return true;
                                }
                            }
                            continue;
                        }
                        _ => continue,
                    }
                }
                value::Kind::Common(i) => &[(0, self.image.object.symbols[i].size)][..],
                _ => continue,
            };
            if let Some((lo, hi)) = Self::spread(st, addr, &Expr::sym(s))
                && allowed
                    .iter()
                    .any(|w| inside(lo, hi, len, i128::from(w.0), i128::from(w.1)))
            {
                return true;
            }
        }
        false
    }

    fn call(
        &self,
        st: &mut State,
        i: &Insn<'_>,
        idx: usize,
        cycle: bool,
        check: bool,
    ) -> Result<(), Reason> {
        let ins = &i.ins;
        // The return address goes below the stack pointer.
        let sp = st.regs[RSP].offset(-8);
        self.store(st, &sp, 8, None, check)?;
        let callee = if ins.op0_kind() == OpKind::NearBranch64 {
            let target = match i.imm {
                Some(f) => f.value.offset((i.end() - f.offset) as i64),
                None => Expr::sym(value::section(self.image.text))
                    .offset(ins.near_branch_target() as i64),
            };
            match target.terms() {
                [(s, 1)] if *s == value::section(self.image.text) => {
                    let at = target.c as u64;
                    if Some(at) == self.rt.slow {
                        Callee::Slow
                    } else if Some(at) == self.rt.check_call {
                        Callee::CheckCall
                    } else if self.image.function_at(at).is_some() {
                        Callee::SysV
                    } else {
                        return Err(Reason::BadCallTarget);
                    }
                }
                [(s, 1)] if target.c == 0 && matches!(value::kind(*s), value::Kind::Import(_)) => {
                    Callee::SysV
                }
                _ => return Err(Reason::BadCallTarget),
            }
        } else if ins.op0_kind() == OpKind::Register {
            let t = self.reg(st, ins.op0_register());
            match t.as_sym() {
                Some(s) if st.targets.contains(&s) => Callee::SysV,
                _ if check => return Err(Reason::UncheckedCall),
                _ => Callee::SysV,
            }
        } else {
            return Err(Reason::UncheckedCall);
        };
        match callee {
            Callee::Slow => {
                let (a, n) = (st.regs[RDI], st.regs[RSI]);
                if a.coeff(value::WIN) == 1
                    && let Some(n) = n.as_const()
                    && n > 0
                {
                    let x = a.without(value::WIN);
                    st.add_fact(x, x.c, x.c.saturating_add(n));
                }
                return Ok(());
            }
            Callee::CheckCall => {
                if let Some(s) = st.regs[RDI].as_sym() {
                    st.targets.push(s);
                }
            }
            Callee::SysV => {
                st.pristine = false;
                st.current_inv = None;
                st.inv_ok = false;
            }
        }
        for (k, &r) in CALLER_SAVED.iter().enumerate() {
            st.regs[r] = match k {
                0 => self.fresh(st, idx, 0, cycle, None),
                2 => self.fresh(st, idx, 1, cycle, None),
                _ => Expr::TOP,
            };
        }
        Ok(())
    }

    fn ret(&self, st: &State) -> Result<(), Reason> {
        if st.regs[RSP] != Expr::sym(value::entry(RSP)) {
            return Err(Reason::StackPointer);
        }
        for r in CALLEE_SAVED {
            if st.regs[r] != Expr::sym(value::entry(r)) {
                return Err(Reason::CalleeSaved(r));
            }
        }
        if self.entry && !(st.pristine || st.inv_ok) {
            return Err(Reason::MissingInvariantCheck);
        }
        Ok(())
    }
}

/// Whether offsets `[lo, hi + len)` lie in `[wlo, whi)`, addresses being
/// taken modulo 2^64 (a constant address is a large unsigned number on one
/// side and a negative offset on the other).
fn inside(lo: i128, hi: i128, len: i128, wlo: i128, whi: i128) -> bool {
    let from = (lo - wlo).rem_euclid(1 << 64);
    hi >= lo && whi > wlo && from + (hi - lo) + len <= whi - wlo
}

/// Whether a state entering a loop names its values differently than the
/// one before (not merely knowing more or less about them).
fn renamed(old: Option<&State>, new: Option<&State>) -> bool {
    let (Some(a), Some(b)) = (old, new) else {
        return false;
    };
    a.regs
        .iter()
        .zip(&b.regs)
        .any(|(x, y)| x.symbolic() != y.symbolic())
        || a.slots.len() != b.slots.len()
        || a.slots
            .iter()
            .zip(&b.slots)
            .any(|(x, y)| x.0 != y.0 || x.1.symbolic() != y.1.symbolic())
}

/// The edges (from, to) a depth-first search from the entry takes to a block
/// it has not finished: each closes a loop headed by `to`.
fn back_edges(blocks: &[Block]) -> Vec<(usize, usize)> {
    // 0: unseen, 1: open, 2: done
    let mut mark = vec![0u8; blocks.len()];
    let mut out = Vec::new();
    let mut walk = vec![(0usize, 0usize)];
    if blocks.is_empty() {
        return out;
    }
    mark[0] = 1;
    while let Some(&mut (v, ref mut k)) = walk.last_mut() {
        if let Some(&w) = blocks[v].succs.get(*k) {
            *k += 1;
            match mark[w] {
                0 => {
                    mark[w] = 1;
                    walk.push((w, 0));
                }
                1 => out.push((v, w)),
                _ => {}
            }
            continue;
        }
        mark[v] = 2;
        walk.pop();
    }
    out
}

/// The blocks that lie on a cycle of the control-flow graph.
fn cyclic(blocks: &[Block]) -> Vec<usize> {
    let n = blocks.len();
    let (mut index, mut low) = (vec![u32::MAX; n], vec![0u32; n]);
    let mut on = vec![false; n];
    let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0u32);
    for root in 0..n {
        if index[root] != u32::MAX {
            continue;
        }
        // (block, next successor to look at)
        let mut walk = vec![(root, 0usize)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on[root] = true;
        while let Some(&mut (v, ref mut k)) = walk.last_mut() {
            if let Some(&w) = blocks[v].succs.get(*k) {
                *k += 1;
                if index[w] == u32::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on[w] = true;
                    walk.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            walk.pop();
            if let Some(&(u, _)) = walk.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut members = Vec::new();
                while let Some(w) = stack.pop() {
                    on[w] = false;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                let self_loop = blocks[v].succs.contains(&v);
                if members.len() > 1 || self_loop {
                    out.extend(members);
                }
            }
        }
    }
    out
}

/// `v` as the zero-extension of its low `bits` bits: itself if its range
/// fits, else unknown.
fn zext(st: &State, v: Expr, bits: u32) -> Expr {
    if bits >= 64 {
        return v;
    }
    match st.value_range(&v) {
        Some(r) if r.hi < 1u64 << bits => v,
        _ => Expr::TOP,
    }
}

/// A 32-bit result: `v` if it provably fits, else unknown.
fn fits32(st: &State, v: Expr) -> Expr {
    zext(st, v, 32)
}

/// Narrows `st` to the states where condition `cc` of its flags holds;
/// false if there are none.
fn refine(st: &mut State, cc: ConditionCode, seen: &mut Vec<(Sym, u64)>) -> bool {
    use ConditionCode as C;
    let Some(mut f) = st.flags else { return true };
    f.a = st.normalize(&f.a);
    f.b = st.normalize(&f.b);
    // The invariants word now equals its value at entry.
    if cc == C::e
        && f.bits == 64
        && let (Some(a), Some(b), Some(e), Some(c)) =
            (f.a.as_sym(), f.b.as_sym(), st.entry_inv, st.current_inv)
        && ((a, b) == (e, c) || (a, b) == (c, e))
    {
        st.inv_ok = true;
    }
    // Signed conditions are unsigned ones on values below the sign bit.
    let cc = match cc {
        C::l | C::ge | C::le | C::g => {
            let half = 1u64 << (f.bits - 1);
            let small = |e: &Expr| st.value_range(e).is_some_and(|r| r.hi < half);
            if !(small(&f.a) && small(&f.b)) {
                return true;
            }
            match cc {
                C::l => C::b,
                C::ge => C::ae,
                C::le => C::be,
                _ => C::a,
            }
        }
        C::b | C::ae | C::be | C::a | C::e | C::ne => cc,
        _ => return true,
    };
    if f.bits < 64 {
        let top = (1u64 << f.bits) - 1;
        let fits = |e: &Expr| st.value_range(e).is_some_and(|r| r.hi <= top);
        if !(fits(&f.a) && fits(&f.b)) {
            return true;
        }
    }
    // A window check: `off = addr - lo` below a constant.
    if f.bits == 64
        && f.a.coeff(value::WIN) == 1
        && let Some(k) = f.b.as_const()
    {
        let k = k as u64;
        let below = match cc {
            C::b => Some(k),
            C::be => k.checked_add(1),
            _ => None,
        };
        if let Some(k) = below
            && k >= 1
            && k <= layout::SPAN + 1
        {
            let x = f.a.without(value::WIN);
            st.add_fact(x, x.c, x.c + (layout::SPAN + 1 - k) as i64);
        }
    }
    // Same symbols on both sides: the constant difference decides (in)equality.
    let d = f.a.sub(&f.b);
    if let Some(d) = d.as_const() {
        return match cc {
            C::e => d == 0,
            C::ne => d != 0,
            _ => true,
        };
    }
    // `a` against `b`'s range, and `b` against `a`'s.
    let (ra, rb) = (st.value_range(&f.a), st.value_range(&f.b));
    let ok_a = narrow(st, &f.a, cc, rb.unwrap_or(Range::FULL), rb.is_some(), seen);
    let flipped = match cc {
        C::b => C::a,
        C::a => C::b,
        C::be => C::ae,
        C::ae => C::be,
        x => x,
    };
    let ok_b = narrow(
        st,
        &f.b,
        flipped,
        ra.unwrap_or(Range::FULL),
        ra.is_some(),
        seen,
    );
    // One extra symbol against the same base: `p + c1 ?= c2` bounds p.
    if matches!(cc, C::e | C::ne)
        && let [(s, k @ (1 | -1))] = d.terms()
        && let Some(r) = st.range(*s)
    {
        let v = if *k == 1 {
            (d.c as u64).wrapping_neg()
        } else {
            d.c as u64
        };
        seen.push((*s, v));
        let n = if cc == C::e {
            r.within(v, v)
        } else {
            r.without(v)
        };
        match n {
            Some(n) => st.set_range(*s, n),
            None => return false,
        }
    }
    ok_a && ok_b
}

/// Narrows the symbol of `e` (`s + c`) by `e cc other` with `other` in `r`.
/// The bounds it finds are noted in `seen` (widening's thresholds for the symbol).
fn narrow(
    st: &mut State,
    e: &Expr,
    cc: ConditionCode,
    r: Range,
    known: bool,
    seen: &mut Vec<(Sym, u64)>,
) -> bool {
    use ConditionCode as C;
    let [(s, 1)] = e.terms() else { return true };
    let cur = match st.range(*s) {
        Some(x) => match x.affine(1, e.c) {
            Some(v) => v,
            None => return true,
        },
        None if e.c == 0 => Range::FULL,
        None => return true,
    };
    let new = match cc {
        C::b if r.hi == 0 => None,
        C::b => cur.within(0, r.hi - 1),
        C::be => cur.within(0, r.hi),
        C::a if r.lo == u64::MAX => None,
        C::a => cur.within(r.lo + 1, u64::MAX),
        C::ae => cur.within(r.lo, u64::MAX),
        C::e if known => cur.within(r.lo, r.hi),
        C::ne if known && r.lo == r.hi => cur.without(r.lo),
        _ => Some(cur),
    };
    match new {
        None => false,
        Some(n) => {
            let back = n.affine(1, e.c.wrapping_neg()).or((e.c == 0).then_some(n));
            if let Some(back) = back {
                if back.hi != u64::MAX && !matches!(cc, C::e | C::ne) {
                    seen.extend([(*s, back.hi), (*s, back.hi + back.stride.min(1))]);
                }
                st.set_range(*s, back);
            }
            true
        }
    }
}
