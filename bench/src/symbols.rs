//! The kernel's symbol map: the kernel is booted from its loadable segments only,
//! so it cannot read its own `.symtab`. The runner extracts the function symbols
//! from the ELF and ships them as the boot-archive member `kernel.map`, one
//! `<hex addr> <hex size> <demangled name>` line per symbol, sorted by address.

use anyhow::{Context, Result};
use object::{Object, ObjectSymbol, SymbolKind};
use std::path::Path;

/// Name of the boot-archive member holding the map.
pub const MAP_MEMBER: &str = "kernel.map";

/// Reads the function symbols of an ELF file and renders the map text.
pub fn kernel_map(elf: &Path) -> Result<String> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    map_of(&bytes).with_context(|| format!("reading symbols of {}", elf.display()))
}

/// Renders the map of an ELF image held in memory.
pub fn map_of(bytes: &[u8]) -> Result<String> {
    let file = object::File::parse(bytes)?;
    let mut syms: Vec<(u64, u64, String)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some((
                s.address(),
                s.size(),
                format!("{:#}", rustc_demangle::demangle(name)),
            ))
        })
        .collect();
    syms.sort();
    syms.dedup_by_key(|s| s.0);
    let mut out = String::new();
    for (addr, size, name) in syms {
        // Names never contain newlines; spaces are kept (demangled generics have them).
        out.push_str(&format!("{addr:x} {size:x} {name}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn maps_this_test_binary() {
        let me = std::env::current_exe().unwrap();
        let map = super::kernel_map(&me).unwrap();
        let mut last = 0u64;
        let mut found = false;
        for line in map.lines() {
            let mut parts = line.splitn(3, ' ');
            let addr = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
            u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
            let name = parts.next().unwrap();
            assert!(addr > last, "sorted and unique");
            last = addr;
            found |= name.contains("maps_this_test_binary");
        }
        assert!(found, "the test function itself is in the map");
    }
}
