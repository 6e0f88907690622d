//! `printk`: C-variadic, which stable Rust cannot define, so a few lines of
//! assembly spill the register arguments next to the caller's stack arguments
//! and hand both to [`printk_impl`], which walks them as the format asks.
//! Drivers are built with -mgeneral-regs-only, so no argument is ever in an
//! SSE register.

use alloc::string::String;
use core::arch::global_asm;
use core::fmt::Write;

global_asm!(
    r#"
    .pushsection .text.printk, "ax"
    .globl printk
printk:
    push rbp
    mov rbp, rsp
    push r9
    push r8
    push rcx
    push rdx
    push rsi
    mov rsi, rsp
    lea rdx, [rbp + 16]
    sub rsp, 8
    call nooks_printk_impl
    add rsp, 48
    pop rbp
    ret
    .popsection
    "#
);

unsafe extern "C" {
    /// The exported symbol (see the assembly above).
    pub fn printk(fmt: *const u8, ...) -> i32;
}

/// The arguments after the format: five spilled registers, then the stack.
struct Args {
    regs: *const u64,
    stack: *const u64,
    next: usize,
}

impl Args {
    fn next(&mut self) -> u64 {
        let i = self.next;
        self.next += 1;
        // SAFETY: the shim spilled five registers at `regs`; later arguments
        // are the caller's stack arguments. Reading one past what the caller
        // passed reads its frame: harmless, as with C's own va_arg misuse.
        unsafe {
            if i < 5 {
                *self.regs.add(i)
            } else {
                *self.stack.add(i - 5)
            }
        }
    }
}

/// Reads a NUL-terminated string from driver memory, at most `max` bytes.
///
/// # Safety
/// `p` must be readable up to its NUL or `max` bytes (a fault is contained by
/// the caller's catch frame when the driver runs in a domain).
pub unsafe fn c_str(p: *const u8, max: usize) -> String {
    let mut s = String::new();
    if p.is_null() {
        s.push_str("(null)");
        return s;
    }
    for i in 0..max {
        // SAFETY: per the caller's contract.
        let b = unsafe { p.add(i).read_volatile() };
        if b == 0 {
            break;
        }
        s.push(if b.is_ascii() { b as char } else { '?' });
    }
    s
}

/// Formats `fmt` with the C conversions the header documents.
///
/// # Safety
/// `fmt` must be a readable C string; `args` must hold the arguments it names.
unsafe fn format(fmt: *const u8, args: &mut Args) -> String {
    // SAFETY: per the caller's contract.
    let fmt = unsafe { c_str(fmt, 1024) };
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut zero = false;
        let mut left = false;
        while let Some(&f) = chars.peek() {
            match f {
                '0' => zero = true,
                '-' => left = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = width * 10 + d as usize;
            chars.next();
        }
        let mut long = 0;
        while let Some(&l) = chars.peek() {
            match l {
                'l' | 'z' => long += 1,
                'h' => {}
                _ => break,
            }
            chars.next();
        }
        let conv = chars.next().unwrap_or('%');
        let text = match conv {
            '%' => String::from("%"),
            'd' | 'i' => {
                let v = args.next();
                let v = if long > 0 { v as i64 } else { v as i32 as i64 };
                alloc::format!("{v}")
            }
            'u' => {
                let v = args.next();
                let v = if long > 0 { v } else { v as u32 as u64 };
                alloc::format!("{v}")
            }
            'x' | 'X' => {
                let v = args.next();
                let v = if long > 0 { v } else { v as u32 as u64 };
                if conv == 'x' {
                    alloc::format!("{v:x}")
                } else {
                    alloc::format!("{v:X}")
                }
            }
            'p' => alloc::format!("{:#x}", args.next()),
            'c' => String::from((args.next() as u8) as char),
            // SAFETY: the driver passes a string for %s, as printk's contract says.
            's' => unsafe { c_str(args.next() as *const u8, 256) },
            other => alloc::format!("%{other}"),
        };
        let pad = width.saturating_sub(text.len());
        if left {
            out.push_str(&text);
            out.extend(core::iter::repeat_n(' ', pad));
        } else {
            let fill = if zero && conv != 's' && conv != 'c' {
                '0'
            } else {
                ' '
            };
            out.extend(core::iter::repeat_n(fill, pad));
            out.push_str(&text);
        }
    }
    out
}

#[unsafe(no_mangle)]
extern "C" fn nooks_printk_impl(fmt: *const u8, regs: *const u64, stack: *const u64) -> i32 {
    let mut args = Args {
        regs,
        stack,
        next: 0,
    };
    // SAFETY: called only from the printk shim with the caller's arguments.
    let text = unsafe { format(fmt, &mut args) };
    let line = text.trim_end_matches('\n');
    crate::log::log(crate::log::Level::Info, "driver", format_args!("{line}"));
    text.len() as i32
}

/// Formats like printk, for kernel tests of the formatter.
pub fn format_for_test(fmt: &core::ffi::CStr, regs: &[u64; 5], stack: &[u64]) -> String {
    let mut args = Args {
        regs: regs.as_ptr(),
        stack: stack.as_ptr(),
        next: 0,
    };
    // SAFETY: `fmt` is a CStr; the test supplies the arguments the format names.
    unsafe { format(fmt.as_ptr().cast(), &mut args) }
}

/// Writes `text` as a driver log line (for wrappers that report on a driver's behalf).
pub fn driver_line(text: &str) {
    let mut s = String::new();
    let _ = write!(s, "{text}");
    crate::log::log(crate::log::Level::Info, "driver", format_args!("{s}"));
}
