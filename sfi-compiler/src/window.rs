//! The window's low bound as a link-time constant.
//!
//! A store check computes `off = addr - lo` and compares it with an
//! immediate (every window spans `SPAN` bytes). `lo` differs from domain to
//! domain, but the kernel loads a copy of the object's code into each domain,
//! so `-lo` is a link-time constant as well: the check is
//! `lea off, [addr + (k - lo)]; cmp off, imm; jae`, its displacement
//! relocated (`R_X86_64_32S`) against [`SYMBOL`], whose value is `-lo`.
//! Nothing is loaded, no register is reserved for the bound, and Cranelift
//! hoists a loop-invariant check like any other arithmetic.
//!
//! Cranelift has no relocated displacement, so a check adds a placeholder
//! instead; after compiling, [`sites`] finds it in the machine code and
//! [`relocate`] turns each site into a relocation (the field then holds the
//! addend). The placeholder is a constant the body does not compute with:
//! [`placeholder`] picks one clear of every constant in it, and the
//! instrumentation falls back to loading `lo` for an address whose constant
//! part could carry the sum out of [`sites`]' reach.
//!
//! The object defines [`SYMBOL`] weak and absolute, 0 (a window from address
//! 0, and by default the slow path accepts what lies beyond it), so it links
//! into a host program as it is (without PIE: the relocations are absolute);
//! the kernel's loader gives it each domain's value, as a link with
//! `--defsym` does on the host.

use crate::error::{ErrorKind, Result, RewriteError};
use cranelift_codegen::ir::{self, InstructionData};
use cranelift_object::object::write::{Object, Relocation, Symbol, SymbolId, SymbolSection};
use cranelift_object::object::{RelocationFlags, SymbolFlags, SymbolKind, SymbolScope, elf};
use iced_x86::{Decoder, DecoderOptions, FlowControl, OpKind};

/// The symbol whose value is minus the window's lowest writable address.
pub use nooks_policy::abi::WINDOW_SYMBOL as SYMBOL;

/// How far from the placeholder a displacement or immediate still counts as
/// a check's (`-lo` plus the constant part of the checked address).
pub const REACH: i64 = 1 << 20;

/// Where [`placeholder`] starts looking, and its step: every candidate, with
/// its reach, is a positive 32-bit displacement.
const FIRST: i64 = 0x4000_0000;
const STEP: i64 = 4 * REACH;

/// What a check adds in place of `-lo` until the code is emitted: a
/// constant at least twice [`REACH`] from every constant in the lifted body
/// (a check's field then cannot be mistaken for anything else, nor the sum
/// of one of those and a check's).
pub fn placeholder(func: &ir::Function, name: &str) -> Result<i64> {
    let mut constants = Vec::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            match func.dfg.insts[inst] {
                InstructionData::UnaryImm { imm, .. } => constants.push(imm.bits()),
                InstructionData::Load { offset, .. } | InstructionData::Store { offset, .. } => {
                    constants.push(offset.into())
                }
                _ => {}
            }
        }
    }
    let mut p = FIRST;
    while p + REACH < i64::from(i32::MAX) {
        if constants.iter().all(|&c| c.abs_diff(p) >= 2 * REACH as u64) {
            return Ok(p);
        }
        p += STEP;
    }
    Err(RewriteError {
        function: Some(name.to_string()),
        ..RewriteError::new(ErrorKind::PlaceholderClash(constants.len()))
    })
}

/// A field of the machine code that holds the placeholder plus an addend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// Byte offset of the 4-byte field in the function's code.
    pub offset: u32,
    /// What the check adds to `-lo`.
    pub addend: i32,
    /// The field is zero-extended (`mov r32, imm32`), not sign-extended.
    pub unsigned: bool,
}

/// Every field of `code` (one function's machine code) that holds
/// `placeholder` plus a check's constant. The code is decoded along its
/// control flow from its start, not byte after byte: Cranelift puts its
/// constants after the code, and data decoded as instructions could look
/// like a check.
pub fn sites(code: &[u8], placeholder: i64, name: &str) -> Result<Vec<Site>> {
    let fail = |what: String| RewriteError {
        function: Some(name.to_string()),
        ..RewriteError::new(ErrorKind::Codegen(what))
    };
    let mut found = Vec::new();
    let mut seen = crate::HashSet::default();
    let mut todo = vec![0u64];
    while let Some(ip) = todo.pop() {
        if !seen.insert(ip) || ip >= code.len() as u64 {
            continue;
        }
        let mut decoder = Decoder::with_ip(64, &code[ip as usize..], ip, DecoderOptions::NONE);
        let insn = decoder.decode();
        if insn.is_invalid() {
            return Err(fail(format!(
                "undecodable code at {ip:#x} while looking for window checks"
            )));
        }
        match insn.flow_control() {
            // The code's blocks must all be reached by this walk, or a
            // check's placeholder stays unrelocated (and then passes stores
            // into the first window). The lifter emits no indirect jump (a
            // jump table becomes direct branches), so one here is a bug.
            FlowControl::IndirectBranch => {
                return Err(fail(format!(
                    "an indirect jump at {ip:#x} hides its targets from the window-check relocation"
                )));
            }
            FlowControl::Return | FlowControl::Exception => {}
            // A jump to the next instruction is one to another function
            // (its displacement is a relocation's, still 0): it leaves.
            FlowControl::UnconditionalBranch if insn.near_branch_target() == insn.next_ip() => {}
            FlowControl::UnconditionalBranch => todo.push(insn.near_branch_target()),
            FlowControl::ConditionalBranch => {
                todo.extend([insn.near_branch_target(), insn.next_ip()])
            }
            _ => todo.push(insn.next_ip()),
        }
        let offsets = decoder.get_constant_offsets(&insn);
        let at = insn.ip() as u32;
        if offsets.has_displacement() && !insn.is_ip_rel_memory_operand() {
            let disp = insn.memory_displacement64() as i64;
            if disp.abs_diff(placeholder) < REACH as u64 {
                if offsets.displacement_size() != 4 {
                    return Err(fail(format!(
                        "window placeholder in a {}-byte displacement at {at:#x}",
                        offsets.displacement_size()
                    )));
                }
                found.push(Site {
                    offset: at + offsets.displacement_offset() as u32,
                    addend: (disp - placeholder) as i32,
                    unsigned: false,
                });
            }
        }
        if offsets.has_immediate() {
            for op in 0..insn.op_count() {
                let kind = insn.op_kind(op);
                let (value, unsigned) = match kind {
                    OpKind::Immediate32to64 => (insn.immediate(op) as i64, false),
                    OpKind::Immediate32 => (i64::from(insn.immediate(op) as u32), true),
                    OpKind::Immediate64 => (insn.immediate(op) as i64, false),
                    _ => continue,
                };
                if value.abs_diff(placeholder) >= REACH as u64 {
                    continue;
                }
                if kind == OpKind::Immediate64 || offsets.immediate_size() != 4 {
                    return Err(fail(format!(
                        "window placeholder in an immediate nooks-cc cannot relocate at {at:#x}"
                    )));
                }
                found.push(Site {
                    offset: at + offsets.immediate_offset() as u32,
                    addend: (value - placeholder) as i32,
                    unsigned,
                });
            }
        }
    }
    found.sort_unstable_by_key(|s| s.offset);
    Ok(found)
}

/// Defines [`SYMBOL`] (weak, absolute, 0) in `object`.
pub fn define_symbol(object: &mut Object<'_>) -> SymbolId {
    object.add_symbol(Symbol {
        name: SYMBOL.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Data,
        scope: SymbolScope::Linkage,
        weak: true,
        section: SymbolSection::Absolute,
        flags: SymbolFlags::None,
    })
}

/// Turns the sites of the function defined by `function` into relocations
/// against `window` ([`define_symbol`]'s), each field holding its addend.
pub fn relocate(
    object: &mut Object<'_>,
    function: SymbolId,
    window: SymbolId,
    sites: &[Site],
) -> Result<()> {
    let f = object.symbol(function);
    let (SymbolSection::Section(section), start) = (f.section, f.value) else {
        return Err(RewriteError::new(ErrorKind::Output(
            "a function with window checks has no section".into(),
        )));
    };
    for s in sites {
        let at = start + u64::from(s.offset);
        let data = object.section_mut(section).data_mut();
        let field = usize::try_from(at)
            .ok()
            .and_then(|at| data.get_mut(at..at + 4))
            .ok_or_else(|| {
                RewriteError::new(ErrorKind::Output("a window check beyond its code".into()))
            })?;
        field.copy_from_slice(&s.addend.to_le_bytes());
        object
            .add_relocation(
                section,
                Relocation {
                    offset: at,
                    symbol: window,
                    addend: i64::from(s.addend),
                    flags: RelocationFlags::Elf {
                        r_type: if s.unsigned {
                            elf::R_X86_64_32
                        } else {
                            elf::R_X86_64_32S
                        },
                    },
                },
            )
            .map_err(|e| RewriteError::new(ErrorKind::Output(e.to_string())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_displacements_and_immediates() {
        // lea rdi, [r14 + P + 0x38]; cmp rdi, 0x1bffff9; add rax, P - 8;
        // mov ecx, P; lea rax, [rip + P] (RIP-relative: not a site)
        let p = FIRST as i32;
        let mut code = vec![0x49, 0x8d, 0xbe];
        code.extend((p + 0x38).to_le_bytes());
        code.extend([0x48, 0x81, 0xff, 0xf9, 0xff, 0xbf, 0x01]);
        code.extend([0x48, 0x05]);
        code.extend((p - 8).to_le_bytes());
        code.push(0xb9);
        code.extend(p.to_le_bytes());
        code.extend([0x48, 0x8d, 0x05]);
        code.extend(p.to_le_bytes());
        let s = sites(&code, FIRST, "f").unwrap();
        assert_eq!(
            s,
            vec![
                Site {
                    offset: 3,
                    addend: 0x38,
                    unsigned: false
                },
                Site {
                    offset: 16,
                    addend: -8,
                    unsigned: false
                },
                Site {
                    offset: 21,
                    addend: 0,
                    unsigned: true
                },
            ]
        );
    }

    #[test]
    fn data_after_the_code_is_not_read_as_code() {
        // jae +9 (to the ret); lea rdi, [r14 + P]; ud2; ret;
        // then constants that decode as `lea rdi, [r14 + P]` and garbage.
        let p = FIRST as i32;
        let mut code = vec![0x73, 0x09, 0x49, 0x8d, 0xbe];
        code.extend(p.to_le_bytes());
        code.extend([0x0f, 0x0b, 0xc3, 0x49, 0x8d, 0xbe]);
        code.extend(p.to_le_bytes());
        code.extend([0x0f, 0xff, 0xff]);
        let s = sites(&code, FIRST, "f").unwrap();
        assert_eq!(
            s,
            vec![Site {
                offset: 5,
                addend: 0,
                unsigned: false
            }]
        );
    }

    #[test]
    fn refuses_a_short_displacement_or_a_64_bit_immediate() {
        // movabs rax, P
        let mut code = vec![0x48, 0xb8];
        code.extend(FIRST.to_le_bytes());
        assert!(sites(&code, FIRST, "f").is_err());
        assert!(
            sites(&[0x48, 0x8d, 0x47, 0x38], FIRST, "f")
                .unwrap()
                .is_empty()
        );
    }
}
