//! Where each loaded section, GOT slot and COMMON block goes inside the four
//! areas (text, rodata, data, and a sandboxed object's runtime state) the
//! kernel provides.

use crate::object::{Area, Definition, Object};
use crate::relocate::uses_got;
use alloc::vec;
use alloc::vec::Vec;

/// Size and alignment of one area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AreaSize {
    /// Bytes needed.
    pub size: u64,
    /// Alignment needed for its start.
    pub align: u64,
}

/// The layout of an object's image.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Executable code.
    pub text: AreaSize,
    /// Read-only data.
    pub rodata: AreaSize,
    /// Writable data, bss, COMMON blocks and the GOT.
    pub data: AreaSize,
    /// A sandboxed object's runtime state (empty for other objects).
    pub runtime: AreaSize,
    /// Per section: its area and offset inside it (None if not loaded).
    pub(crate) sections: Vec<Option<(Area, u64)>>,
    /// Per symbol: offset of its GOT slot in the data area, if it needs one.
    pub(crate) got: Vec<Option<u64>>,
    /// Per symbol: offset of its COMMON block in the data area, if it is one.
    pub(crate) commons: Vec<Option<u64>>,
}

fn place(area: &mut AreaSize, size: u64, align: u64) -> u64 {
    let offset = area.size.next_multiple_of(align);
    area.size = offset + size;
    area.align = area.align.max(align);
    offset
}

impl Layout {
    /// Where section `index` of the object goes: its area and its offset
    /// there (None if it is not loaded).
    pub fn section(&self, index: usize) -> Option<(Area, u64)> {
        self.sections.get(index).copied().flatten()
    }

    /// Lays out a validated object.
    pub fn of(object: &Object<'_>) -> Layout {
        let mut text = AreaSize { size: 0, align: 1 };
        let mut rodata = AreaSize { size: 0, align: 1 };
        let mut data = AreaSize { size: 0, align: 1 };
        let mut runtime = AreaSize { size: 0, align: 1 };
        let mut sections = vec![None; object.sections.len()];
        // Copied data first, zero-filled data after it.
        for pass_nobits in [false, true] {
            for (i, s) in object.sections.iter().enumerate() {
                let Some(area) = s.area else { continue };
                if s.nobits != pass_nobits {
                    continue;
                }
                let target = match area {
                    Area::Text => &mut text,
                    Area::Rodata => &mut rodata,
                    Area::Data => &mut data,
                    Area::Runtime => &mut runtime,
                };
                sections[i] = Some((area, place(target, s.size, s.align)));
            }
        }
        let mut commons = vec![None; object.symbols.len()];
        for (i, s) in object.symbols.iter().enumerate() {
            if s.definition == Definition::Common {
                commons[i] = Some(place(&mut data, s.size, s.value.max(1)));
            }
        }
        let mut got = vec![None; object.symbols.len()];
        for r in object.relocations.iter().flat_map(|rs| &rs.entries) {
            if uses_got(r.r_type) && got[r.symbol].is_none() {
                got[r.symbol] = Some(place(&mut data, 8, 8));
            }
        }
        Layout {
            text,
            rodata,
            data,
            runtime,
            sections,
            got,
            commons,
        }
    }

    /// The size of an area.
    pub fn area(&self, area: Area) -> AreaSize {
        match area {
            Area::Text => self.text,
            Area::Rodata => self.rodata,
            Area::Data => self.data,
            Area::Runtime => self.runtime,
        }
    }
}
