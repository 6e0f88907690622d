//! nooks-cc's runtime inside every sandboxed object, checked byte for byte.
//!
//! The store check's slow path and the indirect-call check are the two
//! functions whose *meaning* the rules rely on (the slow path returns only
//! if the range it was given is writable; the call check only if its
//! argument is in the target table), so they are not analysed like driver
//! code but compared with the code below, which was reviewed as
//! disassembly (`docs/VERIFIER.md`): relocated fields must name the same
//! symbols with the same addends, every other byte must be equal. A new
//! nooks-cc whose runtime differs fails `tests/runtime.rs` until the new
//! bytes are reviewed and put here.
//!
//! The target table itself is checked here too: read-only, its count equal
//! to its length, each slot a relocation to a function of the object or to
//! an import.

use crate::Reason;
use crate::image::Image;
use crate::value::{self, Expr};
use nooks_loader::object::{Area, Definition};
use nooks_policy::abi::{self, reloc};

/// `__nooks_sfi_slow(off, size)`: `preserve_all`; returns if `[off + lo,
/// off + lo + size)` lies in `[lo, hi]` without wrapping, or in one of the
/// first `min(ngrants, 16)` grants; else records the address, its caller and
/// `WildStore` in the state and traps.
pub const SLOW_PATH: [u8; 262] = [
    0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x50, 0x48, 0x89, 0x04, 0x24, 0x48, 0x89, 0x4c, 0x24,
    0x08, 0x48, 0x89, 0x54, 0x24, 0x10, 0x48, 0x89, 0x74, 0x24, 0x18, 0x48, 0x89, 0x7c, 0x24, 0x20,
    0x4c, 0x89, 0x44, 0x24, 0x28, 0x4c, 0x89, 0x4c, 0x24, 0x30, 0x4c, 0x89, 0x54, 0x24, 0x38, 0x4c,
    0x89, 0x5c, 0x24, 0x40, 0x48, 0x8d, 0x05, 0x00, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x10, 0x48, 0x8d,
    0x0c, 0x17, 0x48, 0x3b, 0xca, 0x40, 0x0f, 0x93, 0xc7, 0x48, 0x8d, 0x14, 0x31, 0x48, 0x3b, 0x50,
    0x08, 0x40, 0x0f, 0x96, 0xc6, 0x23, 0xfe, 0x48, 0x3b, 0xd1, 0x40, 0x0f, 0x93, 0xc6, 0x40, 0x84,
    0xfe, 0x0f, 0x85, 0x51, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x78, 0x30, 0x4d, 0x33, 0xc0, 0x41, 0xb9,
    0x10, 0x00, 0x00, 0x00, 0x4c, 0x3b, 0xcf, 0x49, 0x0f, 0x42, 0xf9, 0x4c, 0x3b, 0xc7, 0x0f, 0x83,
    0x69, 0x00, 0x00, 0x00, 0x4c, 0x8d, 0x48, 0x38, 0x4d, 0x89, 0xc3, 0x49, 0xc1, 0xe3, 0x04, 0x4b,
    0x3b, 0x0c, 0x19, 0x41, 0x0f, 0x93, 0xc2, 0x4b, 0x3b, 0x54, 0x19, 0x08, 0x41, 0x0f, 0x96, 0xc1,
    0x45, 0x23, 0xd1, 0x44, 0x84, 0xd6, 0x0f, 0x85, 0x0c, 0x00, 0x00, 0x00, 0x49, 0x81, 0xc0, 0x01,
    0x00, 0x00, 0x00, 0xe9, 0xc3, 0xff, 0xff, 0xff, 0x48, 0x8b, 0x04, 0x24, 0x48, 0x8b, 0x4c, 0x24,
    0x08, 0x48, 0x8b, 0x54, 0x24, 0x10, 0x48, 0x8b, 0x74, 0x24, 0x18, 0x48, 0x8b, 0x7c, 0x24, 0x20,
    0x4c, 0x8b, 0x44, 0x24, 0x28, 0x4c, 0x8b, 0x4c, 0x24, 0x30, 0x4c, 0x8b, 0x54, 0x24, 0x38, 0x4c,
    0x8b, 0x5c, 0x24, 0x40, 0x48, 0x83, 0xc4, 0x50, 0x48, 0x89, 0xec, 0x5d, 0xc3, 0x48, 0x89, 0x48,
    0x18, 0x48, 0x89, 0xe9, 0x48, 0x8b, 0x49, 0x08, 0x48, 0x89, 0x48, 0x28, 0x48, 0xc7, 0x40, 0x20,
    0x01, 0x00, 0x00, 0x00, 0x0f, 0x0b,
];
/// The slow path's relocated fields: (offset, symbol, addend), PC-relative.
pub const SLOW_PATH_FIELDS: [(u64, &str, i64); 1] = [(0x37, abi::STATE_SYMBOL, -4)];

/// `__nooks_sfi_check_call(target)`: System V; returns if `target` equals
/// one of the table's `count` entries, else records it, its caller and
/// `BadCallTarget` and traps.
pub const CHECK_CALL: [u8; 89] = [
    0x55, 0x48, 0x89, 0xe5, 0x4c, 0x8d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x8b, 0x03, 0x48, 0x33,
    0xf6, 0x48, 0x3b, 0xf0, 0x0f, 0x83, 0x1f, 0x00, 0x00, 0x00, 0x49, 0x8b, 0x4c, 0xf3, 0x08, 0x48,
    0x3b, 0xcf, 0x0f, 0x84, 0x0c, 0x00, 0x00, 0x00, 0x48, 0x81, 0xc6, 0x01, 0x00, 0x00, 0x00, 0xe9,
    0xdd, 0xff, 0xff, 0xff, 0x48, 0x89, 0xec, 0x5d, 0xc3, 0x48, 0x8d, 0x05, 0x00, 0x00, 0x00, 0x00,
    0x48, 0x89, 0x78, 0x18, 0x48, 0x89, 0xe9, 0x48, 0x8b, 0x49, 0x08, 0x48, 0x89, 0x48, 0x28, 0x48,
    0xc7, 0x40, 0x20, 0x04, 0x00, 0x00, 0x00, 0x0f, 0x0b,
];
/// The call check's relocated fields.
pub const CHECK_CALL_FIELDS: [(u64, &str, i64); 2] = [
    (0x7, abi::TARGETS_SYMBOL, -4),
    (0x3c, abi::STATE_SYMBOL, -4),
];

/// Checks the runtime function at `[start, end)` against `code` and `fields`.
pub fn check(
    image: &Image<'_>,
    start: u64,
    end: u64,
    code: &[u8],
    fields: &[(u64, &str, i64)],
) -> Result<(), Reason> {
    let bytes = &image.code[start as usize..end as usize];
    if bytes.len() != code.len() {
        return Err(Reason::Runtime(
            "its length differs from the reviewed runtime",
        ));
    }
    let got = image.fields_in(start, end);
    if got.len() != fields.len() {
        return Err(Reason::Runtime(
            "its relocations differ from the reviewed runtime",
        ));
    }
    for (f, &(off, name, addend)) in got.iter().zip(fields) {
        let (sec, v, _) = image
            .symbol(name)
            .ok_or(Reason::Runtime("a runtime symbol is missing"))?;
        let want = Expr::sym(value::section(sec)).offset(v as i64 + addend);
        if f.offset - start != off || !f.pc_relative || f.width != 4 || f.value != want {
            return Err(Reason::Runtime(
                "its relocations differ from the reviewed runtime",
            ));
        }
    }
    for (k, (a, b)) in bytes.iter().zip(code).enumerate() {
        let in_field = fields
            .iter()
            .any(|&(off, _, _)| (off..off + 4).contains(&(k as u64)));
        if !in_field && a != b {
            return Err(Reason::Runtime(
                "its code differs from the reviewed runtime",
            ));
        }
    }
    Ok(())
}

/// Checks the indirect-call target table: in read-only data, `count` then
/// `count` slots, each relocated to the start of one of the object's
/// functions or to an import.
pub fn check_targets(image: &Image<'_>) -> Result<(), Reason> {
    let bad = || Reason::Runtime("the indirect-call target table is not what the call check needs");
    let object = image.object;
    let (sec, v, size) = image
        .symbol(abi::TARGETS_SYMBOL)
        .ok_or(Reason::Runtime("no indirect-call target table"))?;
    let s = &object.sections[sec];
    if s.area != Some(Area::Rodata) {
        return Err(Reason::Runtime(
            "the indirect-call target table is writable",
        ));
    }
    if size < 8 || size % 8 != 0 || v.checked_add(size).is_none_or(|e| e > s.data.len() as u64) {
        return Err(bad());
    }
    let bytes = &s.data[v as usize..(v + size) as usize];
    let count = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| bad())?);
    if count != size / 8 - 1 {
        return Err(Reason::Runtime(
            "the indirect-call target table's count is not its length",
        ));
    }
    let relocs: alloc::vec::Vec<_> = object
        .relocations
        .iter()
        .filter(|r| r.target == sec)
        .flat_map(|r| r.entries.iter())
        .filter(|r| r.offset + 8 > v && r.offset < v + size)
        .collect();
    if relocs.len() as u64 != count || relocs.iter().any(|r| r.offset == v) {
        return Err(Reason::Runtime(
            "a slot of the indirect-call target table is not relocated",
        ));
    }
    for r in relocs {
        if r.r_type != reloc::R_X86_64_64 || (r.offset - v) % 8 != 0 {
            return Err(bad());
        }
        let sym = &object.symbols[r.symbol];
        let ok = match sym.definition {
            Definition::Undefined => r.addend == 0,
            Definition::Section(i) if i == image.text => {
                let at = sym.value as i64 + r.addend;
                at >= 0 && image.function_at(at as u64).is_some()
            }
            _ => false,
        };
        if !ok {
            return Err(Reason::Runtime(
                "a slot of the indirect-call target table is neither a function nor an import",
            ));
        }
    }
    Ok(())
}
