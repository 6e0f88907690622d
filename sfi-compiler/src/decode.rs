//! Stage 2, decode: a function's bytes into iced-x86 instructions, each with
//! the input relocation that patches one of its fields, and the function's
//! basic-block starts.

use crate::error::{ErrorKind, Result, RewriteError};
use crate::read::{Function, Input, Reloc};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Formatter, Instruction, IntelFormatter};
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
}

/// A decoded function.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Its instructions in address order.
    pub insns: Vec<Insn>,
    /// Offsets that start a basic block.
    pub block_starts: BTreeSet<u64>,
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
    RewriteError {
        kind,
        function: Some(f.name.clone()),
        offset: Some(ip - f.offset),
        line: input.line_of(f.section, ip),
        disassembly: instr.map(disassemble),
    }
}

/// Decodes function `f`.
pub fn decode(input: &Input, f: &Function) -> Result<Decoded> {
    let section = &input.sections[f.section];
    let start = f.offset as usize;
    let end = start
        .checked_add(f.size as usize)
        .filter(|&e| e <= section.data.len())
        .ok_or_else(|| RewriteError {
            function: Some(f.name.clone()),
            ..RewriteError::new(ErrorKind::BadInput(
                "function extends past its section".into(),
            ))
        })?;
    let bytes = &section.data[start..end];
    let mut decoder = Decoder::with_ip(64, bytes, f.offset, DecoderOptions::NONE);
    let mut insns = Vec::new();
    let mut block_starts = BTreeSet::new();
    block_starts.insert(f.offset);
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
        let mut reloc = None;
        let mut imm_reloc = None;
        let first = section.relocs.partition_point(|r| r.offset < ip);
        for r in section.relocs[first..]
            .iter()
            .take_while(|r| r.offset < next)
        {
            let at = (r.offset - ip) as usize;
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
                to_end: next - r.offset,
            });
        }
        match instr.flow_control() {
            FlowControl::ConditionalBranch => {
                if reloc.is_none() {
                    block_starts.insert(instr.near_branch_target());
                }
                block_starts.insert(next);
                after_terminator = false;
            }
            FlowControl::UnconditionalBranch => {
                if reloc.is_none()
                    && instr.near_branch_target() >= f.offset
                    && instr.near_branch_target() < f.offset + f.size
                {
                    block_starts.insert(instr.near_branch_target());
                }
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
        });
    }
    Ok(Decoded {
        insns,
        block_starts,
    })
}
