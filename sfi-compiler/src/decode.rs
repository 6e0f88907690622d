//! Stage 2, decode: a function's bytes into iced-x86 instructions, each with
//! the input relocation that patches one of its fields, the function's
//! basic-block starts, and its jump tables.
//!
//! A jump table is what gcc emits for a dense `switch` without `-fpic`: an
//! array of 8-byte code addresses in `.rodata` (each an `R_X86_64_64`
//! relocation into the function's own section), read by
//! `jmp [table + idx*8]` or, at -O0, `mov reg, [table + idx*8]; jmp reg`.
//! The decoder finds the table behind such an operand and its entries (the
//! run of relocations that point into this function); the lifter turns the
//! jump into direct branches to those blocks (`Lifter::table_jump`), so the
//! targets are the function's own and no check is lost.

use crate::error::{ErrorKind, Result, RewriteError};
use crate::read::{COLD_BASE, Function, Input, Kind, Part, Reloc};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Formatter, Instruction, IntelFormatter};
use nooks_policy::abi::reloc::{
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32,
};
use std::collections::BTreeSet;

/// Which field of an instruction a relocation patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The memory operand's displacement (or a branch's relative target).
    Displacement,
    /// The immediate operand.
    Immediate,
}

/// A relocation applied to an instruction.
#[derive(Debug, Clone, Copy)]
pub struct InsnReloc {
    /// The relocation.
    pub reloc: Reloc,
    /// The field it patches.
    pub field: Field,
    /// Bytes from the field's start to the end of the instruction (for
    /// PC-relative arithmetic: the CPU adds the next instruction's address).
    pub to_end: u64,
}

/// One decoded instruction.
#[derive(Debug, Clone)]
pub struct Insn {
    /// Offset in its section.
    pub ip: u64,
    /// The instruction.
    pub instr: Instruction,
    /// The relocation of its displacement (or branch target), if any.
    pub reloc: Option<InsnReloc>,
    /// The relocation of its immediate, if any.
    pub imm_reloc: Option<InsnReloc>,
    /// The jump table (index in [`Decoded::tables`]) its memory operand
    /// reads, if it is a `jmp` or `mov` through one.
    pub table: Option<usize>,
    /// For a direct `jmp`/`jcc` to code of the same function (either part):
    /// the target's address.
    pub branch: Option<u64>,
}

/// A jump table of the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpTable {
    /// Its data section.
    pub section: usize,
    /// Offset of its first entry there.
    pub offset: u64,
    /// The code offsets (in the function's section) of its entries, in order.
    pub targets: Vec<u64>,
}

/// A decoded function.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Its instructions in address order.
    pub insns: Vec<Insn>,
    /// Offsets that start a basic block.
    pub block_starts: BTreeSet<u64>,
    /// The jump tables its instructions read.
    pub tables: Vec<JumpTable>,
}

/// The jump table behind `instr`'s memory operand, if it reads one: an
/// 8-byte load from `[disp + idx*8]` (no base) whose displacement is an
/// absolute relocation to a data section where 8-byte absolute relocations
/// into `f` follow each other. The run ends at the first entry that is not
/// one (a neighbouring table of the same function may be taken in: its
/// targets are blocks of `f` too, and gcc's bounds check precedes the jump).
fn jump_table(
    input: &Input,
    f: &Function,
    instr: &Instruction,
    reloc: &Reloc,
) -> Option<JumpTable> {
    use iced_x86::{Code, Register};
    let through_table = matches!(instr.code(), Code::Jmp_rm64 | Code::Mov_r64_rm64)
        && instr.op_kind(instr.op_count() - 1) == iced_x86::OpKind::Memory
        && instr.memory_base() == Register::None
        && instr.memory_index() != Register::None
        && instr.memory_index_scale() == 8
        && matches!(reloc.r_type, R_X86_64_32 | R_X86_64_32S);
    if !through_table {
        return None;
    }
    let (section, start) = input.target(reloc.symbol, reloc.addend)?;
    let data = input.sections.get(section)?;
    if !matches!(data.kind, Kind::Rodata | Kind::Data) {
        return None;
    }
    let start = u64::try_from(start).ok()?;
    let mut targets = Vec::new();
    let mut at = data.relocs.partition_point(|r| r.offset < start);
    loop {
        let Some(want) = start.checked_add(8 * targets.len() as u64) else {
            break;
        };
        let Some(r) = data
            .relocs
            .get(at)
            .filter(|r| r.offset == want && r.r_type == R_X86_64_64)
        else {
            break;
        };
        let Some((sec, off)) = input.target(r.symbol, r.addend) else {
            break;
        };
        let Some(t) = u64::try_from(off).ok().and_then(|o| f.address_of(sec, o)) else {
            break;
        };
        targets.push(t);
        at += 1;
    }
    (!targets.is_empty()).then_some(JumpTable {
        section,
        offset: start,
        targets,
    })
}

/// Disassembles one instruction (Intel syntax).
pub fn disassemble(instr: &Instruction) -> String {
    let mut out = String::new();
    IntelFormatter::new().format(instr, &mut out);
    out
}

/// An error located at an instruction of `f`.
pub fn error_at(
    input: &Input,
    f: &Function,
    ip: u64,
    instr: Option<&Instruction>,
    kind: ErrorKind,
) -> RewriteError {
    let (section, offset) = f.locate(ip);
    RewriteError {
        kind,
        function: Some(f.name.clone()),
        offset: Some(u64::from(f.srcloc(ip) & 0x7fff_ffff)),
        line: input.line_of(section, offset),
        disassembly: instr.map(disassemble),
    }
}

/// Decodes function `f`: its main part, then its cold part (at
/// [`COLD_BASE`]) if it has one.
pub fn decode(input: &Input, f: &Function) -> Result<Decoded> {
    let mut parts = vec![f.main_part()];
    parts.extend(f.cold);
    let mut insns = Vec::new();
    let mut block_starts = BTreeSet::new();
    block_starts.insert(f.offset);
    let mut tables: Vec<JumpTable> = Vec::new();
    for (k, part) in parts.into_iter().enumerate() {
        let base = if k == 0 { 0 } else { COLD_BASE };
        block_starts.insert(base + part.offset);
        decode_part(
            input,
            f,
            part,
            base,
            &mut insns,
            &mut block_starts,
            &mut tables,
        )?;
    }
    Ok(Decoded {
        insns,
        block_starts,
        tables,
    })
}

/// The in-function target of a direct branch (`jmp`/`jcc` with a 32-bit
/// displacement) in `part` (decoded at `base`): the decoder's own, or, with
/// a relocation (a jump between the main and the cold part), where the
/// relocation points.
fn branch_target(
    input: &Input,
    f: &Function,
    (part, base): (Part, u64),
    instr: &Instruction,
    reloc: Option<&InsnReloc>,
) -> Option<u64> {
    match reloc {
        None => f.address_of(part.section, instr.near_branch_target().checked_sub(base)?),
        Some(r) if matches!(r.reloc.r_type, R_X86_64_PC32 | R_X86_64_PLT32) => {
            let (sec, off) =
                input.target(r.reloc.symbol, r.reloc.addend.wrapping_add(r.to_end as i64))?;
            f.address_of(sec, u64::try_from(off).ok()?)
        }
        Some(_) => None,
    }
}

/// Decodes one part of `f` into `insns`, its instructions at `base` plus
/// their section offsets.
#[allow(clippy::too_many_arguments)]
fn decode_part(
    input: &Input,
    f: &Function,
    part: Part,
    base: u64,
    insns: &mut Vec<Insn>,
    block_starts: &mut BTreeSet<u64>,
    tables: &mut Vec<JumpTable>,
) -> Result<()> {
    let section = &input.sections[part.section];
    let start = part.offset as usize;
    let end = start
        .checked_add(part.size as usize)
        .filter(|&e| e <= section.data.len())
        .ok_or_else(|| RewriteError {
            function: Some(f.name.clone()),
            ..RewriteError::new(ErrorKind::BadInput(
                "function extends past its section".into(),
            ))
        })?;
    let bytes = &section.data[start..end];
    let mut decoder = Decoder::with_ip(64, bytes, base + part.offset, DecoderOptions::NONE);
    let mut instr = Instruction::default();
    let mut after_terminator = false;
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        let ip = instr.ip();
        if instr.is_invalid() {
            return Err(error_at(
                input,
                f,
                ip,
                None,
                ErrorKind::BadInput("undecodable bytes".into()),
            ));
        }
        if after_terminator {
            block_starts.insert(ip);
        }
        let offsets = decoder.get_constant_offsets(&instr);
        let next = ip + instr.len() as u64;
        let (at_ip, at_next) = (ip - base, next - base);
        let mut reloc = None;
        let mut imm_reloc = None;
        let first = section.relocs.partition_point(|r| r.offset < at_ip);
        for r in section.relocs[first..]
            .iter()
            .take_while(|r| r.offset < at_next)
        {
            let at = (r.offset - at_ip) as usize;
            let field =
                if instr.is_call_near() || instr.is_jmp_near() || instr.is_jcc_short_or_near() {
                    Field::Displacement
                } else if offsets.has_displacement() && at == offsets.displacement_offset() {
                    Field::Displacement
                } else if offsets.has_immediate() && at == offsets.immediate_offset() {
                    Field::Immediate
                } else {
                    return Err(error_at(
                        input,
                        f,
                        ip,
                        Some(&instr),
                        ErrorKind::UnsupportedRelocation(format!(
                            "type {} lands inside no field",
                            r.r_type
                        )),
                    ));
                };
            let slot = if field == Field::Immediate {
                &mut imm_reloc
            } else {
                &mut reloc
            };
            if slot.is_some() {
                return Err(error_at(
                    input,
                    f,
                    ip,
                    Some(&instr),
                    ErrorKind::UnsupportedRelocation("two relocations in one field".into()),
                ));
            }
            *slot = Some(InsnReloc {
                reloc: *r,
                field,
                to_end: at_next - r.offset,
            });
        }
        let table = reloc
            .as_ref()
            .and_then(|r| jump_table(input, f, &instr, &r.reloc))
            .map(|t| {
                block_starts.extend(t.targets.iter().copied());
                tables.iter().position(|x| *x == t).unwrap_or_else(|| {
                    tables.push(t);
                    tables.len() - 1
                })
            });
        let mut branch = None;
        match instr.flow_control() {
            FlowControl::ConditionalBranch => {
                branch = branch_target(input, f, (part, base), &instr, reloc.as_ref());
                block_starts.extend(branch);
                block_starts.insert(next);
                after_terminator = false;
            }
            FlowControl::UnconditionalBranch => {
                branch = branch_target(input, f, (part, base), &instr, reloc.as_ref());
                block_starts.extend(branch);
                after_terminator = true;
            }
            FlowControl::Return | FlowControl::IndirectBranch | FlowControl::Exception => {
                after_terminator = true
            }
            _ => after_terminator = false,
        }
        insns.push(Insn {
            ip,
            instr,
            reloc,
            imm_reloc,
            table,
            branch,
        });
    }
    Ok(())
}
