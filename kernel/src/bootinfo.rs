//! What QEMU's PVH boot hands over: the `hvm_start_info` (Xen's
//! `arch-x86/hvm/start_info.h`, version 1) with the memory map, the command line
//! and the boot modules. Parsed once at boot into fixed-size tables.

use crate::memory::phys_to_virt;

const MAGIC: u32 = 0x336e_c578;
const MAX_REGIONS: usize = 64;
const MAX_MODULES: usize = 4;

/// A memory-map region.
#[derive(Debug, Clone, Copy, Default)]
pub struct Region {
    /// Physical start.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// E820 type: 1 = usable RAM.
    pub kind: u32,
}

/// A boot module (QEMU `-initrd`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Module {
    /// Physical address.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Everything the kernel keeps from the start info.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    /// Physical address of the start info itself.
    pub start_info: u64,
    /// The memory map.
    pub regions: [Region; MAX_REGIONS],
    /// Entries used in `regions`.
    pub nr_regions: usize,
    /// Boot modules.
    pub modules: [Module; MAX_MODULES],
    /// Entries used in `modules`.
    pub nr_modules: usize,
    /// Physical address and length of the command line (0 if none).
    pub cmdline: (u64, usize),
    /// Physical address of the module list (0 if none).
    pub modlist: u64,
    /// Physical address of the memory map.
    pub memmap: u64,
    /// Physical address of the ACPI RSDP (0 if the firmware gave none).
    pub rsdp: u64,
}

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// Why the start info was refused.
#[derive(Debug, Clone, Copy)]
pub enum BootInfoError {
    /// Wrong magic number.
    BadMagic(u32),
    /// Version 0 has no memory map.
    NoMemoryMap,
}

/// Parses the start info at physical address `paddr`.
///
/// # Safety
/// `paddr` must be the address QEMU passed in %ebx, reachable through
/// [`phys_to_virt`], and so must the tables it points to.
pub unsafe fn parse(paddr: u64) -> Result<BootInfo, BootInfoError> {
    // SAFETY: the caller guarantees the start info is mapped.
    let si = unsafe { &*(phys_to_virt(paddr) as *const StartInfo) };
    if si.magic != MAGIC {
        return Err(BootInfoError::BadMagic(si.magic));
    }
    if si.version < 1 || si.memmap_paddr == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let mut info = BootInfo {
        start_info: paddr,
        regions: [Region::default(); MAX_REGIONS],
        nr_regions: 0,
        modules: [Module::default(); MAX_MODULES],
        nr_modules: 0,
        cmdline: (0, 0),
        modlist: si.modlist_paddr,
        memmap: si.memmap_paddr,
        rsdp: si.rsdp_paddr,
    };
    for i in 0..(si.memmap_entries as usize).min(MAX_REGIONS) {
        // SAFETY: entry i < memmap_entries of the table QEMU built.
        let e = unsafe { &*(phys_to_virt(si.memmap_paddr) as *const MemmapEntry).add(i) };
        info.regions[i] = Region {
            start: e.addr,
            len: e.size,
            kind: e.kind,
        };
        info.nr_regions += 1;
    }
    for i in 0..(si.nr_modules as usize).min(MAX_MODULES) {
        // SAFETY: entry i < nr_modules of the list QEMU built.
        let m = unsafe { &*(phys_to_virt(si.modlist_paddr) as *const ModlistEntry).add(i) };
        info.modules[i] = Module {
            paddr: m.paddr,
            size: m.size,
        };
        info.nr_modules += 1;
    }
    if si.cmdline_paddr != 0 {
        let p = phys_to_virt(si.cmdline_paddr) as *const u8;
        let mut len = 0;
        // SAFETY: the command line is NUL-terminated; bound the scan anyway.
        while len < 4096 && unsafe { *p.add(len) } != 0 {
            len += 1;
        }
        info.cmdline = (si.cmdline_paddr, len);
    }
    Ok(info)
}

impl BootInfo {
    /// The memory-map regions.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.nr_regions]
    }

    /// The boot modules' bytes (through the direct map).
    pub fn module(&self, i: usize) -> Option<&'static [u8]> {
        let m = self.modules[..self.nr_modules].get(i)?;
        // SAFETY: QEMU placed the module there; the frame allocator never hands
        // out its frames (see memory::init), so it stays intact.
        Some(unsafe {
            core::slice::from_raw_parts(phys_to_virt(m.paddr) as *const u8, m.size as usize)
        })
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> &'static str {
        if self.cmdline.0 == 0 {
            return "";
        }
        // SAFETY: the bytes were measured in `parse` and are never freed.
        let bytes = unsafe {
            core::slice::from_raw_parts(phys_to_virt(self.cmdline.0) as *const u8, self.cmdline.1)
        };
        core::str::from_utf8(bytes).unwrap_or("")
    }
}
