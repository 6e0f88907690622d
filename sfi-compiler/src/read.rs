//! Stage 1, read: the input object's sections, symbols and relocations (with
//! the `object` crate) and its line table (with `gimli`), checked to be an
//! x86-64 ELF relocatable object.

use crate::HashMap;
use crate::error::{ErrorKind, Result, RewriteError};
use nooks_policy::abi::reloc::{R_X86_64_32, R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32};
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionKind,
    SymbolKind, SymbolSection,
};

/// A symbol of the input.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// Its section, if defined in one.
    pub section: Option<usize>,
    /// Offset in its section (or absolute value).
    pub value: u64,
    /// Size.
    pub size: u64,
    /// ELF STT_FUNC.
    pub is_function: bool,
    /// ELF STT_SECTION.
    pub is_section: bool,
    /// Global or weak binding.
    pub is_global: bool,
    /// Weak binding.
    pub is_weak: bool,
    /// Undefined: an import.
    pub is_undefined: bool,
    /// A COMMON block.
    pub is_common: bool,
}

/// A relocation of the input.
#[derive(Debug, Clone, Copy)]
pub struct Reloc {
    /// Offset of the patched field in its section.
    pub offset: u64,
    /// ELF relocation type.
    pub r_type: u32,
    /// Symbol index.
    pub symbol: usize,
    /// Addend.
    pub addend: i64,
}

/// What a section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Executable code.
    Text,
    /// Read-only data.
    Rodata,
    /// Writable data.
    Data,
    /// Zero-initialised data.
    Bss,
    /// Not loaded (debug info, notes, symbol tables...).
    Other,
}

/// A section of the input.
#[derive(Debug, Clone)]
pub struct Section {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub kind: Kind,
    /// Its bytes (empty for bss).
    pub data: Vec<u8>,
    /// Size in memory.
    pub size: u64,
    /// Alignment.
    pub align: u64,
    /// Its relocations, sorted by offset.
    pub relocs: Vec<Reloc>,
}

/// A function to rewrite.
#[derive(Debug, Clone)]
pub struct Function {
    /// Symbol index.
    pub symbol: usize,
    /// Its name.
    pub name: String,
    /// Its text section.
    pub section: usize,
    /// Offset in the section.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// Other function symbols at the same address (`alias` attributes).
    pub aliases: Vec<usize>,
    /// The part gcc moved to another section (`foo.cold` in
    /// `.text.unlikely`, entered and left by jumps from the function).
    pub cold: Option<Part>,
}

/// A stretch of a function's code in a section of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Its text section.
    pub section: usize,
    /// Offset in the section.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Where a function's cold part starts in the addresses its instructions
/// are decoded at (the main part keeps its section offsets, far below).
pub const COLD_BASE: u64 = 1 << 40;

impl Function {
    /// Its main part: the code its symbol covers.
    pub fn main_part(&self) -> Part {
        Part {
            section: self.section,
            offset: self.offset,
            size: self.size,
        }
    }

    /// The (section, offset) an instruction address of the function is at.
    pub fn locate(&self, ip: u64) -> (usize, u64) {
        match self.cold {
            Some(c) if ip >= COLD_BASE => (c.section, ip - COLD_BASE),
            _ => (self.section, ip),
        }
    }

    /// The instruction address of (section, offset) if it is code of the
    /// function (either part).
    pub fn address_of(&self, section: usize, offset: u64) -> Option<u64> {
        let inside = |s: usize, o: u64, z: u64| s == section && offset >= o && offset - o < z;
        if inside(self.section, self.offset, self.size) {
            return Some(offset);
        }
        let c = self.cold?;
        inside(c.section, c.offset, c.size).then(|| COLD_BASE + offset)
    }

    /// The source-location word the lifter tags an instruction with: its
    /// offset in the main part, or in the cold part with the top bit set.
    pub fn srcloc(&self, ip: u64) -> u32 {
        match self.cold {
            Some(c) if ip >= COLD_BASE => 0x8000_0000 | (ip - COLD_BASE - c.offset) as u32,
            _ => (ip - self.offset) as u32,
        }
    }

    /// [`Function::srcloc`] back to (section, offset).
    pub fn from_srcloc(&self, loc: u32) -> (usize, u64) {
        match self.cold {
            Some(c) if loc & 0x8000_0000 != 0 => {
                (c.section, c.offset + u64::from(loc & 0x7fff_ffff))
            }
            _ => (self.section, self.offset + u64::from(loc)),
        }
    }
}

/// The parsed input.
#[derive(Debug)]
pub struct Input {
    /// Sections, indexed like the ELF section headers.
    pub sections: Vec<Section>,
    /// Symbols, indexed like the ELF symbol table.
    pub symbols: Vec<Symbol>,
    /// Functions, in section and offset order.
    pub functions: Vec<Function>,
    /// Line table: (section, offset) → (file, line), sorted.
    pub lines: Vec<(usize, u64, String, u64)>,
}

fn bad(s: impl Into<String>) -> RewriteError {
    RewriteError::new(ErrorKind::BadInput(s.into()))
}

/// Reads and checks an input object.
pub fn read(bytes: &[u8]) -> Result<Input> {
    let file = object::File::parse(bytes).map_err(|e| bad(format!("not an object file: {e}")))?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(bad(format!("{:?} is not ELF", file.format())));
    }
    if file.architecture() != object::Architecture::X86_64 {
        return Err(bad(format!(
            "architecture {:?} is not x86-64",
            file.architecture()
        )));
    }
    if file.kind() != object::ObjectKind::Relocatable {
        return Err(bad(format!(
            "{:?} object, not relocatable (compile with -c)",
            file.kind()
        )));
    }
    let count = file.sections().map(|s| s.index().0 + 1).max().unwrap_or(0);
    let mut sections: Vec<Section> = (0..count)
        .map(|_| Section {
            name: String::new(),
            kind: Kind::Other,
            data: Vec::new(),
            size: 0,
            align: 1,
            relocs: Vec::new(),
        })
        .collect();
    for s in file.sections() {
        let kind = match s.kind() {
            SectionKind::Text => Kind::Text,
            SectionKind::ReadOnlyData
            | SectionKind::ReadOnlyString
            | SectionKind::ReadOnlyDataWithRel => Kind::Rodata,
            SectionKind::Data => Kind::Data,
            SectionKind::UninitializedData => Kind::Bss,
            _ => Kind::Other,
        };
        let name = s.name().unwrap_or("").to_string();
        // The input's unwind tables describe gcc's code, which the output
        // does not have: dropped, and rebuilt for the rewritten code (`unwind`).
        let kind = if name == ".eh_frame" {
            Kind::Other
        } else {
            kind
        };
        let data = if kind == Kind::Bss {
            Vec::new()
        } else {
            s.data()
                .map_err(|e| bad(format!("section {name}: {e}")))?
                .to_vec()
        };
        let mut relocs = Vec::new();
        for (offset, r) in s.relocations() {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                return Err(bad("non-ELF relocation"));
            };
            if r_type.0 == 0 {
                continue; // R_X86_64_NONE: nothing to patch (the injector neutralises calls this way)
            }
            let symbol = match r.target() {
                RelocationTarget::Symbol(i) => i.0,
                other => return Err(bad(format!("relocation target {other:?} in {name}"))),
            };
            relocs.push(Reloc {
                offset,
                r_type: r_type.0,
                symbol,
                addend: r.addend(),
            });
        }
        relocs.sort_by_key(|r| r.offset);
        let i = s.index().0;
        sections[i] = Section {
            name,
            kind,
            data,
            size: s.size(),
            align: s.align().max(1),
            relocs,
        };
    }
    let nsyms = file.symbols().map(|s| s.index().0 + 1).max().unwrap_or(0);
    let mut symbols: Vec<Symbol> = (0..nsyms.max(1))
        .map(|_| Symbol {
            name: String::new(),
            section: None,
            value: 0,
            size: 0,
            is_function: false,
            is_section: false,
            is_global: false,
            is_weak: false,
            is_undefined: false,
            is_common: false,
        })
        .collect();
    for s in file.symbols() {
        let (section, is_undefined, is_common) = match s.section() {
            SymbolSection::Section(i) => (Some(i.0), false, false),
            SymbolSection::Undefined => (None, true, false),
            SymbolSection::Common => (None, false, true),
            _ => (None, false, false),
        };
        symbols[s.index().0] = Symbol {
            name: s.name().unwrap_or("").to_string(),
            section,
            value: s.address(),
            size: s.size(),
            is_function: s.kind() == SymbolKind::Text,
            is_section: s.kind() == SymbolKind::Section,
            is_global: s.is_global() || s.is_weak(),
            is_weak: s.is_weak(),
            is_undefined: is_undefined && !s.name().unwrap_or("").is_empty(),
            is_common,
        };
    }
    // What the rest of nooks-cc indexes by must be in range: a malformed
    // object is an error here, never a panic later.
    // Sizes and alignments past what any driver has (a domain's window is
    // 28 MiB) are refused too: writing them out would take gigabytes.
    const MAX_SIZE: u64 = 64 << 20;
    const MAX_ALIGN: u64 = 64 << 10;
    for s in &symbols {
        if let Some(sec) = s.section
            && sec >= sections.len()
        {
            return Err(bad(format!(
                "symbol `{}` is in section {sec}, which does not exist",
                s.name
            )));
        }
        if s.is_common
            && (!s.value.max(1).is_power_of_two() || s.value > MAX_ALIGN || s.size > MAX_SIZE)
        {
            return Err(bad(format!(
                "common symbol `{}`: alignment {} and size {} (a power of two up to 64 KiB, at most 64 MiB)",
                s.name, s.value, s.size
            )));
        }
    }
    for sec in &sections {
        if sec.size > MAX_SIZE {
            return Err(bad(format!(
                "section {} is {} bytes: more than nooks-cc handles (64 MiB)",
                sec.name, sec.size
            )));
        }
        if !sec.align.is_power_of_two() {
            return Err(bad(format!(
                "section {} is aligned to {}, not a power of two",
                sec.name, sec.align
            )));
        }
        if sec.align > MAX_ALIGN {
            return Err(bad(format!(
                "section {} is aligned to {} bytes: more than nooks-cc handles (64 KiB)",
                sec.name, sec.align
            )));
        }
        if let Some(r) = sec.relocs.iter().find(|r| r.symbol >= symbols.len()) {
            return Err(bad(format!(
                "a relocation in {} names symbol {}, which does not exist",
                sec.name, r.symbol
            )));
        }
    }
    let mut functions: Vec<Function> = symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_function && s.size > 0)
        .filter_map(|(i, s)| {
            let sec = s.section?;
            (sections.get(sec)?.kind == Kind::Text).then(|| Function {
                symbol: i,
                name: s.name.clone(),
                section: sec,
                offset: s.value,
                size: s.size,
                aliases: Vec::new(),
                cold: None,
            })
        })
        .collect();
    // One function per address; global names first, the others become aliases.
    functions.sort_by_key(|f| (f.section, f.offset, !symbols[f.symbol].is_global, f.symbol));
    let mut merged: Vec<Function> = Vec::new();
    for f in functions {
        match merged.last_mut() {
            Some(last) if (last.section, last.offset) == (f.section, f.offset) => {
                last.aliases.push(f.symbol)
            }
            _ => merged.push(f),
        }
    }
    let functions = attach_cold_parts(merged, &sections, &symbols);
    let lines = line_table(&file, &sections, &symbols).unwrap_or_default();
    Ok(Input {
        sections,
        symbols,
        functions,
        lines,
    })
}

/// gcc's hot/cold splitting (`-freorder-blocks-and-partition`, on at -O2)
/// moves a function's unlikely blocks to `.text.unlikely` under a local
/// symbol `<name>.cold`, which the function enters and leaves by jumps:
/// code of the function, with its frame. Each such part whose jumps come
/// from exactly one function becomes that function's `cold` part (and is no
/// function of its own); any other stays a function, which then fails to
/// lift with a located error.
fn attach_cold_parts(
    mut functions: Vec<Function>,
    sections: &[Section],
    symbols: &[Symbol],
) -> Vec<Function> {
    let fragments: Vec<usize> = (0..functions.len())
        .filter(|&i| {
            let n = &functions[i].name;
            n.ends_with(".cold")
                || n.rsplit_once(".cold.")
                    .is_some_and(|(_, k)| k.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    let mut parts: Vec<(usize, usize)> = Vec::new(); // (parent, fragment)
    for &k in &fragments {
        let frag = &functions[k];
        let inside = |sec: usize, off: i64| {
            sec == frag.section
                && off >= frag.offset as i64
                && off < frag.offset.saturating_add(frag.size) as i64
        };
        let mut parents: Vec<usize> = Vec::new();
        for (sec, s) in sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == Kind::Text)
        {
            for r in s
                .relocs
                .iter()
                .filter(|r| matches!(r.r_type, R_X86_64_PC32 | R_X86_64_PLT32))
            {
                let Some(sym) = symbols.get(r.symbol) else {
                    continue;
                };
                let Some(tsec) = sym.section else { continue };
                // A jump's target: S + A + 4 (the field ends the instruction).
                let target = (sym.value as i64).wrapping_add(r.addend).wrapping_add(4);
                if !inside(tsec, target) {
                    continue;
                }
                if let Some(p) = functions.iter().position(|f| {
                    f.section == sec && r.offset >= f.offset && r.offset - f.offset < f.size
                }) {
                    if p != k && !parents.contains(&p) {
                        parents.push(p);
                    }
                }
            }
        }
        if let [p] = parents[..] {
            if functions[p].cold.is_none() && !fragments.contains(&p) {
                parts.push((p, k));
            }
        }
    }
    for &(p, k) in &parts {
        functions[p].cold = Some(functions[k].main_part());
    }
    let merged: crate::HashSet<usize> = parts.iter().map(|&(_, k)| k).collect();
    functions
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !merged.contains(i))
        .map(|(_, f)| f)
        .collect()
}

impl Input {
    /// The function starting at `offset` of text section `section`.
    pub fn function_at(&self, section: usize, offset: u64) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.section == section && f.offset == offset)
    }

    /// `file:line` of the instruction at `offset` of `section`.
    pub fn line_of(&self, section: usize, offset: u64) -> Option<String> {
        self.file_line(section, offset)
            .map(|(f, l)| format!("{f}:{l}"))
    }

    /// Source file and line of the instruction at `offset` of `section`.
    pub fn file_line(&self, section: usize, offset: u64) -> Option<(&str, u64)> {
        let i = self
            .lines
            .partition_point(|l| (l.0, l.1) <= (section, offset));
        let l = self.lines.get(i.checked_sub(1)?)?;
        (l.0 == section).then_some((l.2.as_str(), l.3))
    }

    /// The section-relative target of relocation `r` (for section symbols and
    /// symbols defined in a section): (section, offset).
    pub fn target(&self, symbol: usize, addend: i64) -> Option<(usize, i64)> {
        let s = self.symbols.get(symbol)?;
        Some((s.section?, (s.value as i64).wrapping_add(addend)))
    }
}

const SECTION_BASE_SHIFT: u32 = 40;

/// Builds the line table; addresses are `section << 40 | offset` so that code
/// in several text sections (.text, .text.startup...) stays apart.
fn line_table(
    file: &object::File<'_>,
    sections: &[Section],
    symbols: &[Symbol],
) -> Option<Vec<(usize, u64, String, u64)>> {
    let relocated = |name: &str| -> Vec<u8> {
        let Some(s) = file.section_by_name(name) else {
            return Vec::new();
        };
        let mut data = sections[s.index().0].data.clone();
        for r in &sections[s.index().0].relocs {
            let Some(sym) = symbols.get(r.symbol) else {
                continue;
            };
            let base = sym
                .section
                .map_or(0, |sec| (sec as u64) << SECTION_BASE_SHIFT)
                .wrapping_add(sym.value);
            let v = base.wrapping_add(r.addend as u64);
            let o = r.offset as usize;
            let fits = |n: usize| o.checked_add(n).is_some_and(|e| e <= data.len());
            match r.r_type {
                R_X86_64_64 if fits(8) => data[o..o + 8].copy_from_slice(&v.to_le_bytes()),
                R_X86_64_32 if fits(4) => data[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes()),
                _ => {}
            }
        }
        data
    };
    let names = [
        ".debug_info",
        ".debug_abbrev",
        ".debug_line",
        ".debug_str",
        ".debug_line_str",
        ".debug_str_offsets",
        ".debug_addr",
        ".debug_rnglists",
    ];
    let mut store: HashMap<&str, Vec<u8>> = HashMap::default();
    for n in names {
        store.insert(n, relocated(n));
    }
    let dwarf = gimli::Dwarf::load(
        |id| -> std::result::Result<gimli::EndianSlice<'_, gimli::LittleEndian>, gimli::Error> {
            let data = store.get(id.name()).map(Vec::as_slice).unwrap_or(&[]);
            Ok(gimli::EndianSlice::new(data, gimli::LittleEndian))
        },
    )
    .ok()?;
    let mut out = Vec::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Some(program) = unit.line_program.clone() else {
            continue;
        };
        let mut rows = program.rows();
        while let Ok(Some((header, row))) = rows.next_row() {
            if row.end_sequence() {
                continue;
            }
            let Some(line) = row.line() else { continue };
            let file = row
                .file(header)
                .map(|f| {
                    let name = dwarf
                        .attr_string(&unit, f.path_name())
                        .map(|s| String::from_utf8_lossy(s.slice()).into_owned())
                        .unwrap_or_else(|_| "?".into());
                    if name.starts_with('/') {
                        return name;
                    }
                    // A directory entry relative to the compilation
                    // directory (DWARF 5's entries after the first are) is
                    // joined to it, as readers of the original do.
                    let join = |d: &str, rest: &str| format!("{}/{rest}", d.trim_end_matches('/'));
                    let comp_dir = unit
                        .comp_dir
                        .map(|d| String::from_utf8_lossy(d.slice()).into_owned())
                        .filter(|d| !d.is_empty());
                    let dir = f
                        .directory(header)
                        .and_then(|d| dwarf.attr_string(&unit, d).ok())
                        .map(|s| String::from_utf8_lossy(s.slice()).into_owned())
                        .filter(|d| !d.is_empty())
                        .map(|d| match &comp_dir {
                            Some(c) if !d.starts_with('/') => join(c, &d),
                            _ => d,
                        })
                        .or(comp_dir);
                    match dir {
                        Some(d) => join(&d, &name),
                        None => name,
                    }
                })
                .unwrap_or_else(|| "?".into());
            let addr = row.address();
            out.push((
                (addr >> SECTION_BASE_SHIFT) as usize,
                addr & ((1 << SECTION_BASE_SHIFT) - 1),
                file,
                line.get(),
            ));
        }
    }
    out.sort();
    Some(out)
}
