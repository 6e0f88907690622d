//! Port I/O for rewritten drivers: Cranelift has no `in`/`out`, so nooks-cc
//! turns them into calls to these (after checking the port against the
//! driver's policy under SFI). Sizes other than 1, 2 and 4 bytes do nothing.

/// Whether the calling domain's policy allows `port` (a driver may call
/// these exports directly, not only through a rewritten `in`/`out`).
fn allowed(export: &'static str, port: u64) -> bool {
    let ok = u16::try_from(port).is_ok_and(crate::domain::port_allowed);
    if !ok {
        crate::domain::misuse(export, "port", port, "outside the domain's policy");
    }
    ok
}

pub extern "C" fn nooks_port_in(port: u64, size: u64) -> u32 {
    if !allowed("nooks_port_in", port) {
        return !0;
    }
    let port = port as u16;
    // SAFETY: the domain's policy allows this port (checked above, and in
    // its own code under SFI); port reads have no memory effects.
    unsafe {
        match size {
            1 => u32::from(crate::arch::inb(port)),
            2 => u32::from(crate::arch::inw(port)),
            4 => crate::arch::inl(port),
            _ => !0,
        }
    }
}

pub extern "C" fn nooks_port_out(port: u64, size: u64, value: u64) {
    if !allowed("nooks_port_out", port) {
        return;
    }
    let port = port as u16;
    // SAFETY: as above.
    unsafe {
        match size {
            1 => crate::arch::outb(port, value as u8),
            2 => crate::arch::outw(port, value as u16),
            4 => crate::arch::outl(port, value as u32),
            _ => {}
        }
    }
}
