//! The legacy 8259 PIC pair, remapped to vectors 32..47. SeaBIOS programs the
//! PCI interrupt lines (config register 0x3c) for ISA IRQs and sets them
//! level-triggered in the ELCR, so the PIC delivers the NICs' INTx.

use super::{inb, outb};

const MASTER_CMD: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_CMD: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// First vector of the remapped PIC.
pub const VECTOR_BASE: u8 = 32;

/// Remaps both PICs to 32..47 and masks every line but the cascade.
pub fn init() {
    // SAFETY: the PIC ports belong to the kernel; the standard ICW sequence.
    unsafe {
        outb(MASTER_CMD, 0x11);
        outb(SLAVE_CMD, 0x11);
        outb(MASTER_DATA, VECTOR_BASE);
        outb(SLAVE_DATA, VECTOR_BASE + 8);
        outb(MASTER_DATA, 4); // slave on IRQ2
        outb(SLAVE_DATA, 2);
        outb(MASTER_DATA, 0x01); // 8086 mode
        outb(SLAVE_DATA, 0x01);
        outb(MASTER_DATA, 0xfb); // all masked but the cascade
        outb(SLAVE_DATA, 0xff);
    }
}

/// Unmasks an IRQ line (0..15).
pub fn unmask(line: u8) {
    let (port, bit) = if line < 8 {
        (MASTER_DATA, line)
    } else {
        (SLAVE_DATA, line - 8)
    };
    // SAFETY: read-modify-write of the PIC's mask register.
    unsafe { outb(port, inb(port) & !(1 << bit)) };
}

/// Masks an IRQ line (0..15).
pub fn mask(line: u8) {
    let (port, bit) = if line < 8 {
        (MASTER_DATA, line)
    } else {
        (SLAVE_DATA, line - 8)
    };
    // SAFETY: read-modify-write of the PIC's mask register.
    unsafe { outb(port, inb(port) | (1 << bit)) };
}

/// Whether `line` (7 or 15) is really in service, i.e. not a spurious interrupt.
pub fn in_service(line: u8) -> bool {
    let (cmd, bit) = if line < 8 {
        (MASTER_CMD, line)
    } else {
        (SLAVE_CMD, line - 8)
    };
    // SAFETY: OCW3 "read ISR", then read it back.
    unsafe {
        outb(cmd, 0x0b);
        inb(cmd) & (1 << bit) != 0
    }
}

/// Signals end of interrupt for `line`.
pub fn eoi(line: u8) {
    // SAFETY: non-specific EOI to the PIC(s) that delivered the line.
    unsafe {
        if line >= 8 {
            outb(SLAVE_CMD, 0x20);
        }
        outb(MASTER_CMD, 0x20);
    }
}
