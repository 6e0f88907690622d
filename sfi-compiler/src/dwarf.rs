//! DWARF line information for the rewritten code: every output instruction
//! carries the offset of the input instruction it came from (Cranelift source
//! locations), which the input's own line table turns into `file:line`. The
//! result is a compile unit with a `.debug_line` program and the functions'
//! ranges, relocated against the output symbols, so `addr2line`, `objdump -dl`
//! and gdb map rewritten code back to the driver's source.

use crate::HashMap;
use crate::error::{ErrorKind, Result, RewriteError};
use cranelift_object::object::write::{Object, Relocation, SectionId as OutSection, SymbolId};
use cranelift_object::object::{RelocationEncoding, RelocationFlags, RelocationKind, SectionKind};
use gimli::write::{
    Address, AttributeValue, DwarfUnit, EndianVec, LineProgram, LineString, Range, RangeList,
    RelocateWriter, Relocation as DwRelocation, RelocationTarget, Sections,
};
use gimli::{Encoding, Format, LineEncoding, LittleEndian, SectionId};

/// The line rows of one output function.
#[derive(Debug, Clone)]
pub struct FunctionLines {
    /// Its output symbol.
    pub symbol: SymbolId,
    /// Its code size.
    pub size: u64,
    /// (code offset, source file, line), by code offset.
    pub rows: Vec<(u64, String, u64)>,
}

#[derive(Clone)]
struct Section {
    writer: EndianVec<LittleEndian>,
    relocations: Vec<DwRelocation>,
}

impl RelocateWriter for Section {
    type Writer = EndianVec<LittleEndian>;
    fn writer(&self) -> &Self::Writer {
        &self.writer
    }
    fn writer_mut(&mut self) -> &mut Self::Writer {
        &mut self.writer
    }
    fn relocate(&mut self, r: DwRelocation) {
        self.relocations.push(r);
    }
}

fn err(e: impl std::fmt::Display) -> RewriteError {
    RewriteError::new(ErrorKind::Output(format!("DWARF: {e}")))
}

/// Adds `.debug_info`, `.debug_abbrev`, `.debug_line` (and friends) to `obj`.
pub fn add(obj: &mut Object<'_>, functions: &[FunctionLines], producer: &str) -> Result<()> {
    if functions.iter().all(|f| f.rows.is_empty()) {
        return Ok(());
    }
    let encoding = Encoding {
        format: Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let mut dwarf = DwarfUnit::new(encoding);
    // gimli refuses an empty file name; a (malformed) input may give one.
    let named = |f: &str| -> Vec<u8> {
        if f.is_empty() {
            b"<unnamed>".to_vec()
        } else {
            f.as_bytes().to_vec()
        }
    };
    let first_file = functions
        .iter()
        .flat_map(|f| f.rows.first())
        .map(|r| r.1.clone())
        .next()
        .unwrap_or_default();
    let mut program = LineProgram::new(
        encoding,
        LineEncoding::default(),
        LineString::String(b"/".to_vec()),
        None,
        LineString::String(named(&first_file)),
        None,
    );
    let dir = program.default_directory();
    let mut files = HashMap::default();
    let mut ranges = Vec::new();
    for (index, f) in functions.iter().enumerate() {
        if f.rows.is_empty() {
            continue;
        }
        let start = Address::Symbol {
            symbol: index,
            addend: 0,
        };
        ranges.push(Range::StartLength {
            begin: start,
            length: f.size,
        });
        program.begin_sequence(Some(start));
        for (offset, file, line) in &f.rows {
            let id = *files
                .entry(file.clone())
                .or_insert_with(|| program.add_file(LineString::String(named(file)), dir, None));
            let row = program.row();
            row.address_offset = *offset;
            row.file = id;
            row.line = *line;
            program.generate_row();
        }
        program.end_sequence(f.size);
    }
    dwarf.unit.line_program = program;
    let range_list = dwarf.unit.ranges.add(RangeList(ranges));
    let root = dwarf.unit.root();
    let entry = dwarf.unit.get_mut(root);
    entry.set(
        gimli::DW_AT_producer,
        AttributeValue::String(producer.as_bytes().to_vec()),
    );
    entry.set(
        gimli::DW_AT_name,
        AttributeValue::String(first_file.into_bytes()),
    );
    entry.set(gimli::DW_AT_comp_dir, AttributeValue::String(b"/".to_vec()));
    entry.set(
        gimli::DW_AT_low_pc,
        AttributeValue::Address(Address::Constant(0)),
    );
    entry.set(
        gimli::DW_AT_ranges,
        AttributeValue::RangeListRef(range_list),
    );

    let mut sections = Sections::new(Section {
        writer: EndianVec::new(LittleEndian),
        relocations: Vec::new(),
    });
    dwarf.write(&mut sections).map_err(err)?;
    let mut ids: HashMap<SectionId, OutSection> = HashMap::default();
    sections
        .for_each(|id, s| -> std::result::Result<(), gimli::write::Error> {
            if !s.writer.slice().is_empty() {
                let out = obj.add_section(
                    Vec::new(),
                    id.name().as_bytes().to_vec(),
                    SectionKind::Debug,
                );
                obj.append_section_data(out, s.writer.slice(), 1);
                ids.insert(id, out);
            }
            Ok(())
        })
        .map_err(err)?;
    let mut failure = None;
    sections
        .for_each(|id, s| -> std::result::Result<(), gimli::write::Error> {
            let Some(&out) = ids.get(&id) else {
                return Ok(());
            };
            for r in &s.relocations {
                let (symbol, addend) = match r.target {
                    RelocationTarget::Symbol(i) => (functions[i].symbol, r.addend),
                    RelocationTarget::Section(target) => match ids.get(&target) {
                        Some(&t) => (obj.section_symbol(t), r.addend),
                        None => continue,
                    },
                };
                let flags = RelocationFlags::Generic {
                    kind: RelocationKind::Absolute,
                    encoding: RelocationEncoding::Generic,
                    size: r.size * 8,
                };
                if let Err(e) = obj.add_relocation(
                    out,
                    Relocation {
                        offset: r.offset as u64,
                        symbol,
                        addend,
                        flags,
                    },
                ) {
                    failure = Some(e.to_string());
                }
            }
            Ok(())
        })
        .map_err(err)?;
    match failure {
        Some(e) => Err(err(e)),
        None => Ok(()),
    }
}
