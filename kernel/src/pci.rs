//! PCI enumeration through configuration mechanism #1 (ports 0xcf8/0xcfc):
//! every function on every bus, with its BARs decoded and sized.

use crate::arch::{inl, outl};
use crate::sync::IrqMutex;
use alloc::vec::Vec;

/// A decoded base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// Not implemented.
    None,
    /// Memory space.
    Memory {
        /// Physical base.
        base: u64,
        /// Size in bytes.
        size: u64,
        /// 64-bit BAR (occupies the next slot too).
        is64: bool,
        /// Prefetchable.
        prefetchable: bool,
    },
    /// I/O space.
    Io {
        /// First port.
        port: u32,
        /// Number of ports.
        size: u32,
    },
}

/// One PCI function.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// Bus number.
    pub bus: u8,
    /// Device number.
    pub dev: u8,
    /// Function number.
    pub func: u8,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class, subclass, programming interface.
    pub class: (u8, u8, u8),
    /// Interrupt line (the PIC IRQ the firmware routed INTx to).
    pub irq_line: u8,
    /// Interrupt pin (1 = INTA; 0 = none).
    pub irq_pin: u8,
    /// The six BARs.
    pub bars: [Bar; 6],
}

static FUNCTIONS: IrqMutex<Vec<Function>> = IrqMutex::new(Vec::new());
static CONFIG_LOCK: IrqMutex<()> = IrqMutex::new(());

fn address(bus: u8, dev: u8, func: u8, offset: u8) -> u32 {
    0x8000_0000
        | (u32::from(bus) << 16)
        | (u32::from(dev) << 11)
        | (u32::from(func) << 8)
        | u32::from(offset & 0xfc)
}

/// Reads a config-space dword.
pub fn read32(bus: u8, dev: u8, func: u8, offset: u8) -> u32 {
    let _g = CONFIG_LOCK.lock();
    // SAFETY: the config ports belong to the kernel; the lock keeps the
    // address/data pair atomic.
    unsafe {
        outl(0xcf8, address(bus, dev, func, offset));
        inl(0xcfc)
    }
}

/// Writes a config-space dword.
pub fn write32(bus: u8, dev: u8, func: u8, offset: u8, value: u32) {
    let _g = CONFIG_LOCK.lock();
    // SAFETY: as read32.
    unsafe {
        outl(0xcf8, address(bus, dev, func, offset));
        outl(0xcfc, value);
    }
}

impl Function {
    /// Reads a dword of this function's config space.
    pub fn read32(&self, offset: u8) -> u32 {
        read32(self.bus, self.dev, self.func, offset)
    }

    /// Writes a dword of this function's config space.
    pub fn write32(&self, offset: u8, value: u32) {
        write32(self.bus, self.dev, self.func, offset, value)
    }

    /// Sets bits in the command register (1 = I/O, 2 = memory, 4 = bus master).
    pub fn enable(&self, bits: u16) {
        let cmd = self.read32(0x04);
        self.write32(0x04, (cmd & 0xffff) | u32::from(bits));
    }
}

fn probe_bars(bus: u8, dev: u8, func: u8) -> [Bar; 6] {
    let mut bars = [Bar::None; 6];
    let cmd = read32(bus, dev, func, 0x04);
    // Stop decoding while the BARs hold all-ones.
    write32(bus, dev, func, 0x04, cmd & !0x3 & 0xffff);
    let mut i = 0;
    while i < 6 {
        let off = 0x10 + 4 * i as u8;
        let orig = read32(bus, dev, func, off);
        write32(bus, dev, func, off, 0xffff_ffff);
        let mask = read32(bus, dev, func, off);
        write32(bus, dev, func, off, orig);
        if mask == 0 {
            i += 1;
            continue;
        }
        if orig & 1 == 1 {
            let size = (!(mask & !0x3)).wrapping_add(1) & 0xffff;
            bars[i] = Bar::Io {
                port: orig & !0x3,
                size,
            };
            i += 1;
        } else {
            let is64 = (orig >> 1) & 3 == 2;
            let mut base = u64::from(orig & !0xf);
            let mut size_mask = u64::from(mask & !0xf) | 0xffff_ffff_0000_0000;
            if is64 && i < 5 {
                let off_hi = off + 4;
                let orig_hi = read32(bus, dev, func, off_hi);
                write32(bus, dev, func, off_hi, 0xffff_ffff);
                let mask_hi = read32(bus, dev, func, off_hi);
                write32(bus, dev, func, off_hi, orig_hi);
                base |= u64::from(orig_hi) << 32;
                size_mask = (size_mask & 0xffff_ffff) | (u64::from(mask_hi) << 32);
            }
            bars[i] = Bar::Memory {
                base,
                size: (!size_mask).wrapping_add(1),
                is64,
                prefetchable: orig & 8 != 0,
            };
            i += if is64 { 2 } else { 1 };
        }
    }
    write32(bus, dev, func, 0x04, cmd & 0xffff);
    bars
}

/// Scans every bus, device and function; remembers and returns what it found.
pub fn enumerate() -> Vec<Function> {
    let mut found = Vec::new();
    for bus in 0..=255u8 {
        for dev in 0..32u8 {
            let id = read32(bus, dev, 0, 0);
            if id & 0xffff == 0xffff {
                continue;
            }
            let multi = (read32(bus, dev, 0, 0x0c) >> 16) & 0x80 != 0;
            for func in 0..if multi { 8 } else { 1 } {
                let id = read32(bus, dev, func, 0);
                if id & 0xffff == 0xffff {
                    continue;
                }
                let class = read32(bus, dev, func, 0x08);
                let int = read32(bus, dev, func, 0x3c);
                let header = (read32(bus, dev, func, 0x0c) >> 16) & 0x7f;
                found.push(Function {
                    bus,
                    dev,
                    func,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class: ((class >> 24) as u8, (class >> 16) as u8, (class >> 8) as u8),
                    irq_line: int as u8,
                    irq_pin: (int >> 8) as u8,
                    bars: if header == 0 {
                        probe_bars(bus, dev, func)
                    } else {
                        [Bar::None; 6]
                    },
                });
            }
        }
    }
    *FUNCTIONS.lock() = found.clone();
    found
}

/// The functions found at boot.
pub fn functions() -> Vec<Function> {
    FUNCTIONS.lock().clone()
}

/// The functions with the given vendor and device IDs.
pub fn find(vendor: u16, device: u16) -> Vec<Function> {
    FUNCTIONS
        .lock()
        .iter()
        .filter(|f| f.vendor == vendor && f.device == device)
        .copied()
        .collect()
}

/// Logs one line per function and BAR.
pub fn log_all(functions: &[Function]) {
    for f in functions {
        crate::info!(
            "{:02x}:{:02x}.{} {:04x}:{:04x} class {:02x}.{:02x}.{:02x} irq {} pin {}",
            f.bus,
            f.dev,
            f.func,
            f.vendor,
            f.device,
            f.class.0,
            f.class.1,
            f.class.2,
            f.irq_line,
            f.irq_pin
        );
        for (i, bar) in f.bars.iter().enumerate() {
            match bar {
                Bar::None => {}
                Bar::Memory {
                    base,
                    size,
                    is64,
                    prefetchable,
                } => crate::info!(
                    "    BAR{i} mem {base:#x} size {size:#x}{}{}",
                    if *is64 { " 64-bit" } else { "" },
                    if *prefetchable { " prefetchable" } else { "" }
                ),
                Bar::Io { port, size } => crate::info!("    BAR{i} io {port:#x} size {size:#x}"),
            }
        }
    }
}
