//! Copying an object into the memory the kernel provides and relocating it.

use crate::error::{LoadError, Name};
use crate::layout::Layout;
use crate::object::{Area, Definition, Object};
use crate::relocate;
use alloc::string::String;
use alloc::vec::Vec;

/// Resolves an object's imports: the kernel's export table.
pub trait Resolver {
    /// The address of `name`, or None if it is not exported.
    fn resolve(&self, name: &str) -> Option<u64>;
}

impl<F: Fn(&str) -> Option<u64>> Resolver for F {
    fn resolve(&self, name: &str) -> Option<u64> {
        self(name)
    }
}

/// Memory for one area: the bytes the loader writes, and the address at which
/// they will run (the kernel may write through one mapping and run through another).
#[derive(Debug)]
pub struct Target<'m> {
    /// Where to write (at least the area's size).
    pub bytes: &'m mut [u8],
    /// Run-time address of `bytes[0]` (aligned as the layout asks).
    pub addr: u64,
}

/// Memory for the four areas.
#[derive(Debug)]
pub struct Placement<'m> {
    /// Executable code.
    pub text: Target<'m>,
    /// Read-only data.
    pub rodata: Target<'m>,
    /// Writable data.
    pub data: Target<'m>,
    /// A sandboxed object's runtime state (may be empty for other objects).
    pub runtime: Target<'m>,
}

impl<'m> Placement<'m> {
    fn target(&mut self, area: Area) -> &mut Target<'m> {
        match area {
            Area::Text => &mut self.text,
            Area::Rodata => &mut self.rodata,
            Area::Data => &mut self.data,
            Area::Runtime => &mut self.runtime,
        }
    }

    fn addr(&self, area: Area) -> u64 {
        match area {
            Area::Text => self.text.addr,
            Area::Rodata => self.rodata.addr,
            Area::Data => self.data.addr,
            Area::Runtime => self.runtime.addr,
        }
    }
}

/// A symbol the loaded image defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSymbol {
    /// Its name.
    pub name: String,
    /// Its run-time address.
    pub addr: u64,
    /// Its size.
    pub size: u64,
    /// Whether it is a function.
    pub is_function: bool,
    /// Whether it is global (or weak) rather than local.
    pub is_global: bool,
}

/// A loaded, relocated image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Every named symbol defined by the object, with its run-time address.
    pub symbols: Vec<ImageSymbol>,
}

impl Image {
    /// The address of the global symbol `name`.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| s.is_global && s.name == name)
            .map(|s| s.addr)
    }

    /// The function symbol containing `addr` and the offset into it.
    pub fn function_at(&self, addr: u64) -> Option<(&str, u64)> {
        self.symbols
            .iter()
            .filter(|s| s.is_function && addr >= s.addr && addr - s.addr < s.size.max(1))
            .map(|s| (s.name.as_str(), addr - s.addr))
            .next()
    }
}

/// Loads `object` into `placement` following `layout`, resolving imports with `resolver`.
pub fn load(
    object: &Object<'_>,
    layout: &Layout,
    placement: &mut Placement<'_>,
    resolver: &dyn Resolver,
) -> Result<Image, LoadError> {
    for area in [Area::Text, Area::Rodata, Area::Data, Area::Runtime] {
        let need = layout.area(area);
        let target = placement.target(area);
        if (target.bytes.len() as u64) < need.size || target.addr % need.align.max(1) != 0 {
            return Err(LoadError::PlacementTooSmall { area });
        }
        target.bytes[..need.size as usize].fill(0);
    }
    // Section contents.
    for (i, s) in object.sections.iter().enumerate() {
        let Some((area, offset)) = layout.sections[i] else {
            continue;
        };
        if !s.nobits {
            let start = offset as usize;
            placement.target(area).bytes[start..start + s.data.len()].copy_from_slice(s.data);
        }
    }
    // Symbol addresses.
    let mut addrs = Vec::with_capacity(object.symbols.len());
    for (i, sym) in object.symbols.iter().enumerate() {
        let addr = match sym.definition {
            Definition::Section(sec) => match layout.sections[sec] {
                Some((area, offset)) => Some(
                    placement
                        .addr(area)
                        .wrapping_add(offset)
                        .wrapping_add(sym.value),
                ),
                None => None, // defined in a section that is not loaded
            },
            // A weak absolute value is a default: the resolver's (the
            // kernel's, as a strong definition in a link) wins. nooks-cc's
            // window symbol is one (`nooks_policy::abi::WINDOW_SYMBOL`).
            Definition::Absolute if sym.is_weak => {
                Some(resolver.resolve(sym.name).unwrap_or(sym.value))
            }
            Definition::Absolute => Some(sym.value),
            Definition::Common => layout.commons[i].map(|o| placement.data.addr.wrapping_add(o)),
            Definition::Undefined if sym.name.is_empty() => Some(0),
            Definition::Undefined => match resolver.resolve(sym.name) {
                Some(a) => Some(a),
                None if sym.is_weak => Some(0),
                None => {
                    return Err(LoadError::Unresolved {
                        name: Name::new(sym.name),
                    });
                }
            },
        };
        addrs.push(addr);
    }
    // GOT slots.
    for (i, slot) in layout.got.iter().enumerate() {
        if let Some(off) = slot {
            let v = addrs[i].unwrap_or(0);
            let o = *off as usize;
            placement.data.bytes[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    // Relocations.
    for rs in &object.relocations {
        let Some((area, base)) = layout.sections[rs.target] else {
            continue;
        };
        let section_addr = placement.addr(area).wrapping_add(base);
        for r in &rs.entries {
            let s = addrs[r.symbol].ok_or(LoadError::BadRelocationSymbol {
                section: rs.index,
                symbol: r.symbol,
            })?;
            let got = layout.got[r.symbol].map(|o| placement.data.addr.wrapping_add(o));
            let width = relocate::field_width(r.r_type).unwrap_or(0) as usize;
            let at = (base + r.offset) as usize;
            let field = &mut placement.target(area).bytes[at..at + width];
            relocate::apply(
                r.r_type,
                field,
                s,
                r.addend,
                section_addr.wrapping_add(r.offset),
                got,
                rs.target,
                r.offset,
            )?;
        }
    }
    let symbols = object
        .symbols
        .iter()
        .zip(&addrs)
        .filter(|(s, _)| !s.name.is_empty() && s.definition != Definition::Undefined)
        .filter_map(|(s, a)| {
            Some(ImageSymbol {
                name: String::from(s.name),
                addr: (*a)?,
                size: s.size,
                is_function: s.is_function,
                is_global: s.is_global,
            })
        })
        .collect();
    Ok(Image { symbols })
}
