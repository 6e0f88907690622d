//! ACPI, as far as the kernel needs it: the DMA remapping units the firmware
//! describes in its DMAR table. The tables are found and validated by the
//! `acpi` crate (rust-osdev) from the RSDP QEMU's PVH boot hands over; only
//! the DMAR's remapping structures, which that crate leaves raw, are read
//! here.

use crate::memory::{DIRECT_MAP, PAGE_SIZE, paging, phys_to_virt};
use acpi::sdt::{SdtHeader, Signature};
use acpi::{AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};
use alloc::vec::Vec;
use core::ptr::NonNull;

/// Maps firmware tables: through the direct map where it covers them (RAM),
/// else uncached through `ioremap` (reserved regions). Nothing is unmapped:
/// the kernel reads the tables once, at boot.
#[derive(Clone, Copy)]
struct Mapper;

fn direct_mapped(phys: u64, len: u64) -> bool {
    let mut page = phys & !(PAGE_SIZE - 1);
    while page < phys + len {
        if paging::kernel_translate(DIRECT_MAP + page).is_none() {
            return false;
        }
        page += PAGE_SIZE;
    }
    true
}

impl AcpiHandler for Mapper {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let (p, len) = (phys as u64, size as u64);
        let virt = if direct_mapped(p, len) {
            phys_to_virt(p)
        } else {
            paging::ioremap(p, len).unwrap_or_else(|e| panic!("mapping ACPI tables at {p:#x}: {e}"))
        };
        let ptr = NonNull::new(virt as *mut T).expect("a mapping is never at address 0");
        // SAFETY: [phys, phys + size) is mapped at `ptr` from now on (never
        // unmapped); the firmware's tables are valid to read there.
        unsafe { PhysicalMapping::new(phys, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The DMAR table's fixed part (ACPI's "DMA Remapping Reporting" table).
#[repr(C, packed)]
struct Dmar {
    header: SdtHeader,
    host_address_width: u8,
    flags: u8,
    _reserved: [u8; 10],
}

// SAFETY: the layout of the DMAR table's fixed part (Intel VT-d, 8.1).
unsafe impl AcpiTable for Dmar {
    const SIGNATURE: Signature = Signature::DMAR;
    fn header(&self) -> &SdtHeader {
        &self.header
    }
}

/// A DMA remapping hardware unit (a DRHD structure).
#[derive(Debug, Clone)]
pub struct RemappingUnit {
    /// Physical base of its registers.
    pub registers: u64,
    /// PCI segment it serves.
    pub segment: u16,
    /// It serves every device of the segment no other unit lists.
    pub include_all: bool,
    /// Its device scopes, if it lists them.
    pub scopes: Vec<Scope>,
}

/// A DRHD device scope: a PCI endpoint or bridge (one path step: the
/// device and function on the start bus), an I/O APIC, an HPET.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// 1: PCI endpoint; 2: PCI sub-hierarchy (a bridge and what is behind
    /// it); 3: I/O APIC; 4: HPET.
    pub kind: u8,
    /// Start bus.
    pub bus: u8,
    /// Device and function of the path's first step.
    pub devfn: (u8, u8),
}

impl RemappingUnit {
    /// Whether the unit translates PCI function `bus:dev.func`: it includes
    /// all, or lists it, or lists a bridge it could sit behind.
    pub fn serves(&self, bus: u8, dev: u8, func: u8) -> bool {
        self.include_all
            || self.scopes.iter().any(|s| match s.kind {
                1 => s.bus == bus && s.devfn == (dev, func),
                2 => bus > s.bus,
                _ => false,
            })
    }
}

/// Why no remapping unit was found.
#[derive(Debug)]
pub enum AcpiError {
    /// The boot handed over no RSDP.
    NoRsdp,
    /// The `acpi` crate refused the tables (or found no DMAR).
    Tables(acpi::AcpiError),
    /// A remapping structure runs past the table.
    Truncated(usize),
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "the boot handed over no RSDP"),
            AcpiError::Tables(acpi::AcpiError::TableMissing(_)) => {
                write!(f, "no DMAR table (no DMA remapping hardware)")
            }
            AcpiError::Tables(e) => write!(f, "ACPI tables: {e:?}"),
            AcpiError::Truncated(at) => {
                write!(f, "DMAR: a structure at byte {at} runs past the table")
            }
        }
    }
}

/// The DMA remapping units of the DMAR table found from the RSDP at `rsdp`.
pub fn remapping_units(rsdp: u64) -> Result<Vec<RemappingUnit>, AcpiError> {
    if rsdp == 0 {
        return Err(AcpiError::NoRsdp);
    }
    // SAFETY: the RSDP's address came from QEMU's PVH start info.
    let tables =
        unsafe { AcpiTables::from_rsdp(Mapper, rsdp as usize) }.map_err(AcpiError::Tables)?;
    let dmar = tables.find_table::<Dmar>().map_err(AcpiError::Tables)?;
    // SAFETY: the crate mapped the whole table (`region_length` is the
    // length its validated header gives).
    let bytes = unsafe {
        core::slice::from_raw_parts(
            dmar.virtual_start().as_ptr().cast::<u8>(),
            dmar.region_length(),
        )
    };
    let mut units = Vec::new();
    let mut at = core::mem::size_of::<Dmar>();
    while at + 4 <= bytes.len() {
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let (kind, len) = (u16_at(at), usize::from(u16_at(at + 2)));
        if len < 4 || at + len > bytes.len() {
            return Err(AcpiError::Truncated(at));
        }
        // Type 0: a DRHD (flags, reserved, segment, register base, scopes).
        if kind == 0 {
            if len < 16 {
                return Err(AcpiError::Truncated(at));
            }
            let mut base = [0u8; 8];
            base.copy_from_slice(&bytes[at + 8..at + 16]);
            // Device scopes: type, length, flags, reserved, enumeration id,
            // start bus, then the path (device, function pairs).
            let mut scopes = Vec::new();
            let mut o = at + 16;
            while o + 6 <= at + len {
                let scope_len = usize::from(bytes[o + 1]);
                if scope_len < 8 || o + scope_len > at + len {
                    return Err(AcpiError::Truncated(o));
                }
                scopes.push(Scope {
                    kind: bytes[o],
                    bus: bytes[o + 5],
                    devfn: (bytes[o + 6], bytes[o + 7]),
                });
                o += scope_len;
            }
            units.push(RemappingUnit {
                registers: u64::from_le_bytes(base),
                segment: u16_at(at + 6),
                include_all: bytes[at + 4] & 1 != 0,
                scopes,
            });
        }
        at += len;
    }
    Ok(units)
}
