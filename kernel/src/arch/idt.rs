//! The IDT and the interrupt entry path.
//!
//! All 256 vectors enter through one assembly stub each (pushing a dummy error
//! code where the CPU pushes none, then the vector) and a common path that saves
//! every general register and the SSE state (`fxsave`: the kernel's Rust code
//! uses SSE registers, so a handler would otherwise corrupt the interrupted
//! code's), then calls [`interrupt_dispatch`] with a [`TrapFrame`] it may edit —
//! which is how a caught fault resumes somewhere else (see `fault`).

use super::gdt::{KERNEL_CS, ist};
use core::arch::{asm, global_asm};
use core::mem::size_of;

/// The registers of the interrupted context, as the entry path saved them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    /// The interrupted context's IA32_PKRS (0 outside `pks` domains),
    /// loaded again on the way out: an interrupt inside a `pks` domain runs
    /// its handler with the kernel's rights.
    pub pkrs: u64,
    /// The interrupted context's CR3, loaded again by `iretq`'s path: an
    /// interrupt inside an MMU domain runs its handler on the kernel's tables.
    pub cr3: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The vector number.
    pub vector: u64,
    /// The CPU's error code, or 0.
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// On entry the path also loads the kernel's CR3 if the interrupted context ran
// on another (an MMU domain's), and the kernel's protection-key rights if it
// ran under a `pks` domain's, and restores both on the way out. The CPU
// pushes the interrupt frame on the IST stack the TSS names, which an MMU
// domain's tables map writable and every `pks` domain's rights leave
// writable (the push happens before any kernel code runs); so that stack is
// only a landing pad: right after switching to the kernel's tables and
// rights the path copies the frame (and the registers, CR3 and PKRS it saved
// there) to the slot's own stack, at the same offset in a region no domain
// can write (`gdt::IST_FRAME_DELTA` away), and runs the handler there. A
// driver that writes the landing pads later changes nothing the kernel
// reads back: no interrupted context's registers or return frame live there.
// Vectors whose exceptions push an error code: 8, 10-14, 17, 21, 29, 30.
global_asm!(
    r#"
    .pushsection .text.isr, "ax"
    .balign 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .ifeq (0x60227d00 >> vec) & 1
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr
    .rept 224
    .balign 16
    pushq $0
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    mov %cr3, %rax
    mov {kernel_cr3}(%rip), %rbx
    test %rbx, %rbx
    jz 1f
    cmp %rbx, %rax
    je 1f
    or {noflush}(%rip), %rbx
    mov %rbx, %cr3
    lock incq {cr3_writes}(%rip)
1:
    push %rax
    xor %eax, %eax
    cmpb $0, NOOKS_PKS_IN_USE(%rip)
    je 3f
    mov ${msr_pkrs}, %ecx
    rdmsr
    test %eax, %eax
    jz 3f
    mov %eax, %ebx
    xor %eax, %eax
    xor %edx, %edx
    wrmsr
    lock incq {pkrs_writes}(%rip)
    mov %ebx, %eax
3:
    push %rax
    mov %rsp, %rbx
    add {delta}(%rip), %rsp
    .irp off, 0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96
    mov \off(%rbx), %rcx
    mov %rcx, \off(%rsp)
    .endr
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    sub $512, %rsp
    fxsave (%rsp)
    lea 512(%rsp), %rdi
    cld
    call interrupt_dispatch
    fxrstor (%rsp)
    add $512, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rax
    test %eax, %eax
    jz 4f
    lock incq {pkrs_writes}(%rip)
    mov ${msr_pkrs}, %ecx
    xor %edx, %edx
    wrmsr
4:
    pop %rax
    mov %cr3, %rbx
    cmp %rax, %rbx
    je 2f
    lock incq {cr3_writes}(%rip)
    or {noflush}(%rip), %rax
    mov %rax, %cr3
2:
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq
    .popsection
    "#,
    kernel_cr3 = sym super::KERNEL_CR3,
    noflush = sym super::CR3_NOFLUSH,
    cr3_writes = sym crate::domain::mmu::CR3_WRITES,
    pkrs_writes = sym crate::domain::pks::PKRS_WRITES,
    msr_pkrs = const super::MSR_PKRS,
    delta = sym super::gdt::IST_FRAME_DELTA,
    options(att_syntax)
);

unsafe extern "C" {
    static isr_stubs: [u8; 256 * 16];
}

#[repr(C)]
/// A 64-bit gate descriptor, in the order the CPU reads it; 16-byte
/// aligned, as Intel recommends for the IDT (so the table is too).
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    _zero: u32,
}

static mut IDT: [Gate; 256] = [Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    attributes: 0,
    offset_mid: 0,
    offset_high: 0,
    _zero: 0,
}; 256];

#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

fn ist_for(vector: usize) -> u8 {
    match vector {
        8 => ist::DOUBLE_FAULT,
        2 | 18 => ist::NMI,
        14 => ist::PAGE_FAULT,
        0..=31 => ist::EXCEPTION,
        _ => ist::IRQ,
    }
}

/// Fills and loads the IDT: every vector an interrupt gate on an IST stack.
pub fn init() {
    // SAFETY: runs once at boot with interrupts off; the stubs are in .text.
    unsafe {
        let base = (&raw const isr_stubs) as u64;
        let idt = &raw mut IDT;
        for v in 0..256 {
            let addr = base + 16 * v as u64;
            (*idt)[v] = Gate {
                offset_low: addr as u16,
                selector: KERNEL_CS,
                ist: ist_for(v),
                attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
                offset_mid: (addr >> 16) as u16,
                offset_high: (addr >> 32) as u32,
                _zero: 0,
            };
        }
        let ptr = IdtPointer {
            limit: (size_of::<[Gate; 256]>() - 1) as u16,
            base: idt as u64,
        };
        asm!("lidt [{}]", in(reg) &ptr, options(nostack));
    }
}

/// The IDT as bytes, for integrity checks.
pub fn table() -> &'static [u8] {
    // SAFETY: a read-only view of a static written only at boot.
    unsafe { core::slice::from_raw_parts((&raw const IDT).cast::<u8>(), size_of::<[Gate; 256]>()) }
}

/// Called by the entry path for every interrupt and exception.
#[unsafe(no_mangle)]
extern "C" fn interrupt_dispatch(frame: &mut TrapFrame) {
    if frame.vector >= 32 {
        crate::timer::woke();
    }
    match frame.vector {
        0..=31 => crate::fault::exception(frame),
        32..=47 => crate::irq::dispatch((frame.vector - 32) as u8, frame),
        v => crate::warn!("unexpected interrupt vector {v}"),
    }
}

/// The name of an exception vector.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack fault",
        13 => "general protection",
        14 => "page fault",
        16 => "x87 floating point",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating point",
        _ => "reserved",
    }
}
