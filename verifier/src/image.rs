//! The object as the verifier sees it: its one code section, the functions
//! in it, and what each relocated field of the code stands for.

use crate::Reason;
use crate::value::{self, Expr};
use alloc::vec::Vec;
use nooks_loader::object::{Area, Definition, Object};
use nooks_policy::abi::{self, reloc};

/// A function of the code section.
#[derive(Debug, Clone)]
pub struct Func<'a> {
    /// Its first name (symbols sharing its start are aliases).
    pub name: &'a str,
    /// Offset of its first byte in the code section.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// The kernel may enter it (one of its names is an entry name).
    pub entry: bool,
}

/// A relocated field of the code.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Offset of the field in the code section.
    pub offset: u64,
    /// Width in bytes.
    pub width: u64,
    /// Relative to the field's end (`S + A - P`), not absolute.
    pub pc_relative: bool,
    /// `S + A`.
    pub value: Expr,
}

/// The verifier's view of an object.
pub struct Image<'a> {
    /// The parsed object.
    pub object: &'a Object<'a>,
    /// Index of the code section.
    pub text: usize,
    /// Its bytes.
    pub code: &'a [u8],
    /// Its functions, by start.
    pub functions: Vec<Func<'a>>,
    /// Its relocated fields, by offset.
    pub fields: Vec<Field>,
}

impl<'a> Image<'a> {
    /// The view of `object`, or why it cannot be verified at all.
    pub fn of(object: &'a Object<'a>) -> Result<Image<'a>, Reason> {
        let mut text = None;
        for (i, s) in object.sections.iter().enumerate() {
            if s.area == Some(Area::Text) && s.size > 0 {
                if text.is_some() {
                    return Err(Reason::Object("more than one code section"));
                }
                text = Some(i);
            }
        }
        let text = text.ok_or(Reason::Object("no code section"))?;
        let code = object.sections[text].data;
        let mut functions: Vec<Func<'a>> = Vec::new();
        for s in &object.symbols {
            if s.definition != Definition::Section(text) || s.name.is_empty() {
                continue;
            }
            if !s.is_function {
                return Err(Reason::Object(
                    "a symbol in the code section is not a function",
                ));
            }
            let end = s
                .value
                .checked_add(s.size)
                .filter(|&e| e <= code.len() as u64);
            let Some(end) = end.filter(|_| s.size > 0) else {
                return Err(Reason::Object(
                    "a function's extent is outside the code section or empty",
                ));
            };
            let entry = abi::is_entry_name(s.name);
            match functions.iter_mut().find(|f| f.start == s.value) {
                Some(f) if f.end == end => f.entry |= entry,
                Some(_) => {
                    return Err(Reason::Object(
                        "two functions start at one address with different sizes",
                    ));
                }
                None => functions.push(Func {
                    name: s.name,
                    start: s.value,
                    end,
                    entry,
                }),
            }
        }
        functions.sort_by_key(|f| f.start);
        if functions.windows(2).any(|w| w[0].end > w[1].start) {
            return Err(Reason::Object("two functions overlap"));
        }
        let mut fields = Vec::new();
        for rs in object.relocations.iter().filter(|r| r.target == text) {
            for r in &rs.entries {
                let (width, pc_relative) = match r.r_type {
                    reloc::R_X86_64_PC32 | reloc::R_X86_64_PLT32 => (4, true),
                    reloc::R_X86_64_32 | reloc::R_X86_64_32S => (4, false),
                    reloc::R_X86_64_64 => (8, false),
                    _ => {
                        return Err(Reason::Object(
                            "a code relocation of a type nooks-cc does not emit",
                        ));
                    }
                };
                let sym = &object.symbols[r.symbol];
                let base = match sym.definition {
                    Definition::Section(i) => Expr::sym(value::section(i)).offset(sym.value as i64),
                    Definition::Undefined if sym.name == abi::WINDOW_SYMBOL => {
                        Expr::sym(value::WIN)
                    }
                    Definition::Absolute if sym.name == abi::WINDOW_SYMBOL => Expr::sym(value::WIN),
                    Definition::Undefined => Expr::sym(value::import(r.symbol)),
                    Definition::Absolute => Expr::constant(sym.value as i64),
                    Definition::Common => Expr::sym(value::common(r.symbol)),
                };
                fields.push(Field {
                    offset: r.offset,
                    width,
                    pc_relative,
                    value: base.offset(r.addend),
                });
            }
        }
        fields.sort_by_key(|f| f.offset);
        if fields
            .windows(2)
            .any(|w| w[0].offset + w[0].width > w[1].offset)
        {
            return Err(Reason::Object("two code relocations overlap"));
        }
        Ok(Image {
            object,
            text,
            code,
            functions,
            fields,
        })
    }

    /// The relocated fields inside `[lo, hi)`.
    pub fn fields_in(&self, lo: u64, hi: u64) -> &[Field] {
        let a = self.fields.partition_point(|f| f.offset < lo);
        let b = self.fields.partition_point(|f| f.offset < hi);
        &self.fields[a..b]
    }

    /// The function starting at code offset `at`.
    pub fn function_at(&self, at: u64) -> Option<&Func<'a>> {
        self.functions
            .binary_search_by_key(&at, |f| f.start)
            .ok()
            .map(|i| &self.functions[i])
    }

    /// The section symbol `name` (a local or global data or function symbol)
    /// is defined in, with its value and size.
    pub fn symbol(&self, name: &str) -> Option<(usize, u64, u64)> {
        self.object.symbols.iter().find_map(|s| match s.definition {
            Definition::Section(i) if s.name == name => Some((i, s.value, s.size)),
            _ => None,
        })
    }
}
