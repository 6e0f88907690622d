//! Unwind information for the rewritten code: the input's `.eh_frame`
//! describes gcc's code, which the output no longer has, so it is dropped
//! (`read`), and every compiled function gets a frame description entry from
//! what Cranelift knows of the frame it built (System V unwind info), under
//! one CIE. gdb and the C library's unwinder then walk through rewritten
//! frames on the real stack.

use crate::error::{ErrorKind, Result, RewriteError};
use cranelift_codegen::gimli;
use cranelift_codegen::gimli::write::{
    Address, EhFrame, EndianVec, FrameTable, RelocateWriter, Relocation as GimliRelocation,
    RelocationTarget,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_object::object::write::{Object, Relocation, SymbolId};
use cranelift_object::object::{RelocationEncoding, RelocationFlags, RelocationKind, SectionKind};

struct Section {
    writer: EndianVec<gimli::LittleEndian>,
    relocations: Vec<GimliRelocation>,
}

impl RelocateWriter for Section {
    type Writer = EndianVec<gimli::LittleEndian>;
    fn writer(&self) -> &Self::Writer {
        &self.writer
    }
    fn writer_mut(&mut self) -> &mut Self::Writer {
        &mut self.writer
    }
    fn relocate(&mut self, r: GimliRelocation) {
        self.relocations.push(r);
    }
}

fn err(e: impl std::fmt::Display) -> RewriteError {
    RewriteError::new(ErrorKind::Output(format!(".eh_frame: {e}")))
}

/// Adds `.eh_frame` with an FDE for each of `functions` (output symbol and
/// Cranelift's unwind info) to `obj`.
pub fn add(
    obj: &mut Object<'_>,
    isa: &dyn TargetIsa,
    functions: &[(SymbolId, UnwindInfo)],
) -> Result<()> {
    let Some(cie) = isa.create_systemv_cie() else {
        return Ok(());
    };
    let mut table = FrameTable::default();
    let cie_id = table.add_cie(cie);
    let mut any = false;
    for (i, (_, info)) in functions.iter().enumerate() {
        if let UnwindInfo::SystemV(info) = info {
            table.add_fde(
                cie_id,
                info.to_fde(Address::Symbol {
                    symbol: i,
                    addend: 0,
                }),
            );
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    let mut eh = EhFrame(Section {
        writer: EndianVec::new(gimli::LittleEndian),
        relocations: Vec::new(),
    });
    table.write_eh_frame(&mut eh).map_err(err)?;
    let section = obj.add_section(Vec::new(), b".eh_frame".to_vec(), SectionKind::ReadOnlyData);
    obj.append_section_data(section, eh.0.writer.slice(), 8);
    for r in &eh.0.relocations {
        let RelocationTarget::Symbol(i) = r.target else {
            return Err(err("a relocation against a section"));
        };
        let relative = r
            .eh_pe
            .is_some_and(|pe| pe.application() == gimli::DW_EH_PE_pcrel);
        let flags = RelocationFlags::Generic {
            kind: if relative {
                RelocationKind::Relative
            } else {
                RelocationKind::Absolute
            },
            encoding: RelocationEncoding::Generic,
            size: r.size * 8,
        };
        obj.add_relocation(
            section,
            Relocation {
                offset: r.offset as u64,
                symbol: functions[i].0,
                addend: r.addend,
                flags,
            },
        )
        .map_err(err)?;
    }
    Ok(())
}
