//! x86-64 relocations: which ones the loader applies and how.
//!
//! Supported, because gcc emits them for `-mcmodel=kernel -fno-pic` (and
//! `-mcmodel=small`) code and Cranelift's object backend emits them for
//! non-PIC code: `R_X86_64_64`, `PC32`, `PLT32` (resolved directly: there is no
//! PLT), `32`, `32S`, `PC64`, and `GOTPCREL`/`GOTPCRELX`/`REX_GOTPCRELX`
//! (through a GOT slot the loader allocates in the data area; no relaxation).
//! Anything else is an error naming the type and offset.

use crate::error::LoadError;

/// `R_X86_64_NONE`.
pub const R_NONE: u32 = 0;
/// `R_X86_64_64`: S + A.
pub const R_64: u32 = 1;
/// `R_X86_64_PC32`: S + A - P.
pub const R_PC32: u32 = 2;
/// `R_X86_64_PLT32`: L + A - P (here L = S).
pub const R_PLT32: u32 = 4;
/// `R_X86_64_GOTPCREL`: G + GOT + A - P.
pub const R_GOTPCREL: u32 = 9;
/// `R_X86_64_32`: S + A, zero-extended.
pub const R_32: u32 = 10;
/// `R_X86_64_32S`: S + A, sign-extended.
pub const R_32S: u32 = 11;
/// `R_X86_64_PC64`: S + A - P.
pub const R_PC64: u32 = 24;
/// `R_X86_64_GOTPCRELX`.
pub const R_GOTPCRELX: u32 = 41;
/// `R_X86_64_REX_GOTPCRELX`.
pub const R_REX_GOTPCRELX: u32 = 42;

/// Bytes a relocation type patches, or None if unsupported.
pub fn field_width(r_type: u32) -> Option<u64> {
    match r_type {
        R_NONE => Some(0),
        R_64 | R_PC64 => Some(8),
        R_PC32 | R_PLT32 | R_32 | R_32S | R_GOTPCREL | R_GOTPCRELX | R_REX_GOTPCRELX => Some(4),
        _ => None,
    }
}

/// Whether the type goes through a GOT slot.
pub fn uses_got(r_type: u32) -> bool {
    matches!(r_type, R_GOTPCREL | R_GOTPCRELX | R_REX_GOTPCRELX)
}

/// Computes and writes one relocation into `field` (exactly its width).
///
/// `s`: the symbol's address; `a`: the addend; `p`: the field's run-time
/// address; `got`: the symbol's GOT slot address (for GOT types).
pub fn apply(
    r_type: u32,
    field: &mut [u8],
    s: u64,
    a: i64,
    p: u64,
    got: Option<u64>,
    section: usize,
    offset: u64,
) -> Result<(), LoadError> {
    let overflow = LoadError::RelocationOverflow {
        r_type,
        section,
        offset,
    };
    let sa = s.wrapping_add(a as u64);
    match r_type {
        R_NONE => {}
        R_64 => field.copy_from_slice(&sa.to_le_bytes()),
        R_PC64 => field.copy_from_slice(&sa.wrapping_sub(p).to_le_bytes()),
        R_PC32 | R_PLT32 => {
            let v = sa.wrapping_sub(p) as i64;
            let v = i32::try_from(v).map_err(|_| overflow)?;
            field.copy_from_slice(&v.to_le_bytes());
        }
        R_32 => {
            let v = u32::try_from(sa).map_err(|_| overflow)?;
            field.copy_from_slice(&v.to_le_bytes());
        }
        R_32S => {
            let v = i32::try_from(sa as i64).map_err(|_| overflow)?;
            field.copy_from_slice(&v.to_le_bytes());
        }
        R_GOTPCREL | R_GOTPCRELX | R_REX_GOTPCRELX => {
            let slot = got.ok_or(overflow)?;
            let v = slot.wrapping_add(a as u64).wrapping_sub(p) as i64;
            let v = i32::try_from(v).map_err(|_| overflow)?;
            field.copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            return Err(LoadError::UnsupportedRelocation {
                r_type,
                section,
                offset,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pc32_and_32s_check_their_range() {
        let mut f = [0u8; 4];
        apply(R_PC32, &mut f, 0x1000, -4, 0x2000, None, 1, 0).unwrap();
        assert_eq!(i32::from_le_bytes(f), 0x1000 - 4 - 0x2000);
        assert!(apply(R_PC32, &mut f, 0x1_0000_0000, 0, 0, None, 1, 0).is_err());
        // Top 2 GiB: -mcmodel=kernel addresses fit R_X86_64_32S ...
        apply(R_32S, &mut f, 0xffff_ffff_a000_0010, 8, 0, None, 1, 0).unwrap();
        assert_eq!(i32::from_le_bytes(f) as i64 as u64, 0xffff_ffff_a000_0018);
        // ... but not R_X86_64_32, and low addresses above 2 GiB fit neither 32S.
        assert!(apply(R_32, &mut f, 0xffff_ffff_a000_0010, 0, 0, None, 1, 0).is_err());
        assert!(apply(R_32S, &mut f, 0x8000_0000, 0, 0, None, 1, 0).is_err());
        apply(R_32, &mut f, 0x8000_0000, 0, 0, None, 1, 0).unwrap();
    }

    #[test]
    fn gotpcrel_points_at_the_slot() {
        let mut f = [0u8; 4];
        apply(
            R_REX_GOTPCRELX,
            &mut f,
            0xdead,
            -4,
            0x1000,
            Some(0x3000),
            1,
            0,
        )
        .unwrap();
        assert_eq!(i32::from_le_bytes(f), 0x3000 - 4 - 0x1000);
        assert!(apply(R_GOTPCREL, &mut f, 0, 0, 0, None, 1, 0).is_err());
    }
}
