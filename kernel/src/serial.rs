//! The COM1 serial console: the kernel's only output, read by the host runner.

use crate::arch::{inb, outb};
use crate::sync::IrqMutex;
use core::fmt::{self, Write};

const COM1: u16 = 0x3f8;

/// The console, locked with interrupts off so interrupt handlers can log too.
pub static CONSOLE: IrqMutex<Serial> = IrqMutex::new(Serial { _private: () });

/// The COM1 UART (8250/16550), polled.
pub struct Serial {
    _private: (),
}

/// Programs COM1: 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init() {
    // SAFETY: COM1's registers belong to this driver alone.
    unsafe {
        outb(COM1 + 1, 0x00); // no interrupts
        outb(COM1 + 3, 0x80); // DLAB
        outb(COM1, 0x01); // divisor 1: 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8N1
        outb(COM1 + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
        outb(COM1 + 4, 0x03); // DTR, RTS
    }
}

fn put(byte: u8) {
    // SAFETY: polling the line-status register and writing the data register of COM1.
    unsafe {
        while inb(COM1 + 5) & 0x20 == 0 {
            core::hint::spin_loop();
        }
        outb(COM1, byte);
    }
}

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

/// Writes without taking the lock: for the panic and exception paths, where the
/// lock may be held by the code that failed.
pub fn emergency_write(args: fmt::Arguments<'_>) {
    let _ = Serial { _private: () }.write_fmt(args);
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = $crate::serial::CONSOLE.lock().write_fmt(format_args!($($arg)*));
    }};
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut c = $crate::serial::CONSOLE.lock();
        let _ = c.write_fmt(format_args!($($arg)*));
        let _ = c.write_str("\n");
    }};
}
