//! What can be wrong with a driver object, precisely enough to fix it.

use core::fmt;

/// Why an object could not be parsed or loaded. `Copy`, so the kernel can keep
/// it in a report without allocating; names are borrowed from the object when
/// they are printable and replaced by indexes otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// The ELF header or section headers could not be read.
    Malformed(&'static str),
    /// Not ELF64 little-endian.
    NotElf64,
    /// Built for another machine (the ELF `e_machine`).
    WrongMachine(u16),
    /// Not a relocatable object (the ELF `e_type`).
    NotRelocatable(u16),
    /// Section `index`'s bytes lie outside the file.
    SectionOutOfBounds {
        /// Section header index.
        index: usize,
    },
    /// Section `index` has an alignment that is not a power of two or is too large.
    BadAlignment {
        /// Section header index.
        index: usize,
        /// The alignment it asks for.
        align: u64,
    },
    /// The loadable sections add up to more than the loader accepts.
    TooLarge {
        /// Their total size.
        size: u64,
    },
    /// Symbol `index` names a section that does not exist.
    BadSymbolSection {
        /// Symbol table index.
        index: usize,
        /// The section index it names.
        section: usize,
    },
    /// A symbol's name is not valid UTF-8 or lies outside the string table.
    BadSymbolName {
        /// Symbol table index.
        index: usize,
    },
    /// A relocation names a symbol that does not exist.
    BadRelocationSymbol {
        /// Index of the relocation section.
        section: usize,
        /// The symbol index.
        symbol: usize,
    },
    /// A relocation section applies to a section that does not exist, or uses REL.
    BadRelocationSection {
        /// Index of the relocation section.
        section: usize,
    },
    /// A relocation's field lies outside the section it patches.
    RelocationOutOfBounds {
        /// Index of the patched section.
        section: usize,
        /// Offset of the field.
        offset: u64,
    },
    /// A relocation type the loader does not implement.
    UnsupportedRelocation {
        /// The x86-64 relocation type number.
        r_type: u32,
        /// Index of the patched section.
        section: usize,
        /// Offset of the field.
        offset: u64,
    },
    /// A relocated value does not fit its field.
    RelocationOverflow {
        /// The x86-64 relocation type number.
        r_type: u32,
        /// Index of the patched section.
        section: usize,
        /// Offset of the field.
        offset: u64,
    },
    /// An import the resolver does not know.
    Unresolved {
        /// The symbol's name.
        name: Name,
    },
    /// The memory the kernel provided for an area is smaller than the layout needs.
    PlacementTooSmall {
        /// Which area.
        area: crate::Area,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LoadError::Malformed(what) => write!(f, "malformed ELF: {what}"),
            LoadError::NotElf64 => write!(f, "not a 64-bit little-endian ELF file"),
            LoadError::WrongMachine(m) => write!(f, "built for machine {m}, not x86-64 (62)"),
            LoadError::NotRelocatable(t) => {
                write!(f, "ELF type {t} is not a relocatable object (1)")
            }
            LoadError::SectionOutOfBounds { index } => {
                write!(f, "section {index} lies outside the file")
            }
            LoadError::BadAlignment { index, align } => {
                write!(f, "section {index} has bad alignment {align}")
            }
            LoadError::TooLarge { size } => {
                write!(f, "loadable sections total {size} bytes, too large")
            }
            LoadError::BadSymbolSection { index, section } => {
                write!(f, "symbol {index} refers to missing section {section}")
            }
            LoadError::BadSymbolName { index } => {
                write!(f, "symbol {index} has an unreadable name")
            }
            LoadError::BadRelocationSymbol { section, symbol } => {
                write!(
                    f,
                    "relocation section {section} refers to missing symbol {symbol}"
                )
            }
            LoadError::BadRelocationSection { section } => {
                write!(
                    f,
                    "relocation section {section} is malformed (bad target or REL format)"
                )
            }
            LoadError::RelocationOutOfBounds { section, offset } => {
                write!(
                    f,
                    "relocation at {offset:#x} lies outside section {section}"
                )
            }
            LoadError::UnsupportedRelocation {
                r_type,
                section,
                offset,
            } => {
                write!(
                    f,
                    "unsupported relocation type {r_type} at {offset:#x} in section {section}"
                )
            }
            LoadError::RelocationOverflow {
                r_type,
                section,
                offset,
            } => {
                write!(
                    f,
                    "relocation type {r_type} at {offset:#x} in section {section} overflows its field"
                )
            }
            LoadError::Unresolved { name } => write!(f, "unresolved import `{name}`"),
            LoadError::PlacementTooSmall { area } => {
                write!(f, "the memory given for {area:?} is too small")
            }
        }
    }
}

/// A symbol name kept inside a `Copy` error (truncated to 63 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; 63],
    len: u8,
}

impl Name {
    /// Copies (a prefix of) `s`, cut at a character boundary.
    pub fn new(s: &str) -> Self {
        let mut len = s.len().min(63);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; 63];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Name {
            bytes,
            len: len as u8,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}
