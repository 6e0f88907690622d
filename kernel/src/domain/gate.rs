//! The gates: the only code that moves control between the kernel and a
//! driver, written in assembly because they run partly on the driver's stack
//! and page tables.
//!
//! - [`call`] (kernel → driver, every mechanism): records the kernel's stack
//!   pointer on the *gate stack* (kernel memory, read-only inside an MMU
//!   domain), switches to the domain's stack and page tables when it has its
//!   own, calls the entry with up to six arguments, and comes back through the
//!   recorded values — so nothing the driver did to its registers or its stack
//!   decides where the kernel resumes. It returns the driver's result and the
//!   RFLAGS the driver returned with (the MMU mechanism checks the real IF).
//! - `nooks_gate_<export>` (driver → kernel, MMU domains): what an MMU domain's
//!   imports resolve to. Each loads the kernel's tables, parks the driver's
//!   return address on the gate stack, calls the export with the driver's
//!   arguments untouched (stack arguments included), and returns to the
//!   driver on its domain's tables.
//!
//! Both clear the direction flag on the way into kernel code (the ABI's
//! entry state: a driver's `std` must not make `kzalloc` zero backwards).
//!
//! Both sides bump the gate stack before writing their slot and read it
//! before dropping it, so an interrupt at any instruction nests safely.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// Slots on the gate stack: two per nested crossing is plenty.
const DEPTH: usize = 512;

#[repr(C, align(16))]
struct GateStack([u64; DEPTH]);

static mut GATE_STACK: GateStack = GateStack([0; DEPTH]);

/// Next free gate-stack slot (an address in `GATE_STACK`).
#[unsafe(no_mangle)]
static NOOKS_GATE_TOP: AtomicU64 = AtomicU64::new(0);

/// The CR3 value (PCID and no-flush bit included) the driver-to-kernel gates
/// return to: the tables of the MMU domain the kernel last entered.
pub static DOMAIN_CR3: AtomicU64 = AtomicU64::new(0);

/// The IA32_PKRS value the driver-to-kernel gates of `pks` domains return
/// with: the rights of the `pks` domain the kernel last entered.
#[unsafe(no_mangle)]
pub static NOOKS_DOMAIN_PKRS: AtomicU64 = AtomicU64::new(0);
pub use NOOKS_DOMAIN_PKRS as DOMAIN_PKRS;

/// How many driver → kernel calls went through a gate.
pub static EXITS: AtomicU64 = AtomicU64::new(0);

fn base() -> u64 {
    &raw const GATE_STACK as u64
}

/// The gate stack's top, to restore after a fault abandoned crossings.
pub fn top() -> u64 {
    match NOOKS_GATE_TOP.load(Ordering::SeqCst) {
        0 => base(),
        t => t,
    }
}

/// Restores the gate stack's top (after a fault unwound past crossings).
pub fn set_top(t: u64) {
    NOOKS_GATE_TOP.store(t, Ordering::SeqCst);
}

/// Whether another crossing fits (a runaway recursion through the gates is
/// refused instead of overrunning the gate stack).
pub fn has_room() -> bool {
    top() + 64 <= base() + (DEPTH * 8) as u64
}

/// What a driver entry returned.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Returned {
    /// RAX.
    pub value: u64,
    /// RFLAGS at the return.
    pub rflags: u64,
}

global_asm!(
    r#"
    .pushsection .text.nooks_gate, "ax"
    .globl nooks_domain_call
nooks_domain_call:
    push rbp
    mov rbp, rsp
    push rbx
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8
    mov [rsp], r8
    mov r10, [rip + NOOKS_GATE_TOP]
    lea r11, [r10 + 8]
    mov [rip + NOOKS_GATE_TOP], r11
    mov [r10], rsp
    mov rbx, rdi
    mov r11, rsi
    mov r10, rcx
    test rdx, rdx
    jz 1f
    mov rsp, rdx
1:
    test r8, r8
    jz 4f
    mov eax, r8d
    xor edx, edx
    mov ecx, {msr_pkrs}
    wrmsr
4:
    mov rdi, [r11]
    mov rsi, [r11 + 8]
    mov rdx, [r11 + 16]
    mov rcx, [r11 + 24]
    mov r8, [r11 + 32]
    mov r9, [r11 + 40]
    test r10, r10
    jz 2f
    mov cr3, r10
2:
    call rbx
    mov r12, rax
    pushfq
    pop r13
    cld
    mov r10, [rip + NOOKS_GATE_TOP]
    mov rsp, [r10 - 8]
    cmp qword ptr [rsp], 0
    je 5f
    xor eax, eax
    xor edx, edx
    mov ecx, {msr_pkrs}
    wrmsr
5:
    mov r11, [rip + {kernel_cr3}]
    mov r10, cr3
    cmp r10, r11
    je 3f
    or r11, [rip + {noflush}]
    mov cr3, r11
3:
    mov r10, [rip + NOOKS_GATE_TOP]
    sub r10, 8
    mov [rip + NOOKS_GATE_TOP], r10
    mov rax, r12
    mov rdx, r13
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .popsection
    "#,
    kernel_cr3 = sym crate::arch::KERNEL_CR3,
    noflush = sym crate::arch::CR3_NOFLUSH,
    msr_pkrs = const crate::arch::MSR_PKRS,
);

unsafe extern "C" {
    fn nooks_domain_call(
        entry: u64,
        args: *const [u64; 6],
        stack: u64,
        cr3: u64,
        pkrs: u64,
    ) -> Returned;
}

/// Defines one driver → kernel gate per export: `nooks_gate_<name>` loads
/// the kernel's tables, parks the driver's return address on the gate stack,
/// calls the export — a direct call, so no register decides where a gate
/// goes: a driver jumping into any gate, at any instruction, reaches that
/// gate's export (with the argument checks every export makes) or its return
/// — and returns to the driver on the domain's tables.
macro_rules! kernel_gates {
    ($($name:ident => $path:path),* $(,)?) => {
        $(
            core::arch::global_asm!(
                ".pushsection .text.nooks_gate, \"ax\"",
                concat!(".globl nooks_gate_", stringify!($name)),
                concat!("nooks_gate_", stringify!($name), ":"),
                "mov r10, [rip + {kernel_cr3}]",
                "or r10, [rip + {noflush}]",
                "mov cr3, r10",
                "mov r10, [rip + NOOKS_GATE_TOP]",
                "lea r10, [r10 + 8]",
                "mov [rip + NOOKS_GATE_TOP], r10",
                "pop qword ptr [r10 - 8]",
                "lock inc qword ptr [rip + {exits}]",
                "lock add qword ptr [rip + {cr3_writes}], 2",
                "cld",
                "call {target}",
                "mov r10, [rip + NOOKS_GATE_TOP]",
                "push qword ptr [r10 - 8]",
                "sub r10, 8",
                "mov [rip + NOOKS_GATE_TOP], r10",
                "mov r10, [rip + {domain_cr3}]",
                "mov cr3, r10",
                "ret",
                ".popsection",
                target = sym $path,
                kernel_cr3 = sym crate::arch::KERNEL_CR3,
                noflush = sym crate::arch::CR3_NOFLUSH,
                domain_cr3 = sym $crate::domain::gate::DOMAIN_CR3,
                exits = sym $crate::domain::gate::EXITS,
                cr3_writes = sym $crate::domain::mmu::CR3_WRITES,
            );
        )*

        $(
            core::arch::global_asm!(
                ".pushsection .text.nooks_gate, \"ax\"",
                concat!(".globl nooks_pkgate_", stringify!($name)),
                concat!("nooks_pkgate_", stringify!($name), ":"),
                // The kernel's rights first (eax, ecx, edx kept on the
                // driver's stack, which its rights leave writable).
                "push rax",
                "push rcx",
                "push rdx",
                "xor eax, eax",
                "xor edx, edx",
                "mov ecx, {msr_pkrs}",
                "wrmsr",
                "pop rdx",
                "pop rcx",
                "pop rax",
                "mov r10, [rip + NOOKS_GATE_TOP]",
                "lea r10, [r10 + 8]",
                "mov [rip + NOOKS_GATE_TOP], r10",
                "pop qword ptr [r10 - 8]",
                "lock inc qword ptr [rip + {exits}]",
                "lock add qword ptr [rip + {pkrs_writes}], 2",
                "cld",
                "call {target}",
                "mov r10, [rip + NOOKS_GATE_TOP]",
                "push qword ptr [r10 - 8]",
                "sub r10, 8",
                "mov [rip + NOOKS_GATE_TOP], r10",
                "mov r11, rax",
                "mov eax, dword ptr [rip + NOOKS_DOMAIN_PKRS]",
                "xor edx, edx",
                "mov ecx, {msr_pkrs}",
                "wrmsr",
                "mov rax, r11",
                "ret",
                ".popsection",
                target = sym $path,
                msr_pkrs = const crate::arch::MSR_PKRS,
                exits = sym $crate::domain::gate::EXITS,
                pkrs_writes = sym $crate::domain::pks::PKRS_WRITES,
            );
        )*

        /// The gate through which an MMU domain calls export `name`.
        pub fn kernel_gate(name: &str) -> Option<u64> {
            unsafe extern "C" {
                $(#[link_name = concat!("nooks_gate_", stringify!($name))] safe fn $name();)*
            }
            match name {
                $(stringify!($name) => Some($name as *const () as u64),)*
                _ => None,
            }
        }

        /// The gate through which a `pks` domain calls export `name`.
        pub fn kernel_pkgate(name: &str) -> Option<u64> {
            unsafe extern "C" {
                $(#[link_name = concat!("nooks_pkgate_", stringify!($name))] safe fn $name();)*
            }
            match name {
                $(stringify!($name) => Some($name as *const () as u64),)*
                _ => None,
            }
        }
    };
}
pub(crate) use kernel_gates;

/// Calls driver code at `entry` with `args` (the System V integer argument
/// registers), on `stack` (0: the current one), page tables `cr3` (0: the
/// current ones) and protection-key rights `pkrs` (0: the kernel's).
///
/// # Safety
/// `entry` is driver code taking at most six integer arguments; `stack`, if
/// not 0, is the 16-byte aligned top of a stack the domain owns; `cr3`, if not
/// 0, is a domain's tables, which map `entry`, `stack` and the gates; `pkrs`,
/// if not 0, leaves `stack` writable.
pub unsafe fn call(entry: u64, args: &[u64; 6], stack: u64, cr3: u64, pkrs: u64) -> Returned {
    if NOOKS_GATE_TOP.load(Ordering::SeqCst) == 0 {
        set_top(base());
    }
    // SAFETY: per the caller's contract; the gate restores the kernel's
    // rights, stack and tables before it returns.
    unsafe { nooks_domain_call(entry, args, stack, cr3, pkrs) }
}
