//! Stage 3, lift: one function's x86-64 instructions into Cranelift IR.
//!
//! - Registers are `cranelift-frontend` Variables (i64); partial-register
//!   writes merge exactly (8/16-bit) or zero-extend (32-bit).
//! - Flags are i8 Variables computed at each flag-setting instruction; a
//!   consumer in the same block reads the producer's operands directly instead
//!   (a `cmp`+`jl` becomes one `icmp slt`), and Cranelift's optimiser drops the
//!   flag computations nobody reads.
//! - The original frame lives on the emulated stack: RSP is a Variable; the
//!   inner function receives the caller's emulated RSP as its first argument.
//!   Real return addresses never sit in emulated-stack memory.
//! - Every store goes through [`Lifter::store`]; the SFI pass (`instrument`)
//!   is a separate pass over the finished IR.

use crate::HashMap;
use crate::decode::{Decoded, Insn, error_at};
use crate::error::{ErrorKind, Result, RewriteError};
use crate::read::{Function, Input, Kind};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I8, I16, I32, I64};
use cranelift_codegen::ir::{
    self, AtomicRmwOp, Block, InstBuilder, MemFlagsData, TrapCode, Value, types,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{DataId, FuncId, Module};
use iced_x86::{ConditionCode, Mnemonic, OpKind, Register};
use nooks_policy::abi::reloc::{
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32,
};

/// Number of caller stack words a native entry copies onto the emulated stack
/// (and a call to native code passes): 12 words, i.e. 18 integer arguments.
pub const STACK_ARGS: usize = nooks_policy::abi::STACK_ARGS;

/// What the lifter needs to know about the whole object.
pub struct Env<'a> {
    /// The parsed input.
    pub input: &'a Input,
    /// The unique name each function is declared under, by symbol index (its
    /// own, unless another function has it too).
    pub names: HashMap<usize, String>,
    /// Native (SysV) entry of each function, by symbol index.
    pub native: HashMap<usize, FuncId>,
    /// Inner entry of each function some rewritten code calls, by symbol
    /// index: declared by the first call lifted (see `Entry`).
    pub inner: std::cell::RefCell<HashMap<usize, FuncId>>,
    /// Function symbol at (section, offset).
    pub func_at: HashMap<(usize, u64), usize>,
    /// Imported functions by name.
    pub import_funcs: HashMap<String, FuncId>,
    /// Imported data by name.
    pub import_data: HashMap<String, DataId>,
    /// Carried-over data sections (and COMMON blocks, by symbol), by index.
    pub sections: HashMap<usize, DataId>,
    /// COMMON symbols' data objects.
    pub commons: HashMap<usize, DataId>,
    /// `__nooks_esp`: the emulated stack pointer at the native boundary.
    pub esp: DataId,
    /// The SFI runtime, with `--isolation sfi`.
    pub sfi: Option<crate::instrument::Runtime>,
    /// I/O port ranges the policy allows (inclusive).
    pub ports: &'a [(u16, u16)],
}

/// A reference to something the rewritten code addresses.
#[derive(Debug, Clone, Copy)]
enum Target {
    Func(usize),
    ImportFunc(FuncId),
    Data(DataId, i64),
}

#[derive(Clone, Copy)]
enum Producer {
    /// a - b (cmp, sub): every condition is one icmp.
    Sub { a: Value, b: Value },
    /// A logical result (and, or, xor, test): CF = OF = 0.
    Logic { res: Value },
    /// inc/dec: ZF and SF from the result; CF untouched.
    ZeroSign { res: Value },
}

struct Flags {
    cf: Variable,
    zf: Variable,
    sf: Variable,
    of: Variable,
    pf: Variable,
}

/// Lifts one function.
pub struct Lifter<'a, 'b, M: Module> {
    b: FunctionBuilder<'b>,
    env: &'a Env<'a>,
    module: &'a mut M,
    f: &'a Function,
    regs: [Variable; 16],
    flags: Flags,
    producer: Option<Producer>,
    blocks: HashMap<u64, Block>,
    terminated: bool,
    funcs: HashMap<FuncId, ir::FuncRef>,
    /// Imported functions whose address is taken (not colocated: see
    /// `target_value`).
    import_addrs: HashMap<FuncId, ir::FuncRef>,
    datas: HashMap<(DataId, i64), ir::GlobalValue>,
    native_sig: ir::SigRef,
    /// The value of every register the caller does not pass, at entry.
    undefined: Option<Value>,
    /// The stores of `push`es, with the value pushed.
    pushes: Vec<(ir::Inst, Value)>,
    /// The loads of `pop`s.
    pops: Vec<ir::Inst>,
    /// Stores emitted (statistics).
    pub stores: usize,
    /// For a body entered from native code: what its returns restore.
    native: Option<NativeFrame>,
    /// Its returns' invariant checks (the branch, and where it continues).
    invariant_checks: Vec<(ir::Inst, Block)>,
    /// Whether it writes the virtual interrupt flag (`cli`, `sti`, `popf`).
    writes_vif: bool,
    /// The function's jump tables (see `decode`).
    tables: Vec<crate::decode::JumpTable>,
    /// The last entry loaded from a jump table into a register (`mov reg,
    /// [table + idx*8]`, as gcc writes it at -O0): the register, the value
    /// loaded, the table and the index, for the `jmp reg` that follows.
    table_load: Option<(usize, Value, usize, Value)>,
}

/// The trap of a jump-table index past the table's end (gcc's own bounds
/// check precedes every table jump, so only a corrupted index gets here).
const TRAP_JUMP_TABLE: u8 = 5;

/// What lifting a body gave besides the body.
pub struct Lifted {
    /// Stores emitted (statistics).
    pub stores: usize,
    /// The emulated stack pointer the frame hangs from: the inner entry's
    /// parameter, or the `__nooks_esp` a natively entered body loaded. The
    /// optimiser keeps either value (a parameter, a load's result), so the
    /// SFI pass finds the frame's stores by it.
    pub frame_root: Value,
}

/// How a lifted body is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Through the inner signature (`inner_signature`), from rewritten code
    /// or from its own native entry (`native_entry`).
    Inner,
    /// Straight from native code, with the SysV signature, for a function
    /// nothing rewritten calls: the body itself takes its emulated frame
    /// below `__nooks_esp` and copies `stack_words` stack arguments there,
    /// and every return gives the frame back (and checks the lock count and
    /// interrupt flag under SFI) — the work of a separate native entry,
    /// without its call, its frame and its saved registers.
    Native {
        /// How many of the caller's stack words the body may read.
        stack_words: usize,
    },
}

/// What a natively entered body keeps from its entry for its returns.
#[derive(Clone, Copy)]
struct NativeFrame {
    /// `__nooks_esp` at entry.
    esp0: Value,
    /// Under SFI: the lock count and the virtual interrupt flag at entry (one
    /// word).
    sfi: Option<Value>,
}

fn ty_of(bytes: usize) -> types::Type {
    match bytes {
        1 => I8,
        2 => I16,
        4 => I32,
        _ => I64,
    }
}

fn reg_index(r: Register) -> Option<usize> {
    let full = r.full_register();
    let order = [
        Register::RAX,
        Register::RCX,
        Register::RDX,
        Register::RBX,
        Register::RSP,
        Register::RBP,
        Register::RSI,
        Register::RDI,
        Register::R8,
        Register::R9,
        Register::R10,
        Register::R11,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ];
    order.iter().position(|&x| x == full)
}

const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RSP: usize = 4;
const RBP: usize = 5;
const RSI: usize = 6;
const RDI: usize = 7;
const R8: usize = 8;
const R9: usize = 9;
const ARG_REGS: [usize; 6] = [RDI, RSI, RDX, RCX, R8, R9];

/// The SysV signature of a native entry: 6 register + STACK_ARGS stack words in, rax:rdx out.
pub fn native_signature(call_conv: cranelift_codegen::isa::CallConv) -> ir::Signature {
    let mut sig = ir::Signature::new(call_conv);
    for _ in 0..6 + STACK_ARGS {
        sig.params.push(ir::AbiParam::new(I64));
    }
    sig.returns.push(ir::AbiParam::new(I64));
    sig.returns.push(ir::AbiParam::new(I64));
    sig
}

/// The signature of a kernel export the policy knows takes `args` <= 6
/// arguments: those argument registers only, so a call to it copies no stack
/// arguments and keeps no other register alive for it (variadic `printk` and
/// unknown imports keep the full one).
pub fn register_signature(
    call_conv: cranelift_codegen::isa::CallConv,
    args: usize,
) -> ir::Signature {
    let mut sig = ir::Signature::new(call_conv);
    for _ in 0..args.min(6) {
        sig.params.push(ir::AbiParam::new(I64));
    }
    sig.returns.push(ir::AbiParam::new(I64));
    sig.returns.push(ir::AbiParam::new(I64));
    sig
}

/// Whether import `name` is a kernel export known to take at most six
/// arguments and no variable list.
pub fn register_only(name: &str) -> Option<usize> {
    nooks_policy::export(name)
        .filter(|e| e.args <= 6 && name != "printk")
        .map(|e| usize::from(e.args))
}

/// The index of the emulated RSP among an inner entry's parameters.
pub const INNER_SP: usize = 6;
/// The index of RAX among an inner entry's parameters.
const INNER_RAX: usize = 7;

/// The signature of an inner entry: the 6 argument registers, the emulated
/// RSP and RAX in, rax:rdx out. The argument registers come first, in the
/// SysV order, so a native entry passes its own arguments on in place (only
/// the stack pointer and RAX travel on the native stack). RAX goes in
/// because a callee that never writes it must return the caller's: gcc's
/// interprocedural register allocation (`-fipa-ra`, on at -O2 and -Os) keeps
/// values in caller-saved registers across calls to local functions that
/// leave them alone — RDX passes through as an argument register, the
/// others are never touched by a call.
pub fn inner_signature(call_conv: cranelift_codegen::isa::CallConv) -> ir::Signature {
    let mut sig = ir::Signature::new(call_conv);
    for _ in 0..8 {
        sig.params.push(ir::AbiParam::new(I64));
    }
    sig.returns.push(ir::AbiParam::new(I64));
    sig.returns.push(ir::AbiParam::new(I64));
    sig
}

fn mem() -> MemFlagsData {
    MemFlagsData::new()
}

impl<'a, 'b, M: Module> Lifter<'a, 'b, M> {
    /// Prepares a lifter writing into `b`.
    pub fn new(
        mut b: FunctionBuilder<'b>,
        env: &'a Env<'a>,
        module: &'a mut M,
        f: &'a Function,
    ) -> Self {
        let regs = std::array::from_fn(|_| b.declare_var(I64));
        let flags = Flags {
            cf: b.declare_var(I8),
            zf: b.declare_var(I8),
            sf: b.declare_var(I8),
            of: b.declare_var(I8),
            pf: b.declare_var(I8),
        };
        let call_conv = module.isa().default_call_conv();
        let native_sig = b.import_signature(native_signature(call_conv));
        Lifter {
            b,
            env,
            module,
            f,
            regs,
            flags,
            producer: None,
            blocks: HashMap::default(),
            terminated: false,
            funcs: HashMap::default(),
            import_addrs: HashMap::default(),
            datas: HashMap::default(),
            native_sig,
            undefined: None,
            pushes: Vec::new(),
            pops: Vec::new(),
            stores: 0,
            native: None,
            invariant_checks: Vec::new(),
            writes_vif: false,
            tables: Vec::new(),
            table_load: None,
        }
    }

    fn err(&self, insn: &Insn, kind: ErrorKind) -> RewriteError {
        error_at(self.env.input, self.f, insn.ip, Some(&insn.instr), kind)
    }

    fn unsupported(&self, insn: &Insn) -> RewriteError {
        self.err(insn, ErrorKind::UnsupportedInstruction)
    }

    fn func_ref(&mut self, id: FuncId) -> ir::FuncRef {
        if let Some(r) = self.funcs.get(&id) {
            return *r;
        }
        let r = self.module.declare_func_in_func(id, self.b.func);
        // Imports too are called with `call rel32` (an R_X86_64_PLT32): the
        // kernel's exports lie within 2 GiB of every domain window (the
        // loader refuses an object whose calls would not reach), and a host
        // link resolves them through its PLT.
        self.b.func.dfg.ext_funcs[r].colocated = true;
        self.funcs.insert(id, r);
        r
    }

    fn data_gv(&mut self, id: DataId) -> ir::GlobalValue {
        if let Some(g) = self.datas.get(&(id, 0)) {
            return *g;
        }
        let g = self.module.declare_data_in_func(id, self.b.func);
        self.datas.insert((id, 0), g);
        g
    }

    /// `id + offset` as one symbol (the relocation carries the offset): an
    /// add of a constant would be recomputed in every block that uses it
    /// (Cranelift rematerialises those), inside loops too, where a symbol's
    /// address is computed once, before the loop.
    fn data_gv_at(&mut self, id: DataId, offset: i64) -> ir::GlobalValue {
        if let Some(g) = self.datas.get(&(id, offset)) {
            return *g;
        }
        let base = self.data_gv(id);
        let mut data = self.b.func.global_values[base].clone();
        if let ir::GlobalValueData::Symbol { offset: o, .. } = &mut data {
            *o = ir::immediates::Imm64::new(offset);
        }
        let g = self.b.create_global_value(data);
        self.datas.insert((id, offset), g);
        g
    }

    // ---- registers ---------------------------------------------------------

    fn get64(&mut self, i: usize) -> Value {
        self.b.use_var(self.regs[i])
    }

    fn set64(&mut self, i: usize, v: Value) {
        self.b.def_var(self.regs[i], v);
    }

    fn read_reg(&mut self, r: Register) -> Option<Value> {
        let i = reg_index(r)?;
        let full = self.get64(i);
        let size = r.size();
        let high = matches!(r, Register::AH | Register::BH | Register::CH | Register::DH);
        Some(match (size, high) {
            (8, _) => full,
            (1, true) => {
                let s = self.b.ins().ushr_imm_u(full, 8);
                self.b.ins().ireduce(I8, s)
            }
            (n, _) => self.b.ins().ireduce(ty_of(n), full),
        })
    }

    fn write_reg(&mut self, r: Register, v: Value) -> Option<()> {
        let i = reg_index(r)?;
        let size = r.size();
        let high = matches!(r, Register::AH | Register::BH | Register::CH | Register::DH);
        let v = match (size, high) {
            (8, _) => v,
            (4, _) => self.b.ins().uextend(I64, v),
            (n, high) => {
                let old = self.get64(i);
                let wide = self.b.ins().uextend(I64, v);
                let (mask, shifted) = if high {
                    (!0xff00i64, self.b.ins().ishl_imm_u(wide, 8))
                } else {
                    (!((1i64 << (8 * n)) - 1), wide)
                };
                let kept = self.b.ins().band_imm_s(old, mask);
                self.b.ins().bor(kept, shifted)
            }
        };
        self.set64(i, v);
        Some(())
    }

    // ---- addresses and operands --------------------------------------------

    fn target(&self, insn: &Insn, symbol: usize, offset: i64) -> Result<Target> {
        let input = self.env.input;
        let s = input
            .symbols
            .get(symbol)
            .ok_or_else(|| self.err(insn, ErrorKind::BadInput("bad symbol index".into())))?;
        if s.is_undefined {
            if let Some(id) = self.env.import_funcs.get(&s.name) {
                if offset != 0 {
                    return Err(self.err(
                        insn,
                        ErrorKind::UnsupportedRelocation(format!(
                            "offset {offset} into function {}",
                            s.name
                        )),
                    ));
                }
                return Ok(Target::ImportFunc(*id));
            }
            let id = self.env.import_data.get(&s.name).ok_or_else(|| {
                self.err(
                    insn,
                    ErrorKind::UnsupportedRelocation(format!("unknown import {}", s.name)),
                )
            })?;
            return Ok(Target::Data(*id, offset));
        }
        if s.is_common {
            return Ok(Target::Data(self.env.commons[&symbol], offset));
        }
        let Some(sec) = s.section else {
            return Err(self.err(
                insn,
                ErrorKind::UnsupportedRelocation(format!("absolute symbol {}", s.name)),
            ));
        };
        let at = (s.value as i64).wrapping_add(offset);
        match input.sections[sec].kind {
            Kind::Text => {
                let f = u64::try_from(at)
                    .ok()
                    .and_then(|o| self.env.func_at.get(&(sec, o)));
                match f {
                    Some(&f) => Ok(Target::Func(f)),
                    None => Err(self.err(
                        insn,
                        ErrorKind::UnsupportedRelocation(format!(
                            "reference into the middle of code ({}+{at:#x})",
                            input.sections[sec].name
                        )),
                    )),
                }
            }
            Kind::Other => Err(self.err(
                insn,
                ErrorKind::UnsupportedRelocation(format!(
                    "reference to unloaded section {}",
                    input.sections[sec].name
                )),
            )),
            _ => Ok(Target::Data(self.env.sections[&sec], at)),
        }
    }

    /// The address (or value) a relocated field denotes.
    fn reloc_value(&mut self, insn: &Insn, r: crate::decode::InsnReloc) -> Result<Value> {
        let offset = match r.reloc.r_type {
            // S + A + (next - P)
            R_X86_64_PC32 | R_X86_64_PLT32 => r.reloc.addend.wrapping_add(r.to_end as i64),
            // S + A
            R_X86_64_64 | R_X86_64_32 | R_X86_64_32S => r.reloc.addend,
            t => {
                return Err(self.err(
                    insn,
                    ErrorKind::UnsupportedRelocation(format!("type {t} in code")),
                ));
            }
        };
        let t = self.target(insn, r.reloc.symbol, offset)?;
        Ok(self.target_value(t))
    }

    fn target_value(&mut self, t: Target) -> Value {
        match t {
            Target::Func(sym) => {
                let id = self.env.native[&sym];
                let fr = self.func_ref(id);
                self.b.ins().func_addr(I64, fr)
            }
            Target::ImportFunc(id) => {
                // The address as an absolute (R_X86_64_64), not `lea` from
                // the call's PLT32: a weak import nobody defines must read
                // as 0 (`if (hook) hook();`), and a PC-relative PLT
                // reference to an undefined weak symbol is not 0.
                let fr = match self.import_addrs.get(&id) {
                    Some(&fr) => fr,
                    None => {
                        let fr = self.module.declare_func_in_func(id, self.b.func);
                        self.b.func.dfg.ext_funcs[fr].colocated = false;
                        self.import_addrs.insert(id, fr);
                        fr
                    }
                };
                self.b.ins().func_addr(I64, fr)
            }
            Target::Data(id, off) if i32::try_from(off).is_ok() => {
                let gv = self.data_gv_at(id, off);
                self.b.ins().symbol_value(I64, gv)
            }
            Target::Data(id, off) => {
                let gv = self.data_gv(id);
                let base = self.b.ins().symbol_value(I64, gv);
                self.b.ins().iadd_imm_s(base, off)
            }
        }
    }

    fn mem_addr(&mut self, insn: &Insn) -> Result<Value> {
        let i = &insn.instr;
        if i.segment_prefix() == Register::FS
            || i.segment_prefix() == Register::GS
            || i.memory_segment() == Register::FS
            || i.memory_segment() == Register::GS
        {
            return Err(self.err(insn, ErrorKind::UnsupportedInstruction));
        }
        let base = i.memory_base();
        if base == Register::RIP || base == Register::EIP {
            let Some(r) = insn.reloc else {
                return Err(self.err(
                    insn,
                    ErrorKind::UnsupportedRelocation(
                        "RIP-relative reference without a relocation".into(),
                    ),
                ));
            };
            return self.reloc_value(insn, r);
        }
        let mut addr = match insn.reloc {
            Some(r) => self.reloc_value(insn, r)?,
            None => self.b.ins().iconst(I64, i.memory_displacement64() as i64),
        };
        if base != Register::None {
            let bi = reg_index(base).ok_or_else(|| self.unsupported(insn))?;
            if base.size() != 8 {
                return Err(self.unsupported(insn));
            }
            let v = self.get64(bi);
            addr = self.b.ins().iadd(addr, v);
        }
        let index = i.memory_index();
        if index != Register::None {
            let ii = reg_index(index).ok_or_else(|| self.unsupported(insn))?;
            let v = self.get64(ii);
            let scaled = match i.memory_index_scale() {
                1 => v,
                s => self.b.ins().imul_imm_s(v, s as i64),
            };
            addr = self.b.ins().iadd(addr, scaled);
        }
        Ok(addr)
    }

    fn op_size(&self, insn: &Insn, n: u32) -> usize {
        let i = &insn.instr;
        match i.op_kind(n) {
            OpKind::Register => i.op_register(n).size(),
            OpKind::Memory => i.memory_size().size(),
            _ => {
                if n > 0 {
                    self.op_size(insn, 0)
                } else {
                    8
                }
            }
        }
    }

    fn read_op(&mut self, insn: &Insn, n: u32, ty: types::Type) -> Result<Value> {
        let i = &insn.instr;
        match i.op_kind(n) {
            OpKind::Register => self
                .read_reg(i.op_register(n))
                .ok_or_else(|| self.unsupported(insn)),
            OpKind::Memory => {
                let a = self.mem_addr(insn)?;
                Ok(self.b.ins().load(ty, mem(), a, 0))
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => {
                if let Some(r) = insn.imm_reloc {
                    let v = self.reloc_value(insn, r)?;
                    Ok(if ty == I64 {
                        v
                    } else {
                        self.b.ins().ireduce(ty, v)
                    })
                } else {
                    let imm = i.immediate(n) as i64;
                    Ok(self.b.ins().iconst(ty, imm_for(ty, imm)))
                }
            }
            _ => Err(self.unsupported(insn)),
        }
    }

    fn write_op(&mut self, insn: &Insn, n: u32, v: Value) -> Result<()> {
        let i = &insn.instr;
        match i.op_kind(n) {
            OpKind::Register => self
                .write_reg(i.op_register(n), v)
                .ok_or_else(|| self.unsupported(insn)),
            OpKind::Memory => {
                let a = self.mem_addr(insn)?;
                self.store(v, a);
                Ok(())
            }
            _ => Err(self.unsupported(insn)),
        }
    }

    /// Every store the rewritten code makes goes through here.
    pub fn store(&mut self, v: Value, addr: Value) -> ir::Inst {
        self.stores += 1;
        self.b.ins().store(mem(), v, addr, 0)
    }

    fn push(&mut self, v: Value) {
        let rsp = self.get64(RSP);
        let rsp = self.b.ins().iadd_imm_s(rsp, -8);
        self.set64(RSP, rsp);
        let inst = self.store(v, rsp);
        self.pushes.push((inst, v));
    }

    fn pop(&mut self) -> Value {
        let rsp = self.get64(RSP);
        let v = self.b.ins().load(I64, mem(), rsp, 0);
        let load = self.b.func.dfg.value_def(v).unwrap_inst();
        self.pops.push(load);
        let rsp2 = self.b.ins().iadd_imm_s(rsp, 8);
        self.set64(RSP, rsp2);
        v
    }

    // ---- flags ---------------------------------------------------------------

    fn bool_var(&mut self, var: Variable, v: Value) {
        self.b.def_var(var, v);
    }

    fn set_szp(&mut self, res: Value) {
        let ty = self.b.func.dfg.value_type(res);
        let zf = self.b.ins().icmp_imm_s(IntCC::Equal, res, 0);
        let sf = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, res, 0);
        let low = if ty == I8 {
            res
        } else {
            self.b.ins().ireduce(I8, res)
        };
        let pop = self.b.ins().popcnt(low);
        let odd = self.b.ins().band_imm_s(pop, 1);
        let pf = self.b.ins().icmp_imm_s(IntCC::Equal, odd, 0);
        self.bool_var(self.flags.zf, zf);
        self.bool_var(self.flags.sf, sf);
        self.bool_var(self.flags.pf, pf);
    }

    fn flags_logic(&mut self, res: Value) {
        self.set_szp(res);
        let zero = self.b.ins().iconst(I8, 0);
        self.bool_var(self.flags.cf, zero);
        self.bool_var(self.flags.of, zero);
        self.producer = Some(Producer::Logic { res });
    }

    fn flags_add(&mut self, a: Value, b: Value, res: Value, carry_in: Option<Value>) {
        self.set_szp(res);
        let lt = self.b.ins().icmp(IntCC::UnsignedLessThan, res, a);
        let cf = match carry_in {
            None => lt,
            Some(c) => {
                let eq = self.b.ins().icmp(IntCC::Equal, res, a);
                let eqc = self.b.ins().band(eq, c);
                self.b.ins().bor(lt, eqc)
            }
        };
        let x1 = self.b.ins().bxor(a, res);
        let x2 = self.b.ins().bxor(b, res);
        let x = self.b.ins().band(x1, x2);
        let of = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
        self.bool_var(self.flags.cf, cf);
        self.bool_var(self.flags.of, of);
        self.producer = None;
    }

    fn flags_sub(&mut self, a: Value, b: Value, res: Value, borrow_in: Option<Value>) {
        self.set_szp(res);
        let lt = self.b.ins().icmp(IntCC::UnsignedLessThan, a, b);
        let cf = match borrow_in {
            None => lt,
            Some(c) => {
                let eq = self.b.ins().icmp(IntCC::Equal, a, b);
                let eqc = self.b.ins().band(eq, c);
                self.b.ins().bor(lt, eqc)
            }
        };
        let x1 = self.b.ins().bxor(a, b);
        let x2 = self.b.ins().bxor(a, res);
        let x = self.b.ins().band(x1, x2);
        let of = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
        self.bool_var(self.flags.cf, cf);
        self.bool_var(self.flags.of, of);
        self.producer = if borrow_in.is_none() {
            Some(Producer::Sub { a, b })
        } else {
            None
        };
    }

    /// inc/dec: ZF, SF, PF and OF from the result; CF is left alone (and not
    /// read, so it does not become live across blocks for nothing).
    fn flags_incdec(&mut self, a: Value, res: Value, inc: bool) {
        self.set_szp(res);
        let bits = self.b.func.dfg.value_type(a).bits();
        let edge = if inc {
            (1i64 << (bits - 1)).wrapping_sub(1)
        } else {
            (-1i64) << (bits - 1)
        };
        let edge = if bits == 64 {
            edge
        } else {
            edge & ((1i64 << bits) - 1)
        };
        let of = self.b.ins().icmp_imm_s(IntCC::Equal, a, edge);
        self.bool_var(self.flags.of, of);
        self.producer = Some(Producer::ZeroSign { res });
    }

    fn cond(&mut self, cc: ConditionCode) -> Value {
        use ConditionCode as C;
        if let Some(p) = self.producer {
            let direct = match p {
                Producer::Sub { a, b } => {
                    let icc = match cc {
                        C::b => Some(IntCC::UnsignedLessThan),
                        C::ae => Some(IntCC::UnsignedGreaterThanOrEqual),
                        C::e => Some(IntCC::Equal),
                        C::ne => Some(IntCC::NotEqual),
                        C::be => Some(IntCC::UnsignedLessThanOrEqual),
                        C::a => Some(IntCC::UnsignedGreaterThan),
                        C::l => Some(IntCC::SignedLessThan),
                        C::ge => Some(IntCC::SignedGreaterThanOrEqual),
                        C::le => Some(IntCC::SignedLessThanOrEqual),
                        C::g => Some(IntCC::SignedGreaterThan),
                        _ => None,
                    };
                    icc.map(|icc| self.b.ins().icmp(icc, a, b))
                }
                Producer::ZeroSign { res } => {
                    let icc = match cc {
                        C::e => Some(IntCC::Equal),
                        C::ne => Some(IntCC::NotEqual),
                        C::s => Some(IntCC::SignedLessThan),
                        C::ns => Some(IntCC::SignedGreaterThanOrEqual),
                        _ => None,
                    };
                    icc.map(|icc| self.b.ins().icmp_imm_s(icc, res, 0))
                }
                Producer::Logic { res } => {
                    let icc = match cc {
                        C::e | C::be => Some(IntCC::Equal),
                        C::ne | C::a => Some(IntCC::NotEqual),
                        C::s | C::l => Some(IntCC::SignedLessThan),
                        C::ns | C::ge => Some(IntCC::SignedGreaterThanOrEqual),
                        C::le => Some(IntCC::SignedLessThanOrEqual),
                        C::g => Some(IntCC::SignedGreaterThan),
                        _ => None,
                    };
                    icc.map(|icc| self.b.ins().icmp_imm_s(icc, res, 0))
                }
            };
            if let Some(v) = direct {
                return v;
            }
        }
        let f = |s: &mut Self, v: Variable| s.b.use_var(v);
        let (cf, zf, sf, of, pf) = (
            self.flags.cf,
            self.flags.zf,
            self.flags.sf,
            self.flags.of,
            self.flags.pf,
        );
        let not = |s: &mut Self, v: Value| s.b.ins().bxor_imm_s(v, 1);
        match cc {
            C::o => f(self, of),
            C::no => {
                let v = f(self, of);
                not(self, v)
            }
            C::b => f(self, cf),
            C::ae => {
                let v = f(self, cf);
                not(self, v)
            }
            C::e => f(self, zf),
            C::ne => {
                let v = f(self, zf);
                not(self, v)
            }
            C::be => {
                let (c, z) = (f(self, cf), f(self, zf));
                self.b.ins().bor(c, z)
            }
            C::a => {
                let (c, z) = (f(self, cf), f(self, zf));
                let o = self.b.ins().bor(c, z);
                not(self, o)
            }
            C::s => f(self, sf),
            C::ns => {
                let v = f(self, sf);
                not(self, v)
            }
            C::p => f(self, pf),
            C::np => {
                let v = f(self, pf);
                not(self, v)
            }
            C::l => {
                let (s, o) = (f(self, sf), f(self, of));
                self.b.ins().bxor(s, o)
            }
            C::ge => {
                let (s, o) = (f(self, sf), f(self, of));
                let x = self.b.ins().bxor(s, o);
                not(self, x)
            }
            C::le => {
                let (s, o, z) = (f(self, sf), f(self, of), f(self, zf));
                let x = self.b.ins().bxor(s, o);
                self.b.ins().bor(x, z)
            }
            C::g => {
                let (s, o, z) = (f(self, sf), f(self, of), f(self, zf));
                let x = self.b.ins().bxor(s, o);
                let y = self.b.ins().bor(x, z);
                not(self, y)
            }
            C::None => self.b.ins().iconst(I8, 1),
        }
    }

    // ---- control flow ----------------------------------------------------------

    fn block_at(&mut self, ip: u64) -> Block {
        if let Some(b) = self.blocks.get(&ip) {
            return *b;
        }
        let b = self.b.create_block();
        self.blocks.insert(ip, b);
        b
    }

    fn call_args(&mut self) -> Vec<Value> {
        ARG_REGS.iter().map(|&r| self.get64(r)).collect()
    }

    fn set_results(&mut self, inst: ir::Inst) {
        let rs = self.b.inst_results(inst).to_vec();
        self.set64(RAX, rs[0]);
        self.set64(RDX, rs[1]);
        self.producer = None;
    }

    /// A call to a rewritten function of this object: straight to its inner
    /// entry, passing the emulated RSP (stack arguments are already there).
    fn call_inner(&mut self, sym: usize, rsp_at_call: Value) -> Result<()> {
        let id = self.inner_id(sym)?;
        let fr = self.func_ref(id);
        let mut args = self.call_args();
        args.push(rsp_at_call);
        args.push(self.get64(RAX));
        let inst = self.b.ins().call(fr, &args);
        self.set_results(inst);
        Ok(())
    }

    /// The inner entry of function `sym`, declared by its first caller.
    fn inner_id(&mut self, sym: usize) -> Result<FuncId> {
        if let Some(&id) = self.env.inner.borrow().get(&sym) {
            return Ok(id);
        }
        let name = self
            .env
            .names
            .get(&sym)
            .unwrap_or(&self.env.input.symbols[sym].name);
        let name = format!("{name}.nooks_inner");
        let sig = inner_signature(self.module.isa().default_call_conv());
        let id = self
            .module
            .declare_function(&name, cranelift_module::Linkage::Local, &sig)
            .map_err(|e| RewriteError::new(ErrorKind::Codegen(e.to_string())))?;
        self.env.inner.borrow_mut().insert(sym, id);
        Ok(id)
    }

    /// A call to native code (an import or any indirect target): publish the
    /// emulated RSP for callbacks, copy the stack arguments.
    fn call_native(
        &mut self,
        callee: Result<ir::FuncRef>,
        rsp_at_call: Value,
        addr: Option<Value>,
    ) -> Result<()> {
        let gv = self.data_gv(self.env.esp);
        let esp_addr = self.b.ins().symbol_value(I64, gv);
        // The rewriter's own store to its own variable, unchecked.
        self.b.ins().store(
            crate::instrument::rewriter_flags(),
            rsp_at_call,
            esp_addr,
            0,
        );
        let mut args = self.call_args();
        let registers_only = match (&callee, addr) {
            (Ok(f), None) => {
                let sig = self.b.func.dfg.ext_funcs[*f].signature;
                let n = self.b.func.dfg.signatures[sig].params.len();
                (n <= ARG_REGS.len()).then_some(n)
            }
            _ => None,
        };
        if let Some(n) = registers_only {
            args.truncate(n);
        } else {
            for k in 0..STACK_ARGS {
                let v = self.b.ins().load(I64, mem(), rsp_at_call, (8 * k) as i32);
                args.push(v);
            }
        }
        let inst = match addr {
            Some(a) => {
                if let Some(rt) = self.env.sfi {
                    let check = self.func_ref(rt.check_call);
                    self.b.ins().call(check, &[a]);
                }
                self.b.ins().call_indirect(self.native_sig, a, &args)
            }
            None => self.b.ins().call(callee?, &args),
        };
        self.set_results(inst);
        Ok(())
    }

    fn ret(&mut self) {
        let (rax, rdx) = (self.get64(RAX), self.get64(RDX));
        if let Some(frame) = self.native {
            let gv = self.data_gv(self.env.esp);
            let esp_addr = self.b.ins().symbol_value(I64, gv);
            let flags = crate::instrument::rewriter_flags();
            self.b.ins().store(flags, frame.esp0, esp_addr, 0);
            if let (Some(rt), Some(at_entry)) = (self.env.sfi, frame.sfi) {
                let gv = self.data_gv(rt.state);
                let check = crate::instrument::check_after(&mut self.b, gv, at_entry);
                self.invariant_checks.push(check);
            }
        }
        self.b.ins().return_(&[rax, rdx]);
        self.terminated = true;
    }

    /// Calls (or, for a tail jump, calls and returns through) a branch target.
    fn branch_call(&mut self, insn: &Insn, rsp_at_call: Value) -> Result<()> {
        let i = &insn.instr;
        match i.op0_kind() {
            OpKind::NearBranch64 | OpKind::NearBranch32 => {
                let target = if insn.reloc.is_some() {
                    let r = insn.reloc.unwrap();
                    self.target(
                        insn,
                        r.reloc.symbol,
                        r.reloc.addend.wrapping_add(r.to_end as i64),
                    )?
                } else {
                    let at = self.f.locate(i.near_branch_target());
                    match self.env.func_at.get(&at) {
                        Some(&s) => Target::Func(s),
                        None => {
                            return Err(self.err(
                                insn,
                                ErrorKind::UnsupportedControlFlow(
                                    "branch into the middle of another function".into(),
                                ),
                            ));
                        }
                    }
                };
                match target {
                    Target::Func(s) => self.call_inner(s, rsp_at_call),
                    Target::ImportFunc(id) => {
                        let fr = self.func_ref(id);
                        self.call_native(Ok(fr), rsp_at_call, None)
                    }
                    Target::Data(..) => Err(self.err(
                        insn,
                        ErrorKind::UnsupportedControlFlow("call into data".into()),
                    )),
                }
            }
            OpKind::Register | OpKind::Memory => {
                let a = self.read_op(insn, 0, I64)?;
                self.call_native(Err(self.unsupported(insn)), rsp_at_call, Some(a))
            }
            _ => Err(self.unsupported(insn)),
        }
    }

    // ---- the function ------------------------------------------------------------

    /// Lifts the decoded function into the builder's function, whose
    /// signature is `entry`'s (`inner_signature` or `native_signature`).
    pub fn lift(mut self, d: &Decoded, entry: Entry) -> Result<Lifted> {
        self.tables = d.tables.clone();
        let entry_block = self.b.create_block();
        self.b.append_block_params_for_function_params(entry_block);
        self.b.switch_to_block(entry_block);
        let params = self.b.block_params(entry_block).to_vec();
        let mut frame_root = params[INNER_SP];
        let (sp, rax) = match entry {
            Entry::Inner => (params[INNER_SP], params[INNER_RAX]),
            Entry::Native { stack_words } => {
                let gv = self.data_gv(self.env.esp);
                let esp_addr = self.b.ins().symbol_value(I64, gv);
                let esp0 = self
                    .b
                    .ins()
                    .load(I64, crate::instrument::rewriter_flags(), esp_addr, 0);
                // Published stack pointers are those of calls, 16-byte
                // aligned already (the driver flags keep gcc's default
                // boundary): no `and` hides the frame's root from the checks.
                frame_root = esp0;
                // Room for the stack arguments it reads, in 16-byte units.
                let words = stack_words.min(STACK_ARGS).next_multiple_of(2);
                let area = self.b.ins().iadd_imm_s(esp0, -((8 * words) as i64));
                // The driver's own stores: checked under SFI like any other
                // (`__nooks_esp` lies in the driver's window).
                for k in 0..stack_words.min(STACK_ARGS) {
                    self.b
                        .ins()
                        .store(mem(), params[6 + k], area, (8 * k) as i32);
                }
                let sfi = self.env.sfi.map(|rt| {
                    let gv = self.data_gv(rt.state);
                    crate::instrument::entry_state(&mut self.b, gv)
                });
                self.native = Some(NativeFrame { esp0, sfi });
                // RAX: native callers pass nothing in it.
                (area, self.b.ins().iconst(I64, 0))
            }
        };
        let rsp = self.b.ins().iadd_imm_s(sp, -8);
        self.set64(RSP, rsp);
        for (k, &r) in ARG_REGS.iter().enumerate() {
            self.set64(r, params[k]);
        }
        self.set64(RAX, rax);
        // The registers the caller does not pass (callee-saved and scratch)
        // start undefined, as one value: a prologue's pushes of them then
        // store nothing (see `drop_dead_stack_traffic`).
        let undefined = self.b.ins().iconst(I64, 0);
        for r in 0..16 {
            if r != RSP && r != RAX && !ARG_REGS.contains(&r) {
                self.set64(r, undefined);
            }
        }
        self.undefined = Some(undefined);
        for &s in &d.block_starts {
            self.block_at(s);
        }
        let first = self.block_at(self.f.offset);
        self.b.ins().jump(first, &[]);
        self.terminated = true;
        for insn in &d.insns {
            if let Some(&blk) = self.blocks.get(&insn.ip) {
                if !self.terminated {
                    self.b.ins().jump(blk, &[]);
                }
                self.b.switch_to_block(blk);
                self.terminated = false;
                self.producer = None;
            } else if self.terminated {
                // Unreachable bytes after a terminator without a label: skip.
                continue;
            }
            self.b
                .set_srcloc(ir::SourceLoc::new(self.f.srcloc(insn.ip)));
            self.insn(insn)?;
        }
        if !self.terminated {
            // Falling off the end of the function: the original would run into
            // whatever follows; stop instead.
            self.b.ins().trap(TrapCode::unwrap_user(1));
        }
        // A branch whose target no instruction starts at (into the middle of
        // one, or past the end): its block was never filled.
        if let Some(ip) = self
            .blocks
            .iter()
            .filter(|(_, b)| !self.b.func.layout.is_block_inserted(**b))
            .map(|(ip, _)| *ip)
            .min()
        {
            let (_, offset) = self.f.locate(ip);
            return Err(RewriteError {
                function: Some(self.f.name.clone()),
                ..RewriteError::new(ErrorKind::UnsupportedControlFlow(format!(
                    "a branch to {offset:#x}, where no instruction of the function starts"
                )))
            });
        }
        self.b.seal_all_blocks();
        self.drop_unneeded_invariant_checks();
        self.drop_dead_stack_traffic();
        let stores = self.stores;
        let config = self.module.isa().frontend_config();
        self.b.finalize(config);
        Ok(Lifted { stores, frame_root })
    }

    /// A natively entered body that calls nothing and writes no interrupt
    /// flag cannot change the lock count or the virtual interrupt flag (an
    /// interrupt that runs driver code in between returns them as it found
    /// them, or faults): its returns skip their invariant checks (a getter
    /// such as `ndo_get_stats` then costs what it costs without SFI).
    fn drop_unneeded_invariant_checks(&mut self) {
        if self.writes_vif || self.invariant_checks.is_empty() {
            return;
        }
        let func = &*self.b.func;
        let calls = func.layout.blocks().any(|b| {
            func.layout
                .block_insts(b)
                .any(|i| func.dfg.insts[i].opcode().is_call())
        });
        if calls {
            return;
        }
        for (branch, cont) in std::mem::take(&mut self.invariant_checks) {
            use cranelift_codegen::cursor::{Cursor, FuncCursor};
            let mut c = FuncCursor::new(self.b.func).at_inst(branch);
            c.remove_inst();
            c.ins().jump(cont, &[]);
        }
    }

    /// Removes a prologue's and an epilogue's saving and restoring of the
    /// callee-saved registers, which in rewritten code are Cranelift's job:
    /// - the stores of pushes of undefined registers (the caller never passed
    ///   them); the slot is still reserved, and only the epilogue's pops read
    ///   it back, so it may hold anything;
    /// - pops whose value nothing reads (restoring a register the function
    ///   does not return). A pop that is read still loads, and faults through
    ///   a wild stack pointer like the original.
    fn drop_dead_stack_traffic(&mut self) {
        let Some(undefined) = self.undefined else {
            return;
        };
        let func = &mut *self.b.func;
        let mut used = crate::HashSet::default();
        for block in func.layout.blocks() {
            for inst in func.layout.block_insts(block) {
                used.extend(
                    func.dfg
                        .inst_values(inst)
                        .map(|v| func.dfg.resolve_aliases(v)),
                );
            }
        }
        for &inst in &self.pops {
            let v = func.dfg.first_result(inst);
            if !used.contains(&v) && func.layout.inst_block(inst).is_some() {
                func.layout.remove_inst(inst);
            }
        }
        for &(inst, v) in &self.pushes {
            if func.dfg.resolve_aliases(v) == undefined && func.layout.inst_block(inst).is_some() {
                func.layout.remove_inst(inst);
                self.stores -= 1;
            }
        }
    }

    fn binop(&mut self, insn: &Insn, op: Mnemonic) -> Result<()> {
        let w = self.op_size(insn, 0);
        let ty = ty_of(w);
        let a = self.read_op(insn, 0, ty)?;
        let b = self.read_op(insn, 1, ty)?;
        let res = match op {
            Mnemonic::Add => {
                let r = self.b.ins().iadd(a, b);
                self.flags_add(a, b, r, None);
                r
            }
            Mnemonic::Adc => {
                let c = self.b.use_var(self.flags.cf);
                let cw = if ty == I8 {
                    c
                } else {
                    self.b.ins().uextend(ty, c)
                };
                let t = self.b.ins().iadd(a, b);
                let r = self.b.ins().iadd(t, cw);
                self.flags_add(a, b, r, Some(c));
                r
            }
            Mnemonic::Sub | Mnemonic::Cmp => {
                let r = self.b.ins().isub(a, b);
                self.flags_sub(a, b, r, None);
                r
            }
            Mnemonic::Sbb => {
                let c = self.b.use_var(self.flags.cf);
                let cw = if ty == I8 {
                    c
                } else {
                    self.b.ins().uextend(ty, c)
                };
                let t = self.b.ins().isub(a, b);
                let r = self.b.ins().isub(t, cw);
                self.flags_sub(a, b, r, Some(c));
                r
            }
            Mnemonic::And | Mnemonic::Test => {
                let r = self.b.ins().band(a, b);
                self.flags_logic(r);
                r
            }
            Mnemonic::Or => {
                let r = self.b.ins().bor(a, b);
                self.flags_logic(r);
                r
            }
            Mnemonic::Xor => {
                let r = self.b.ins().bxor(a, b);
                self.flags_logic(r);
                r
            }
            _ => return Err(self.unsupported(insn)),
        };
        if !matches!(op, Mnemonic::Cmp | Mnemonic::Test) {
            self.write_op(insn, 0, res)?;
        }
        Ok(())
    }

    /// A `lock`-prefixed read-modify-write on memory: atomic in the output too.
    fn atomic_binop(&mut self, insn: &Insn, op: Mnemonic) -> Result<()> {
        let w = self.op_size(insn, 0);
        let ty = ty_of(w);
        let addr = self.mem_addr(insn)?;
        self.stores += 1;
        let b = match op {
            Mnemonic::Inc | Mnemonic::Dec => self.b.ins().iconst(ty, 1),
            Mnemonic::Not | Mnemonic::Neg => return Err(self.unsupported(insn)),
            _ => self.read_op(insn, 1, ty)?,
        };
        let rmw = match op {
            Mnemonic::Add | Mnemonic::Inc => AtomicRmwOp::Add,
            Mnemonic::Sub | Mnemonic::Dec => AtomicRmwOp::Sub,
            Mnemonic::And => AtomicRmwOp::And,
            Mnemonic::Or => AtomicRmwOp::Or,
            Mnemonic::Xor => AtomicRmwOp::Xor,
            _ => return Err(self.unsupported(insn)),
        };
        let old = self.b.ins().atomic_rmw(ty, mem(), rmw, addr, b);
        match op {
            Mnemonic::Inc | Mnemonic::Dec => {
                let r = if op == Mnemonic::Inc {
                    self.b.ins().iadd(old, b)
                } else {
                    self.b.ins().isub(old, b)
                };
                self.flags_incdec(old, r, op == Mnemonic::Inc);
            }
            Mnemonic::Add => {
                let r = self.b.ins().iadd(old, b);
                self.flags_add(old, b, r, None);
            }
            Mnemonic::Sub => {
                let r = self.b.ins().isub(old, b);
                self.flags_sub(old, b, r, None);
            }
            Mnemonic::And => {
                let r = self.b.ins().band(old, b);
                self.flags_logic(r);
            }
            Mnemonic::Or => {
                let r = self.b.ins().bor(old, b);
                self.flags_logic(r);
            }
            _ => {
                let r = self.b.ins().bxor(old, b);
                self.flags_logic(r);
            }
        }
        Ok(())
    }

    fn shift(&mut self, insn: &Insn, op: Mnemonic) -> Result<()> {
        let w = self.op_size(insn, 0);
        let ty = ty_of(w);
        let bits = (w * 8) as i64;
        let a = self.read_op(insn, 0, ty)?;
        let mask = if w == 8 { 63 } else { 31 };
        let static_count = match insn.instr.op_count() {
            1 => Some(1),
            _ if insn.instr.op1_kind() != OpKind::Register => {
                Some((insn.instr.immediate(1) & mask) as i64)
            }
            _ => None,
        };
        if static_count == Some(0) {
            return Ok(()); // no change to the operand or the flags
        }
        let count = if insn.instr.op_count() > 1 {
            let c = self.read_op(insn, 1, I8)?;
            self.b.ins().band_imm_s(c, if w == 8 { 63 } else { 31 })
        } else {
            self.b.ins().iconst(I8, 1)
        };
        let cnt = if ty == I8 {
            count
        } else {
            self.b.ins().uextend(ty, count)
        };
        let res = match op {
            Mnemonic::Shl | Mnemonic::Sal => self.b.ins().ishl(a, cnt),
            Mnemonic::Shr => self.b.ins().ushr(a, cnt),
            Mnemonic::Sar => self.b.ins().sshr(a, cnt),
            Mnemonic::Rol => self.b.ins().rotl(a, cnt),
            Mnemonic::Ror => self.b.ins().rotr(a, cnt),
            _ => return Err(self.unsupported(insn)),
        };
        // Flags change only when the (masked) count is non-zero.
        let nz = self.b.ins().icmp_imm_s(IntCC::NotEqual, count, 0);
        let one = self.b.ins().iconst(ty, 1);
        let cf_new = match op {
            Mnemonic::Shl | Mnemonic::Sal => {
                // last bit out: a >> (bits - count)
                let bw = self.b.ins().iconst(ty, bits);
                let sh = self.b.ins().isub(bw, cnt);
                let t = self.b.ins().ushr(a, sh);
                let t = self.b.ins().band(t, one);
                self.b.ins().ireduce_or(I8, t)
            }
            Mnemonic::Shr | Mnemonic::Sar => {
                let cm1 = self.b.ins().isub(cnt, one);
                let t = if op == Mnemonic::Shr {
                    self.b.ins().ushr(a, cm1)
                } else {
                    self.b.ins().sshr(a, cm1)
                };
                let t = self.b.ins().band(t, one);
                self.b.ins().ireduce_or(I8, t)
            }
            Mnemonic::Rol => {
                let t = self.b.ins().band(res, one);
                self.b.ins().ireduce_or(I8, t)
            }
            _ => {
                let t = self.b.ins().ushr_imm_u(res, bits - 1);
                let t = self.b.ins().band(t, one);
                self.b.ins().ireduce_or(I8, t)
            }
        };
        let msb = |s: &mut Self, v: Value| {
            let t = s.b.ins().ushr_imm_u(v, bits - 1);
            let t = s.b.ins().band_imm_s(t, 1);
            s.b.ins().ireduce_or(I8, t)
        };
        let of_new = match op {
            Mnemonic::Shl | Mnemonic::Sal => {
                let m = msb(self, res);
                self.b.ins().bxor(m, cf_new)
            }
            Mnemonic::Shr => msb(self, a),
            Mnemonic::Sar => self.b.ins().iconst(I8, 0),
            Mnemonic::Rol => {
                let m = msb(self, res);
                self.b.ins().bxor(m, cf_new)
            }
            _ => {
                let m = msb(self, res);
                let t = self.b.ins().ushr_imm_u(res, bits - 2);
                let t = self.b.ins().band_imm_s(t, 1);
                let m2 = self.b.ins().ireduce_or(I8, t);
                self.b.ins().bxor(m, m2)
            }
        };
        if static_count.is_some() {
            // The count is a non-zero constant: the flags are simply the new ones.
            if matches!(
                op,
                Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar
            ) {
                self.set_szp(res);
            }
            self.b.def_var(self.flags.cf, cf_new);
            self.b.def_var(self.flags.of, of_new);
            self.producer = None;
            return self.write_op(insn, 0, res);
        }
        let (cf_old, of_old) = (self.b.use_var(self.flags.cf), self.b.use_var(self.flags.of));
        let cf = self.b.ins().select(nz, cf_new, cf_old);
        let of = self.b.ins().select(nz, of_new, of_old);
        if matches!(
            op,
            Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar
        ) {
            let (z0, s0, p0) = (
                self.b.use_var(self.flags.zf),
                self.b.use_var(self.flags.sf),
                self.b.use_var(self.flags.pf),
            );
            self.set_szp(res);
            let (z1, s1, p1) = (
                self.b.use_var(self.flags.zf),
                self.b.use_var(self.flags.sf),
                self.b.use_var(self.flags.pf),
            );
            let z = self.b.ins().select(nz, z1, z0);
            let s = self.b.ins().select(nz, s1, s0);
            let p = self.b.ins().select(nz, p1, p0);
            self.b.def_var(self.flags.zf, z);
            self.b.def_var(self.flags.sf, s);
            self.b.def_var(self.flags.pf, p);
        }
        self.b.def_var(self.flags.cf, cf);
        self.b.def_var(self.flags.of, of);
        self.producer = None;
        self.write_op(insn, 0, res)
    }
}

trait ReduceOr {
    fn ireduce_or(self, ty: types::Type, v: Value) -> Value;
}

impl<'f, T: InstBuilder<'f>> ReduceOr for T {
    fn ireduce_or(self, ty: types::Type, v: Value) -> Value {
        let vt = self.data_flow_graph().value_type(v);
        if vt == ty { v } else { self.ireduce(ty, v) }
    }
}

fn imm_for(ty: types::Type, imm: i64) -> i64 {
    match ty {
        I8 => imm as i8 as i64 & 0xff,
        I16 => imm as i16 as i64 & 0xffff,
        I32 => imm as i32 as i64 & 0xffff_ffff,
        _ => imm,
    }
}

impl<M: Module> Lifter<'_, '_, M> {
    /// Lifts one instruction.
    fn insn(&mut self, insn: &Insn) -> Result<()> {
        use Mnemonic as X;
        let i = insn.instr;
        let locked = i.has_lock_prefix();
        match i.mnemonic() {
            X::Nop
            | X::Endbr64
            | X::Pause
            | X::Prefetchnta
            | X::Prefetcht0
            | X::Prefetcht1
            | X::Prefetcht2
            | X::Prefetchw => {}
            X::Mfence | X::Lfence | X::Sfence => {
                self.b.ins().fence();
            }
            X::Mov => {
                let ty = ty_of(self.op_size(insn, 0));
                match insn.imm_reloc {
                    // `mov $sym, %r32` (R_X86_64_32): the linker makes sure
                    // the address fits in 32 bits, and the write zero-extends
                    // it: the register holds the address itself. Written so,
                    // a loop's pointer and its end (`a`, `a+0x8000`) stay two
                    // addresses of one symbol, which the loop analysis
                    // compares, and no truncation is computed.
                    Some(r)
                        if r.reloc.r_type == R_X86_64_32
                            && ty == I32
                            && i.op0_kind() == OpKind::Register =>
                    {
                        let v = self.reloc_value(insn, r)?;
                        let full = i.op0_register().full_register();
                        self.write_reg(full, v)
                            .ok_or_else(|| self.unsupported(insn))?;
                    }
                    _ => {
                        let index = insn.table.and_then(|_| self.read_reg(i.memory_index()));
                        let v = self.read_op(insn, 1, ty)?;
                        self.write_op(insn, 0, v)?;
                        if let (Some(t), Some(index)) = (insn.table, index) {
                            let r = reg_index(i.op0_register())
                                .ok_or_else(|| self.unsupported(insn))?;
                            self.table_load = Some((r, v, t, index));
                        }
                    }
                }
            }
            X::Movzx | X::Movsx | X::Movsxd => {
                let dst = ty_of(self.op_size(insn, 0));
                let src_ty = ty_of(self.op_size(insn, 1));
                let v = self.read_op(insn, 1, src_ty)?;
                let v = if src_ty == dst {
                    v
                } else if i.mnemonic() == X::Movzx {
                    self.b.ins().uextend(dst, v)
                } else {
                    self.b.ins().sextend(dst, v)
                };
                self.write_op(insn, 0, v)?;
            }
            X::Lea => {
                let a = self.mem_addr(insn)?;
                let ty = ty_of(self.op_size(insn, 0));
                let v = if ty == I64 {
                    a
                } else {
                    self.b.ins().ireduce(ty, a)
                };
                self.write_op(insn, 0, v)?;
            }
            m @ (X::Add | X::Sub | X::And | X::Or | X::Xor) if locked => {
                self.atomic_binop(insn, m)?
            }
            m @ (X::Inc | X::Dec) if locked => self.atomic_binop(insn, m)?,
            m
            @ (X::Add | X::Adc | X::Sub | X::Sbb | X::And | X::Or | X::Xor | X::Cmp | X::Test) => {
                self.binop(insn, m)?
            }
            X::Inc | X::Dec => {
                let ty = ty_of(self.op_size(insn, 0));
                let a = self.read_op(insn, 0, ty)?;
                let r = if i.mnemonic() == X::Inc {
                    self.b.ins().iadd_imm_s(a, 1)
                } else {
                    self.b.ins().iadd_imm_s(a, -1)
                };
                self.flags_incdec(a, r, i.mnemonic() == X::Inc);
                self.write_op(insn, 0, r)?;
            }
            X::Not => {
                let ty = ty_of(self.op_size(insn, 0));
                let a = self.read_op(insn, 0, ty)?;
                let r = self.b.ins().bnot(a);
                self.write_op(insn, 0, r)?;
            }
            X::Neg => {
                let ty = ty_of(self.op_size(insn, 0));
                let a = self.read_op(insn, 0, ty)?;
                let zero = self.b.ins().iconst(ty, 0);
                let r = self.b.ins().ineg(a);
                self.flags_sub(zero, a, r, None);
                self.producer = None;
                self.write_op(insn, 0, r)?;
            }
            m @ (X::Shl | X::Sal | X::Shr | X::Sar | X::Rol | X::Ror) => self.shift(insn, m)?,
            X::Shld | X::Shrd => self.double_shift(insn)?,
            X::Imul => self.imul(insn)?,
            X::Mul => self.mul(insn)?,
            X::Div | X::Idiv => self.div(insn)?,
            X::Cbw | X::Cwde | X::Cdqe => {
                let (from, to) = match i.mnemonic() {
                    X::Cbw => (Register::AL, Register::AX),
                    X::Cwde => (Register::AX, Register::EAX),
                    _ => (Register::EAX, Register::RAX),
                };
                let v = self.read_reg(from).expect("accumulator");
                let v = self.b.ins().sextend(ty_of(to.size()), v);
                self.write_reg(to, v);
            }
            X::Cwd | X::Cdq | X::Cqo => {
                let (src, dst) = match i.mnemonic() {
                    X::Cwd => (Register::AX, Register::DX),
                    X::Cdq => (Register::EAX, Register::EDX),
                    _ => (Register::RAX, Register::RDX),
                };
                let v = self.read_reg(src).expect("accumulator");
                let bits = (src.size() * 8) as i64;
                let s = self.b.ins().sshr_imm_u(v, bits - 1);
                self.write_reg(dst, s);
            }
            X::Bswap => {
                let ty = ty_of(self.op_size(insn, 0));
                let a = self.read_op(insn, 0, ty)?;
                let r = self.b.ins().bswap(a);
                self.write_op(insn, 0, r)?;
            }
            X::Bsf | X::Bsr | X::Tzcnt | X::Lzcnt | X::Popcnt => self.bitscan(insn)?,
            X::Shlx
            | X::Shrx
            | X::Sarx
            | X::Rorx
            | X::Andn
            | X::Bzhi
            | X::Blsr
            | X::Blsi
            | X::Blsmsk => self.bmi(insn)?,
            X::Bt | X::Bts | X::Btr | X::Btc => self.bit_test(insn)?,
            X::Xchg => self.xchg(insn)?,
            X::Cmpxchg => self.cmpxchg(insn)?,
            X::Xadd => self.xadd(insn)?,
            X::Push => {
                let v = self.read_op(insn, 0, I64)?;
                self.push(v);
            }
            X::Pop => {
                let v = self.pop();
                self.write_op(insn, 0, v)?;
            }
            X::Leave => {
                let rbp = self.get64(RBP);
                self.set64(RSP, rbp);
                let v = self.pop();
                self.set64(RBP, v);
            }
            X::Setb
            | X::Setae
            | X::Sete
            | X::Setne
            | X::Setbe
            | X::Seta
            | X::Sets
            | X::Setns
            | X::Setp
            | X::Setnp
            | X::Setl
            | X::Setge
            | X::Setle
            | X::Setg
            | X::Seto
            | X::Setno => {
                let c = self.cond(i.condition_code());
                self.write_op(insn, 0, c)?;
            }
            X::Cmovb
            | X::Cmovae
            | X::Cmove
            | X::Cmovne
            | X::Cmovbe
            | X::Cmova
            | X::Cmovs
            | X::Cmovns
            | X::Cmovp
            | X::Cmovnp
            | X::Cmovl
            | X::Cmovge
            | X::Cmovle
            | X::Cmovg
            | X::Cmovo
            | X::Cmovno => {
                let ty = ty_of(self.op_size(insn, 0));
                let c = self.cond(i.condition_code());
                let src = self.read_op(insn, 1, ty)?;
                let dst = self.read_op(insn, 0, ty)?;
                let v = self.b.ins().select(c, src, dst);
                self.write_op(insn, 0, v)?;
            }
            X::Jb
            | X::Jae
            | X::Je
            | X::Jne
            | X::Jbe
            | X::Ja
            | X::Js
            | X::Jns
            | X::Jp
            | X::Jnp
            | X::Jl
            | X::Jge
            | X::Jle
            | X::Jg
            | X::Jo
            | X::Jno => {
                let c = self.cond(i.condition_code());
                let Some(t) = insn.branch.filter(|t| self.blocks.contains_key(t)) else {
                    return Err(self.err(
                        insn,
                        ErrorKind::UnsupportedControlFlow(
                            "conditional branch out of the function".into(),
                        ),
                    ));
                };
                let taken = self.block_at(t);
                let fall = self.block_at(i.next_ip());
                self.b.ins().brif(c, taken, &[], fall, &[]);
                self.terminated = true;
            }
            X::Jmp => match i.op0_kind() {
                OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16
                    if insn.branch.is_some_and(|t| self.blocks.contains_key(&t)) =>
                {
                    let blk = self.block_at(insn.branch.unwrap_or_default());
                    self.b.ins().jump(blk, &[]);
                    self.terminated = true;
                }
                OpKind::Memory if insn.table.is_some() => {
                    let index = self
                        .read_reg(i.memory_index())
                        .ok_or_else(|| self.unsupported(insn))?;
                    self.table_jump(insn.table.unwrap_or_default(), index);
                }
                OpKind::Register
                    if self.table_load.is_some_and(|(r, v, ..)| {
                        reg_index(i.op0_register()) == Some(r)
                            && i.op0_register().size() == 8
                            && self.get64(r) == v
                    }) =>
                {
                    let (_, _, t, index) = self.table_load.unwrap_or_else(|| unreachable!());
                    self.table_jump(t, index);
                }
                _ => {
                    // A tail call (direct, or through a pointer).
                    let rsp = self.get64(RSP);
                    let rsp_at_call = self.b.ins().iadd_imm_s(rsp, 8);
                    self.branch_call(insn, rsp_at_call)?;
                    self.ret();
                }
            },
            X::Call => {
                let rsp = self.get64(RSP);
                self.branch_call(insn, rsp)?;
            }
            X::Ret => {
                if i.op_count() > 0 {
                    return Err(self.unsupported(insn));
                }
                self.ret();
            }
            X::Ud2 | X::Int3 => {
                self.b.ins().trap(TrapCode::unwrap_user(2));
                self.terminated = true;
            }
            X::Movsb | X::Movsw | X::Movsd | X::Movsq if i.op0_kind() == OpKind::MemoryESRDI => {
                self.string_op(insn, true)?
            }
            X::Stosb | X::Stosw | X::Stosd | X::Stosq => self.string_op(insn, false)?,
            X::Cli | X::Sti | X::Pushfq | X::Popfq | X::Pushf | X::Popf
                if self.env.sfi.is_some() =>
            {
                self.virtual_flags(insn)?
            }
            X::In | X::Out => self.port_io(insn)?,
            _ => return Err(self.unsupported(insn)),
        }
        Ok(())
    }

    /// A jump through table `t` at `index`: a binary search over the
    /// index's ranges (runs of entries with one target merged) to the
    /// table's blocks; an index past its end traps. Not a `br_table`:
    /// Cranelift lowers that to an indirect `jmp` through a table inline in
    /// the code, which the window-check relocation pass (and a verifier)
    /// would have to decode; direct branches keep every target visible.
    fn table_jump(&mut self, t: usize, index: Value) {
        let mut ranges: Vec<(u64, u64, Block)> = Vec::new();
        for (k, target) in self.tables[t].targets.iter().enumerate() {
            let blk = self.blocks[target];
            let k = k as u64;
            match ranges.last_mut() {
                Some((_, end, b)) if *b == blk && *end == k => *end = k + 1,
                _ => ranges.push((k, k + 1, blk)),
            }
        }
        let out_of_range = self.b.create_block();
        self.b.set_cold_block(out_of_range);
        let n = self.tables[t].targets.len();
        let inside = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, index, n as i64);
        let search = self.b.create_block();
        self.b.ins().brif(inside, search, &[], out_of_range, &[]);
        self.b.switch_to_block(search);
        self.search(index, &ranges);
        self.b.switch_to_block(out_of_range);
        self.b.ins().trap(TrapCode::unwrap_user(TRAP_JUMP_TABLE));
        self.terminated = true;
    }

    /// Branches to the block of the range of `ranges` (sorted, adjacent)
    /// that holds `index`, from the current block.
    fn search(&mut self, index: Value, ranges: &[(u64, u64, Block)]) {
        if let [(_, _, blk)] = ranges {
            self.b.ins().jump(*blk, &[]);
            return;
        }
        let mid = ranges.len() / 2;
        let (low, high) = ranges.split_at(mid);
        let below = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, index, high[0].0 as i64);
        let (l, h) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(below, l, &[], h, &[]);
        self.b.switch_to_block(l);
        self.search(index, low);
        self.b.switch_to_block(h);
        self.search(index, high);
    }

    /// `in`/`out`: Cranelift has no port I/O, so the kernel's
    /// `nooks_port_in(port, size)` / `nooks_port_out(port, size, value)` do it;
    /// under SFI the port must lie in the policy's ranges — a constant port is
    /// checked here, a computed one (`dx`) before the call, trapping otherwise.
    fn port_io(&mut self, insn: &Insn) -> Result<()> {
        let i = insn.instr;
        let out = i.mnemonic() == Mnemonic::Out;
        let (port_op, data_op) = if out { (0, 1) } else { (1, 0) };
        let data_reg = i.op_register(data_op);
        let size = data_reg.size() as i64;
        let allowed = |p: u64| {
            self.env
                .ports
                .iter()
                .any(|&(lo, hi)| p >= u64::from(lo) && p + size as u64 - 1 <= u64::from(hi))
        };
        let port = match i.op_kind(port_op) {
            OpKind::Immediate8 => {
                let p = u64::from(i.immediate8());
                if self.env.sfi.is_some() && !allowed(p) {
                    return Err(self.err(
                        insn,
                        ErrorKind::Forbidden(format!(
                            "port {p:#x} is outside the policy's port ranges"
                        )),
                    ));
                }
                self.b.ins().iconst(I64, p as i64)
            }
            OpKind::Register => {
                let dx = self
                    .read_reg(Register::DX)
                    .ok_or_else(|| self.unsupported(insn))?;
                let p = self.b.ins().uextend(I64, dx);
                if let Some(rt) = self.env.sfi {
                    self.check_port(rt, p, size);
                }
                p
            }
            _ => return Err(self.unsupported(insn)),
        };
        let name = if out {
            "nooks_port_out"
        } else {
            "nooks_port_in"
        };
        let call_conv = self.b.func.dfg.signatures[self.native_sig].call_conv;
        let sig = register_signature(call_conv, 6);
        let id = self
            .module
            .declare_function(name, cranelift_module::Linkage::Import, &sig)
            .map_err(|e| self.err(insn, ErrorKind::Codegen(e.to_string())))?;
        let f = self.func_ref(id);
        let zero = self.b.ins().iconst(I64, 0);
        let sz = self.b.ins().iconst(I64, size);
        let value = if out {
            let v = self
                .read_reg(data_reg)
                .ok_or_else(|| self.unsupported(insn))?;
            if size == 8 {
                v
            } else {
                self.b.ins().uextend(I64, v)
            }
        } else {
            zero
        };
        let mut args = vec![port, sz, value];
        let nparams = self.b.func.dfg.signatures[self.b.func.dfg.ext_funcs[f].signature]
            .params
            .len();
        args.resize(nparams, zero);
        let call = self.b.ins().call(f, &args);
        if !out {
            let r = self.b.inst_results(call)[0];
            let r = if size == 8 {
                r
            } else {
                self.b.ins().ireduce(ty_of(size as usize), r)
            };
            self.write_reg(data_reg, r)
                .ok_or_else(|| self.unsupported(insn))?;
        }
        Ok(())
    }

    /// Traps unless [port, port + size) lies in one of the policy's ranges.
    fn check_port(&mut self, rt: crate::instrument::Runtime, port: Value, size: i64) {
        let ok_block = self.b.create_block();
        let bad = self.b.create_block();
        let mut ok = self.b.ins().iconst(I8, 0);
        for &(lo, hi) in self.env.ports {
            let ge =
                self.b
                    .ins()
                    .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, port, i64::from(lo));
            let end = self.b.ins().iadd_imm_s(port, size - 1);
            let le = self
                .b
                .ins()
                .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, end, i64::from(hi));
            let both = self.b.ins().band(ge, le);
            ok = self.b.ins().bor(ok, both);
        }
        self.b.ins().brif(ok, ok_block, &[], bad, &[]);
        self.b.switch_to_block(bad);
        self.b.set_cold_block(bad);
        let gv = self.data_gv(rt.state);
        let state = self.b.ins().symbol_value(I64, gv);
        crate::instrument::refuse(&mut self.b, state, port, crate::instrument::FaultKind::Port);
        self.b.switch_to_block(ok_block);
    }

    /// `cli`/`sti`/`pushf`/`popf` under SFI: the interrupt flag is the domain's
    /// virtual one; the arithmetic flags are the lifter's.
    fn virtual_flags(&mut self, insn: &Insn) -> Result<()> {
        let rt = self.env.sfi.expect("only under sfi");
        let gv = self.data_gv(rt.state);
        let base = self.b.ins().symbol_value(I64, gv);
        let vif = crate::instrument::layout::VIF;
        let bits = [
            (self.flags.cf, 0),
            (self.flags.pf, 2),
            (self.flags.zf, 6),
            (self.flags.sf, 7),
            (self.flags.of, 11),
        ];
        match insn.instr.mnemonic() {
            Mnemonic::Cli | Mnemonic::Sti => {
                self.writes_vif = true;
                let v = self
                    .b
                    .ins()
                    .iconst(I32, i64::from(insn.instr.mnemonic() == Mnemonic::Sti));
                // The runtime's own state, outside the window: unchecked.
                self.b
                    .ins()
                    .store(crate::instrument::rewriter_flags(), v, base, vif);
            }
            Mnemonic::Pushfq | Mnemonic::Pushf => {
                let mut word = self.b.ins().iconst(I64, 2);
                for (var, bit) in bits {
                    let f = self.b.use_var(var);
                    let f = self.b.ins().uextend(I64, f);
                    let f = self.b.ins().ishl_imm_u(f, bit);
                    word = self.b.ins().bor(word, f);
                }
                let v = self.b.ins().uload32(mem(), base, vif);
                let v = self.b.ins().band_imm_s(v, 1);
                let v = self.b.ins().ishl_imm_u(v, 9);
                word = self.b.ins().bor(word, v);
                self.push(word);
            }
            _ => {
                self.writes_vif = true;
                let word = self.pop();
                for (var, bit) in bits {
                    let f = self.b.ins().ushr_imm_u(word, bit);
                    let f = self.b.ins().band_imm_s(f, 1);
                    let f = self.b.ins().ireduce(I8, f);
                    self.b.def_var(var, f);
                }
                let v = self.b.ins().ushr_imm_u(word, 9);
                let v = self.b.ins().band_imm_s(v, 1);
                self.b
                    .ins()
                    .istore32(crate::instrument::rewriter_flags(), v, base, vif);
                self.producer = None;
            }
        }
        Ok(())
    }

    fn double_shift(&mut self, insn: &Insn) -> Result<()> {
        let w = self.op_size(insn, 0);
        let ty = ty_of(w);
        let bits = (w * 8) as i64;
        let a = self.read_op(insn, 0, ty)?;
        let b = self.read_op(insn, 1, ty)?;
        let c = self.read_op(insn, 2, I8)?;
        let c = self.b.ins().band_imm_s(c, if w == 8 { 63 } else { 31 });
        let nz = self.b.ins().icmp_imm_s(IntCC::NotEqual, c, 0);
        let cnt = if ty == I8 {
            c
        } else {
            self.b.ins().uextend(ty, c)
        };
        let bw = self.b.ins().iconst(ty, bits);
        let inv = self.b.ins().isub(bw, cnt);
        let (x, y) = if insn.instr.mnemonic() == Mnemonic::Shld {
            (self.b.ins().ishl(a, cnt), self.b.ins().ushr(b, inv))
        } else {
            (self.b.ins().ushr(a, cnt), self.b.ins().ishl(b, inv))
        };
        let r = self.b.ins().bor(x, y);
        let r = self.b.ins().select(nz, r, a);
        self.set_szp(r);
        self.producer = None;
        self.write_op(insn, 0, r)
    }

    fn imul(&mut self, insn: &Insn) -> Result<()> {
        let i = &insn.instr;
        if i.op_count() == 1 {
            return self.mul(insn);
        }
        let ty = ty_of(self.op_size(insn, 0));
        let (a, b) = if i.op_count() == 2 {
            (self.read_op(insn, 0, ty)?, self.read_op(insn, 1, ty)?)
        } else {
            (self.read_op(insn, 1, ty)?, self.read_op(insn, 2, ty)?)
        };
        let lo = self.b.ins().imul(a, b);
        let hi = self.b.ins().smulhi(a, b);
        let sign = self.b.ins().sshr_imm_u(lo, (ty.bits() - 1) as i64);
        let ovf = self.b.ins().icmp(IntCC::NotEqual, hi, sign);
        self.b.def_var(self.flags.cf, ovf);
        self.b.def_var(self.flags.of, ovf);
        self.set_szp(lo);
        self.producer = None;
        self.write_op(insn, 0, lo)
    }

    /// One-operand mul/imul: rdx:rax (or narrower) = rax * src.
    fn mul(&mut self, insn: &Insn) -> Result<()> {
        let w = self.op_size(insn, 0);
        let ty = ty_of(w);
        let signed = insn.instr.mnemonic() == Mnemonic::Imul;
        let src = self.read_op(insn, 0, ty)?;
        let acc = self
            .read_reg(match w {
                1 => Register::AL,
                2 => Register::AX,
                4 => Register::EAX,
                _ => Register::RAX,
            })
            .expect("accumulator");
        let lo = self.b.ins().imul(acc, src);
        let hi = if signed {
            self.b.ins().smulhi(acc, src)
        } else {
            self.b.ins().umulhi(acc, src)
        };
        let ovf = if signed {
            let sign = self.b.ins().sshr_imm_u(lo, (ty.bits() - 1) as i64);
            self.b.ins().icmp(IntCC::NotEqual, hi, sign)
        } else {
            self.b.ins().icmp_imm_s(IntCC::NotEqual, hi, 0)
        };
        self.b.def_var(self.flags.cf, ovf);
        self.b.def_var(self.flags.of, ovf);
        self.producer = None;
        match w {
            1 => {
                let l = self.b.ins().uextend(I16, lo);
                let h = self.b.ins().uextend(I16, hi);
                let h = self.b.ins().ishl_imm_u(h, 8);
                let ax = self.b.ins().bor(l, h);
                self.write_reg(Register::AX, ax);
            }
            2 => {
                self.write_reg(Register::AX, lo);
                self.write_reg(Register::DX, hi);
            }
            4 => {
                self.write_reg(Register::EAX, lo);
                self.write_reg(Register::EDX, hi);
            }
            _ => {
                self.set64(RAX, lo);
                self.set64(RDX, hi);
            }
        }
        Ok(())
    }

    /// div/idiv. Narrow forms divide in 64 bits exactly. The 64-bit form takes a
    /// fast path when RDX is the zero/sign extension of RAX (what gcc emits); a
    /// quotient that does not fit traps as #DE would; the general unsigned
    /// 128/64 case runs a shift-subtract loop.
    fn div(&mut self, insn: &Insn) -> Result<()> {
        let w = self.op_size(insn, 0);
        let ty = ty_of(w);
        let signed = insn.instr.mnemonic() == Mnemonic::Idiv;
        let d = self.read_op(insn, 0, ty)?;
        let de = TrapCode::INTEGER_DIVISION_BY_ZERO;
        if w < 8 {
            // Dividend: ax (w=1), dx:ax, edx:eax.
            let dividend = match w {
                1 => {
                    let ax = self.read_reg(Register::AX).expect("ax");
                    if signed {
                        self.b.ins().sextend(I64, ax)
                    } else {
                        self.b.ins().uextend(I64, ax)
                    }
                }
                _ => {
                    let (lo_r, hi_r) = if w == 2 {
                        (Register::AX, Register::DX)
                    } else {
                        (Register::EAX, Register::EDX)
                    };
                    let lo = self.read_reg(lo_r).expect("lo");
                    let hi = self.read_reg(hi_r).expect("hi");
                    let lo = self.b.ins().uextend(I64, lo);
                    let hi = if signed {
                        self.b.ins().sextend(I64, hi)
                    } else {
                        self.b.ins().uextend(I64, hi)
                    };
                    let hi = self.b.ins().ishl_imm_u(hi, (w * 8) as i64);
                    self.b.ins().bor(hi, lo)
                }
            };
            let dv = if signed {
                self.b.ins().sextend(I64, d)
            } else {
                self.b.ins().uextend(I64, d)
            };
            let zero = self.b.ins().icmp_imm_s(IntCC::Equal, dv, 0);
            self.b.ins().trapnz(zero, de);
            let (q, r) = if signed {
                // i64::MIN / -1 cannot occur: the dividend has at most 32+32 bits... except w=4
                // with edx:eax = i64::MIN; guard it as #DE.
                let min = self.b.ins().icmp_imm_s(IntCC::Equal, dividend, i64::MIN);
                let m1 = self.b.ins().icmp_imm_s(IntCC::Equal, dv, -1);
                let both = self.b.ins().band(min, m1);
                self.b.ins().trapnz(both, de);
                (
                    self.b.ins().sdiv(dividend, dv),
                    self.b.ins().srem(dividend, dv),
                )
            } else {
                (
                    self.b.ins().udiv(dividend, dv),
                    self.b.ins().urem(dividend, dv),
                )
            };
            // The quotient must fit the operand width.
            let qn = self.b.ins().ireduce(ty, q);
            let back = if signed {
                self.b.ins().sextend(I64, qn)
            } else {
                self.b.ins().uextend(I64, qn)
            };
            let fits = self.b.ins().icmp(IntCC::Equal, back, q);
            self.b.ins().trapz(fits, de);
            let rn = self.b.ins().ireduce(ty, r);
            match w {
                1 => {
                    self.write_reg(Register::AL, qn);
                    self.write_reg(Register::AH, rn);
                }
                2 => {
                    self.write_reg(Register::AX, qn);
                    self.write_reg(Register::DX, rn);
                }
                _ => {
                    self.write_reg(Register::EAX, qn);
                    self.write_reg(Register::EDX, rn);
                }
            }
            return Ok(());
        }
        let lo = self.get64(RAX);
        let hi = self.get64(RDX);
        let expected_hi = if signed {
            self.b.ins().sshr_imm_u(lo, 63)
        } else {
            self.b.ins().iconst(I64, 0)
        };
        let simple = self.b.ins().icmp(IntCC::Equal, hi, expected_hi);
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        self.b.append_block_param(done, I64);
        self.b.ins().brif(simple, fast, &[], slow, &[]);

        self.b.switch_to_block(fast);
        self.b.seal_block(fast);
        let (q, r) = if signed {
            (self.b.ins().sdiv(lo, d), self.b.ins().srem(lo, d))
        } else {
            (self.b.ins().udiv(lo, d), self.b.ins().urem(lo, d))
        };
        self.b.ins().jump(done, &[q.into(), r.into()]);

        self.b.switch_to_block(slow);
        self.b.seal_block(slow);
        if signed {
            // gcc only emits idiv after cqo; anything else is beyond this lifter.
            self.b.ins().trap(TrapCode::unwrap_user(3));
        } else {
            // #DE unless hi < d; then 64 steps of shift-subtract.
            let ok = self.b.ins().icmp(IntCC::UnsignedLessThan, hi, d);
            self.b.ins().trapz(ok, de);
            let head = self.b.create_block();
            for _ in 0..4 {
                self.b.append_block_param(head, I64); // r, q, lo, n
            }
            let zero = self.b.ins().iconst(I64, 0);
            let n = self.b.ins().iconst(I64, 64);
            self.b
                .ins()
                .jump(head, &[hi.into(), zero.into(), lo.into(), n.into()]);
            self.b.switch_to_block(head);
            let p = self.b.block_params(head).to_vec();
            let (r0, q0, l0, n0) = (p[0], p[1], p[2], p[3]);
            let top = self.b.ins().ushr_imm_u(r0, 63);
            let r1 = self.b.ins().ishl_imm_u(r0, 1);
            let lbit = self.b.ins().ushr_imm_u(l0, 63);
            let r1 = self.b.ins().bor(r1, lbit);
            let l1 = self.b.ins().ishl_imm_u(l0, 1);
            let ge = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, r1, d);
            let carry = self.b.ins().icmp_imm_s(IntCC::NotEqual, top, 0);
            let take = self.b.ins().bor(ge, carry);
            let rsub = self.b.ins().isub(r1, d);
            let r2 = self.b.ins().select(take, rsub, r1);
            let q1 = self.b.ins().ishl_imm_u(q0, 1);
            let bit = self.b.ins().uextend(I64, take);
            let q2 = self.b.ins().bor(q1, bit);
            let n1 = self.b.ins().iadd_imm_s(n0, -1);
            let more = self.b.ins().icmp_imm_s(IntCC::NotEqual, n1, 0);
            let out = self.b.create_block();
            self.b.ins().brif(
                more,
                head,
                &[r2.into(), q2.into(), l1.into(), n1.into()],
                out,
                &[],
            );
            self.b.seal_block(head);
            self.b.switch_to_block(out);
            self.b.seal_block(out);
            self.b.ins().jump(done, &[q2.into(), r2.into()]);
        }
        self.b.switch_to_block(done);
        self.b.seal_block(done);
        let p = self.b.block_params(done).to_vec();
        self.set64(RAX, p[0]);
        self.set64(RDX, p[1]);
        self.producer = None;
        Ok(())
    }

    fn bitscan(&mut self, insn: &Insn) -> Result<()> {
        let ty = ty_of(self.op_size(insn, 0));
        let src = self.read_op(insn, 1, ty)?;
        let bits = ty.bits() as i64;
        let is_zero = self.b.ins().icmp_imm_s(IntCC::Equal, src, 0);
        let r = match insn.instr.mnemonic() {
            Mnemonic::Popcnt => {
                let r = self.b.ins().popcnt(src);
                self.b.def_var(self.flags.zf, is_zero);
                r
            }
            Mnemonic::Tzcnt => {
                self.b.def_var(self.flags.cf, is_zero);
                self.b.ins().ctz(src)
            }
            Mnemonic::Lzcnt => {
                self.b.def_var(self.flags.cf, is_zero);
                self.b.ins().clz(src)
            }
            m => {
                // bsf/bsr leave the destination unchanged for a zero source.
                let old = self.read_op(insn, 0, ty)?;
                let v = if m == Mnemonic::Bsf {
                    self.b.ins().ctz(src)
                } else {
                    let c = self.b.ins().clz(src);
                    let top = self.b.ins().iconst(ty, bits - 1);
                    self.b.ins().isub(top, c)
                };
                self.b.def_var(self.flags.zf, is_zero);
                self.b.ins().select(is_zero, old, v)
            }
        };
        self.producer = None;
        self.write_op(insn, 0, r)
    }

    /// The BMI1/BMI2 general-register instructions gcc emits under
    /// `-mbmi`/`-mbmi2` (`-march=native` on recent CPUs): the shifts and the
    /// rotate leave the flags alone; the others set SF and ZF from the
    /// result, clear OF, and set CF their own way (PF is undefined).
    fn bmi(&mut self, insn: &Insn) -> Result<()> {
        use Mnemonic as X;
        let ty = ty_of(self.op_size(insn, 0));
        let bits = i64::from(ty.bits());
        let m = insn.instr.mnemonic();
        let src = self.read_op(insn, 1, ty)?;
        let r = match m {
            X::Shlx | X::Shrx | X::Sarx => {
                let cnt = self.read_op(insn, 2, ty)?;
                let cnt = self.b.ins().band_imm_s(cnt, bits - 1);
                match m {
                    X::Shlx => self.b.ins().ishl(src, cnt),
                    X::Shrx => self.b.ins().ushr(src, cnt),
                    _ => self.b.ins().sshr(src, cnt),
                }
            }
            X::Rorx => {
                let imm = (insn.instr.immediate(2) as i64) & (bits - 1);
                self.b.ins().rotr_imm_s(src, imm)
            }
            _ => {
                let (r, cf) = match m {
                    X::Andn => {
                        let other = self.read_op(insn, 2, ty)?;
                        let n = self.b.ins().bnot(src);
                        (self.b.ins().band(n, other), None)
                    }
                    X::Bzhi => {
                        // The index is the low byte of the third operand;
                        // at or past the width nothing is cleared and CF is set.
                        let n = self.read_op(insn, 2, ty)?;
                        let n = self.b.ins().band_imm_s(n, 0xff);
                        let all =
                            self.b
                                .ins()
                                .icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, n, bits);
                        let one = self.b.ins().iconst(ty, 1);
                        let bit = self.b.ins().ishl(one, n);
                        let mask = self.b.ins().isub(bit, one);
                        let cleared = self.b.ins().band(src, mask);
                        (self.b.ins().select(all, src, cleared), Some(all))
                    }
                    _ => {
                        let is_zero = self.b.ins().icmp_imm_s(IntCC::Equal, src, 0);
                        let minus_one = self.b.ins().iadd_imm_s(src, -1);
                        match m {
                            X::Blsr => (self.b.ins().band(src, minus_one), Some(is_zero)),
                            X::Blsmsk => (self.b.ins().bxor(src, minus_one), Some(is_zero)),
                            _ => {
                                let neg = self.b.ins().ineg(src);
                                let nonzero = self.b.ins().icmp_imm_s(IntCC::NotEqual, src, 0);
                                (self.b.ins().band(src, neg), Some(nonzero))
                            }
                        }
                    }
                };
                self.flags_logic(r);
                if let Some(cf) = cf {
                    self.bool_var(self.flags.cf, cf);
                    self.producer = None;
                }
                r
            }
        };
        self.write_op(insn, 0, r)
    }

    fn bit_test(&mut self, insn: &Insn) -> Result<()> {
        let i = &insn.instr;
        let w = self.op_size(insn, 0);
        let ty = ty_of(w);
        let bits = (w * 8) as i64;
        let m = i.mnemonic();
        // Bit offset; a register offset on a memory operand addresses a bit string.
        let (addr, bit) = if i.op1_kind() == OpKind::Register {
            let off = self.read_op(insn, 1, ty)?;
            let off = if ty == I64 {
                off
            } else {
                self.b.ins().sextend(I64, off)
            };
            if i.op0_kind() == OpKind::Memory {
                let base = self.mem_addr(insn)?;
                let words = self.b.ins().sshr_imm_u(off, bits.trailing_zeros() as i64);
                let bytes = self.b.ins().imul_imm_s(words, w as i64);
                (
                    Some(self.b.ins().iadd(base, bytes)),
                    self.b.ins().band_imm_s(off, bits - 1),
                )
            } else {
                (None, self.b.ins().band_imm_s(off, bits - 1))
            }
        } else {
            let imm = (i.immediate(1) as i64) & (bits - 1);
            let a = if i.op0_kind() == OpKind::Memory {
                Some(self.mem_addr(insn)?)
            } else {
                None
            };
            (a, self.b.ins().iconst(I64, imm))
        };
        let val = match addr {
            Some(a) => self.b.ins().load(ty, mem(), a, 0),
            None => self.read_op(insn, 0, ty)?,
        };
        let bit_t = if ty == I64 {
            bit
        } else {
            self.b.ins().ireduce(ty, bit)
        };
        let shifted = self.b.ins().ushr(val, bit_t);
        let one = self.b.ins().band_imm_s(shifted, 1);
        let cf = self.b.ins().ireduce_or(I8, one);
        self.b.def_var(self.flags.cf, cf);
        self.producer = None;
        if m == Mnemonic::Bt {
            return Ok(());
        }
        let onev = self.b.ins().iconst(ty, 1);
        let mask = self.b.ins().ishl(onev, bit_t);
        let r = match m {
            Mnemonic::Bts => self.b.ins().bor(val, mask),
            Mnemonic::Btr => {
                let nm = self.b.ins().bnot(mask);
                self.b.ins().band(val, nm)
            }
            _ => self.b.ins().bxor(val, mask),
        };
        match addr {
            Some(a) => {
                self.store(r, a);
                Ok(())
            }
            None => self.write_op(insn, 0, r),
        }
    }

    fn xchg(&mut self, insn: &Insn) -> Result<()> {
        let ty = ty_of(self.op_size(insn, 0));
        let i = &insn.instr;
        if i.op0_kind() == OpKind::Register && i.op1_kind() == OpKind::Register {
            let a = self.read_op(insn, 0, ty)?;
            let b = self.read_op(insn, 1, ty)?;
            self.write_reg(i.op0_register(), b);
            self.write_reg(i.op1_register(), a);
            return Ok(());
        }
        let (mem_n, reg) = if i.op0_kind() == OpKind::Memory {
            (0, i.op1_register())
        } else {
            (1, i.op0_register())
        };
        let _ = mem_n;
        let addr = self.mem_addr(insn)?;
        self.stores += 1;
        let v = self.read_reg(reg).ok_or_else(|| self.unsupported(insn))?;
        let old = self
            .b
            .ins()
            .atomic_rmw(ty, mem(), AtomicRmwOp::Xchg, addr, v);
        self.write_reg(reg, old);
        Ok(())
    }

    fn cmpxchg(&mut self, insn: &Insn) -> Result<()> {
        let ty = ty_of(self.op_size(insn, 0));
        let i = &insn.instr;
        let acc_reg = match ty.bytes() {
            1 => Register::AL,
            2 => Register::AX,
            4 => Register::EAX,
            _ => Register::RAX,
        };
        let expected = self.read_reg(acc_reg).expect("accumulator");
        let new = self.read_op(insn, 1, ty)?;
        let old = if i.op0_kind() == OpKind::Memory {
            let addr = self.mem_addr(insn)?;
            self.stores += 1;
            self.b.ins().atomic_cas(mem(), addr, expected, new)
        } else {
            let cur = self.read_op(insn, 0, ty)?;
            let eq = self.b.ins().icmp(IntCC::Equal, cur, expected);
            let v = self.b.ins().select(eq, new, cur);
            self.write_op(insn, 0, v)?;
            cur
        };
        let r = self.b.ins().isub(expected, old);
        self.flags_sub(expected, old, r, None);
        // On failure the accumulator gets the current value (on success it already equals it).
        self.write_reg(acc_reg, old);
        Ok(())
    }

    fn xadd(&mut self, insn: &Insn) -> Result<()> {
        let ty = ty_of(self.op_size(insn, 0));
        let i = &insn.instr;
        let reg = i.op1_register();
        let v = self.read_reg(reg).ok_or_else(|| self.unsupported(insn))?;
        let old = if i.op0_kind() == OpKind::Memory {
            let addr = self.mem_addr(insn)?;
            self.stores += 1;
            self.b
                .ins()
                .atomic_rmw(ty, mem(), AtomicRmwOp::Add, addr, v)
        } else {
            let cur = self.read_op(insn, 0, ty)?;
            let sum = self.b.ins().iadd(cur, v);
            self.write_op(insn, 0, sum)?;
            cur
        };
        let sum = self.b.ins().iadd(old, v);
        self.flags_add(old, v, sum, None);
        self.write_reg(reg, old);
        Ok(())
    }

    /// `movs`/`stos`, with or without `rep` (DF is always clear in C code).
    fn string_op(&mut self, insn: &Insn, is_movs: bool) -> Result<()> {
        let w = insn.instr.memory_size().size().max(1);
        let ty = ty_of(w);
        let rep = insn.instr.has_rep_prefix() || insn.instr.has_repe_prefix();
        let body = |s: &mut Self| {
            let rdi = s.get64(RDI);
            let v = if is_movs {
                let rsi = s.get64(RSI);
                let v = s.b.ins().load(ty, mem(), rsi, 0);
                let rsi2 = s.b.ins().iadd_imm_s(rsi, w as i64);
                s.set64(RSI, rsi2);
                v
            } else {
                s.read_reg(match w {
                    1 => Register::AL,
                    2 => Register::AX,
                    4 => Register::EAX,
                    _ => Register::RAX,
                })
                .expect("accumulator")
            };
            s.store(v, rdi);
            let rdi2 = s.b.ins().iadd_imm_s(rdi, w as i64);
            s.set64(RDI, rdi2);
        };
        if !rep {
            body(self);
            return Ok(());
        }
        let head = self.b.create_block();
        let blk = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let rcx = self.get64(RCX);
        self.b.ins().brif(rcx, blk, &[], exit, &[]);
        self.b.switch_to_block(blk);
        body(self);
        let rcx = self.get64(RCX);
        let rcx2 = self.b.ins().iadd_imm_s(rcx, -1);
        self.set64(RCX, rcx2);
        self.b.ins().jump(head, &[]);
        self.b.seal_block(blk);
        self.b.seal_block(head);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
        Ok(())
    }
}

/// Builds the native (SysV) entry of a function: copy the caller's stack
/// arguments the function may read (`stack_words`, see `stack_args`) onto the
/// emulated stack, call the inner entry, restore the emulated stack pointer.
pub fn native_entry<M: Module>(
    mut b: FunctionBuilder<'_>,
    module: &mut M,
    esp: DataId,
    inner: FuncId,
    sfi: Option<DataId>,
    stack_words: usize,
) {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    let gv = module.declare_data_in_func(esp, b.func);
    let esp_addr = b.ins().symbol_value(I64, gv);
    let esp0 = b.ins().load(I64, mem(), esp_addr, 0);
    let below = b.ins().iadd_imm_s(esp0, -((8 * STACK_ARGS) as i64));
    let area = b.ins().band_imm_s(below, !15);
    let words = stack_words.min(STACK_ARGS);
    if let (Some(state), true) = (sfi, words > 0) {
        // The copy writes below a pointer the driver published (a stack
        // pivot moves it anywhere): under SFI it is checked like any of the
        // driver's stores. This wrapper is not instrumented (see
        // `instrument`), so the check is spelled out, against the window's
        // low bound in the runtime state.
        use crate::instrument::layout;
        let gv = module.declare_data_in_func(state, b.func);
        let base = b.ins().symbol_value(I64, gv);
        let lo = b
            .ins()
            .load(I64, crate::instrument::rewriter_flags(), base, layout::LO);
        // The check covers the 15 bytes alignment may move the area down
        // too, so it tests `below` itself, from which the load-time verifier
        // can bound the aligned area (`area = below - t`, t in 0..16).
        let first = b.ins().iadd_imm_s(below, -15);
        let off = b.ins().isub(first, lo);
        let outside = b.ins().icmp_imm_s(
            IntCC::UnsignedGreaterThan,
            off,
            (layout::SPAN - 8 * words as u64 - 15) as i64,
        );
        let refuse = b.create_block();
        let copy = b.create_block();
        b.ins().brif(outside, refuse, &[], copy, &[]);
        b.set_cold_block(refuse);
        b.switch_to_block(refuse);
        b.seal_block(refuse);
        crate::instrument::refuse(&mut b, base, area, crate::instrument::FaultKind::WildStore);
        b.switch_to_block(copy);
        b.seal_block(copy);
    }
    for k in 0..words {
        b.ins().store(mem(), params[6 + k], area, (8 * k) as i32);
    }
    let fr = module.declare_func_in_func(inner, b.func);
    let mut args = params[..6].to_vec();
    args.push(area);
    // RAX: native callers pass nothing in it (a variadic callee reads AL as
    // the count of vector registers used: none).
    args.push(b.ins().iconst(I64, 0));
    let state = sfi.map(|id| module.declare_data_in_func(id, b.func));
    let at_entry = state.map(|gv| crate::instrument::entry_state(&mut b, gv));
    let call = b.ins().call(fr, &args);
    let rs = b.inst_results(call).to_vec();
    b.ins().store(mem(), esp0, esp_addr, 0);
    if let (Some(gv), Some(at_entry)) = (state, at_entry) {
        crate::instrument::check_after(&mut b, gv, at_entry);
    }
    b.ins().return_(&rs);
    b.finalize(module.isa().frontend_config());
}
