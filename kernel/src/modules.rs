//! Boot modules: module 0 is an `ar` archive of driver objects plus the kernel's
//! symbol map (`kernel.map`, installed into [`crate::symbols`]).

use alloc::vec::Vec;
use nooks_loader::archive::{self, Member};

/// Reads the boot archive; logs and returns its members (empty without one).
pub fn init(boot: &crate::bootinfo::BootInfo) -> Vec<Member<'static>> {
    let Some(bytes) = boot.module(0) else {
        crate::info!("no boot module");
        return Vec::new();
    };
    match archive::members(bytes) {
        Ok(members) => {
            for m in &members {
                crate::info!("boot module member {} ({} bytes)", m.name, m.data.len());
                if m.name == "kernel.map" {
                    crate::symbols::install(m.data);
                }
            }
            members
        }
        Err(e) => {
            crate::warn!(
                "boot module 0 ({} bytes) is not an archive: {e}",
                bytes.len()
            );
            Vec::new()
        }
    }
}

/// The boot archive's members.
pub fn members() -> Vec<Member<'static>> {
    crate::boot_info()
        .module(0)
        .and_then(|b| archive::members(b).ok())
        .unwrap_or_default()
}
