//! Parsing and validating an x86-64 ELF relocatable object. Everything the
//! later stages index is checked here, once, so layout and relocation can
//! rely on it.

use crate::error::LoadError;
use alloc::vec::Vec;
use goblin::elf::{Elf, header, section_header as sh, sym};

/// Largest total size of the loadable sections accepted (a driver is small).
pub const MAX_IMAGE: u64 = 64 << 20;

/// Which area of the image a section goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Executable code: never writable once loaded.
    Text,
    /// Read-only data.
    Rodata,
    /// Writable data and zero-filled data (bss, COMMON, the GOT).
    Data,
    /// A sandboxed object's runtime state (the section named
    /// `nooks_policy::abi::STATE_SECTION`): writable, but kept apart from
    /// [`Area::Data`] so the kernel can place it outside the memory the
    /// object's own checked stores may reach.
    Runtime,
}

/// A section of the object, as far as loading cares.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// Its name.
    pub name: &'a str,
    /// Where it goes, or `None` if it is not loaded (debug info, notes, ...).
    pub area: Option<Area>,
    /// Its file bytes (empty for NOBITS).
    pub data: &'a [u8],
    /// Its size in memory.
    pub size: u64,
    /// Its alignment (a power of two).
    pub align: u64,
    /// Whether its memory is zero-filled rather than copied (SHT_NOBITS).
    pub nobits: bool,
}

/// Where a symbol is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Definition {
    /// Undefined here: an import.
    Undefined,
    /// An absolute value.
    Absolute,
    /// A COMMON block to be allocated by the loader (value = alignment).
    Common,
    /// In the section with this index.
    Section(usize),
}

/// A symbol of the object.
#[derive(Debug, Clone, Copy)]
pub struct Symbol<'a> {
    /// Its name ("" for section symbols and the null symbol).
    pub name: &'a str,
    /// Where it is defined.
    pub definition: Definition,
    /// Its value (offset in its section, absolute value, or COMMON alignment).
    pub value: u64,
    /// Its size.
    pub size: u64,
    /// A function.
    pub is_function: bool,
    /// Global or weak (visible to the kernel).
    pub is_global: bool,
    /// Weak binding.
    pub is_weak: bool,
}

/// One relocation.
#[derive(Debug, Clone, Copy)]
pub struct Relocation {
    /// Offset of the patched field in its section.
    pub offset: u64,
    /// x86-64 relocation type.
    pub r_type: u32,
    /// Index into the symbol table.
    pub symbol: usize,
    /// Addend.
    pub addend: i64,
}

/// The relocations of one section.
#[derive(Debug, Clone)]
pub struct Relocations {
    /// Index of the relocation section itself (for error messages).
    pub index: usize,
    /// Index of the section they patch.
    pub target: usize,
    /// The relocations.
    pub entries: Vec<Relocation>,
}

/// A parsed, validated relocatable object.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    /// Sections, indexed like the ELF section headers.
    pub sections: Vec<Section<'a>>,
    /// Symbols, indexed like the ELF symbol table.
    pub symbols: Vec<Symbol<'a>>,
    /// Relocations of loaded sections.
    pub relocations: Vec<Relocations>,
}

fn checked_align(align: u64, index: usize) -> Result<u64, LoadError> {
    let a = align.max(1);
    if !a.is_power_of_two() || a > 1 << 16 {
        return Err(LoadError::BadAlignment { index, align });
    }
    Ok(a)
}

impl<'a> Object<'a> {
    /// Parses and validates `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, LoadError> {
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return Err(LoadError::Malformed("no ELF header"));
        }
        if bytes[header::EI_CLASS] != header::ELFCLASS64
            || bytes[header::EI_DATA] != header::ELFDATA2LSB
        {
            return Err(LoadError::NotElf64);
        }
        let elf =
            Elf::parse(bytes).map_err(|_| LoadError::Malformed("unreadable headers or tables"))?;
        if elf.header.e_machine != header::EM_X86_64 {
            return Err(LoadError::WrongMachine(elf.header.e_machine));
        }
        if elf.header.e_type != header::ET_REL {
            return Err(LoadError::NotRelocatable(elf.header.e_type));
        }

        let mut sections = Vec::with_capacity(elf.section_headers.len());
        let mut total: u64 = 0;
        for (index, s) in elf.section_headers.iter().enumerate() {
            let name = elf.shdr_strtab.get_at(s.sh_name).unwrap_or("");
            let nobits = s.sh_type == sh::SHT_NOBITS;
            let loaded = s.sh_flags & u64::from(sh::SHF_ALLOC) != 0
                && matches!(
                    s.sh_type,
                    sh::SHT_PROGBITS | sh::SHT_NOBITS | sh::SHT_INIT_ARRAY | sh::SHT_FINI_ARRAY
                );
            let area = loaded.then(|| {
                if s.sh_flags & u64::from(sh::SHF_EXECINSTR) != 0 {
                    Area::Text
                } else if name == nooks_policy::abi::STATE_SECTION {
                    Area::Runtime
                } else if name.starts_with(".data.rel.ro") && !nobits {
                    // Written only by relocation ("relro"): read-only once
                    // loaded, as a linker's RELRO segment. nooks-cc's
                    // indirect-call table lives here, out of the driver's reach.
                    Area::Rodata
                } else if s.sh_flags & u64::from(sh::SHF_WRITE) != 0 || nobits {
                    Area::Data
                } else {
                    Area::Rodata
                }
            });
            let data = if nobits || s.sh_type == sh::SHT_NULL {
                &bytes[..0]
            } else {
                let start = usize::try_from(s.sh_offset)
                    .map_err(|_| LoadError::SectionOutOfBounds { index })?;
                let len = usize::try_from(s.sh_size)
                    .map_err(|_| LoadError::SectionOutOfBounds { index })?;
                let end = start
                    .checked_add(len)
                    .ok_or(LoadError::SectionOutOfBounds { index })?;
                bytes
                    .get(start..end)
                    .ok_or(LoadError::SectionOutOfBounds { index })?
            };
            let align = if area.is_some() {
                checked_align(s.sh_addralign, index)?
            } else {
                1
            };
            if area.is_some() {
                total = total.saturating_add(s.sh_size).saturating_add(align);
            }
            sections.push(Section {
                name,
                area,
                data,
                size: s.sh_size,
                align,
                nobits,
            });
        }

        let mut symbols = Vec::with_capacity(elf.syms.len());
        for (index, s) in elf.syms.iter().enumerate() {
            let name = if s.st_name == 0 {
                ""
            } else {
                elf.strtab
                    .get_at(s.st_name)
                    .ok_or(LoadError::BadSymbolName { index })?
            };
            let definition = match s.st_shndx as u32 {
                sh::SHN_UNDEF => Definition::Undefined,
                sh::SHN_ABS => Definition::Absolute,
                sh::SHN_COMMON => Definition::Common,
                i if (i as usize) < sections.len() && i < sh::SHN_LORESERVE => {
                    Definition::Section(i as usize)
                }
                i => {
                    return Err(LoadError::BadSymbolSection {
                        index,
                        section: i as usize,
                    });
                }
            };
            if definition == Definition::Common {
                checked_align(s.st_value, index)?;
                total = total.saturating_add(s.st_size);
            }
            let bind = sym::st_bind(s.st_info);
            symbols.push(Symbol {
                name,
                definition,
                value: s.st_value,
                size: s.st_size,
                is_function: sym::st_type(s.st_info) == sym::STT_FUNC,
                is_global: bind == sym::STB_GLOBAL || bind == sym::STB_WEAK,
                is_weak: bind == sym::STB_WEAK,
            });
        }
        if total > MAX_IMAGE {
            return Err(LoadError::TooLarge { size: total });
        }

        let mut relocations = Vec::new();
        for (index, relocs) in &elf.shdr_relocs {
            let header = &elf.section_headers[*index];
            if header.sh_type != sh::SHT_RELA {
                return Err(LoadError::BadRelocationSection { section: *index });
            }
            let target = header.sh_info as usize;
            let Some(target_section) = sections.get(target) else {
                return Err(LoadError::BadRelocationSection { section: *index });
            };
            if target_section.area.is_none() {
                continue; // debug info and the like are not loaded
            }
            let mut entries = Vec::with_capacity(relocs.len());
            for r in relocs.iter() {
                if r.r_sym >= symbols.len() {
                    return Err(LoadError::BadRelocationSymbol {
                        section: *index,
                        symbol: r.r_sym,
                    });
                }
                let width = crate::relocate::field_width(r.r_type).ok_or(
                    LoadError::UnsupportedRelocation {
                        r_type: r.r_type,
                        section: target,
                        offset: r.r_offset,
                    },
                )?;
                let fits = r
                    .r_offset
                    .checked_add(width)
                    .is_some_and(|end| end <= target_section.size);
                if !fits || target_section.nobits && width > 0 {
                    return Err(LoadError::RelocationOutOfBounds {
                        section: target,
                        offset: r.r_offset,
                    });
                }
                entries.push(Relocation {
                    offset: r.r_offset,
                    r_type: r.r_type,
                    symbol: r.r_sym,
                    addend: r.r_addend.unwrap_or(0),
                });
            }
            relocations.push(Relocations {
                index: *index,
                target,
                entries,
            });
        }
        Ok(Object {
            sections,
            symbols,
            relocations,
        })
    }

    /// Names of the symbols the object imports (undefined, non-empty), each once.
    pub fn imports(&self) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = self
            .symbols
            .iter()
            .filter(|s| s.definition == Definition::Undefined && !s.name.is_empty())
            .map(|s| s.name)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The global symbol `name` defined in this object, if any.
    pub fn defined(&self, name: &str) -> Option<&Symbol<'a>> {
        self.symbols.iter().find(|s| {
            s.is_global
                && s.name == name
                && matches!(s.definition, Definition::Section(_) | Definition::Absolute)
        })
    }
}
