//! Completing the kernel's fault reports on the host: the kernel names the
//! driver function and offset (`init_module+0x51`, or `f.nooks_inner+0x51` for a helper); the object's
//! DWARF — which nooks-cc writes for rewritten code — turns that into the
//! driver's `file:line`.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// The source line of `function+offset` in the object file at `object`.
pub fn source_line(object: &Path, location: &str) -> Result<String> {
    let (function, offset) = location
        .rsplit_once('+')
        .context("location is not function+offset")?;
    let offset =
        u64::from_str_radix(offset.trim_start_matches("0x"), 16).context("offset is not hex")?;
    let nm = Command::new("nm")
        .arg(object)
        .output()
        .context("running nm")?;
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let Some(addr) = symbols.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        let (a, _, name) = (parts.next()?, parts.next()?, parts.next()?);
        (name == function)
            .then(|| u64::from_str_radix(a, 16).ok())
            .flatten()
    }) else {
        bail!("{function} is not a symbol of {}", object.display());
    };
    let out = Command::new("addr2line")
        .arg("-e")
        .arg(object)
        .arg(format!("{:#x}", addr + offset))
        .output()
        .context("running addr2line")?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if line.starts_with("??") {
        bail!("no line information for {location}");
    }
    Ok(line)
}
