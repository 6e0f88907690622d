//! The PVH entry: QEMU jumps to `pvh_start32` in 32-bit protected mode with paging
//! off and `%ebx` holding the physical address of the `hvm_start_info`.
//!
//! The stub builds throw-away page tables (the first GiB identity-mapped and the
//! same GiB at KERNEL_BASE, 2 MiB pages), enables long mode, SSE (the prebuilt
//! `core` uses it), NX and write protection, switches to the kernel stack in the
//! higher half and calls [`crate::kernel_main`]. The kernel replaces these tables
//! with its own as soon as it has a frame allocator (see `memory::paging`).

use core::arch::global_asm;

/// Size of the boot (and later, idle) kernel stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; BOOT_STACK_SIZE]);

#[used]
#[unsafe(no_mangle)]
static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

// The Xen ELF note that makes QEMU boot us through PVH:
// name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), descriptor: the 32-bit entry.
global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4
    .popsection
    "#,
    options(att_syntax)
);

global_asm!(
    r#"
    .pushsection .boot.text, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi                      /* hvm_start_info (physical) */
    mov $boot_stack32_top, %esp

    /* CR4: PAE | OSFXSR | OSXMMEXCPT */
    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    mov %eax, %cr4

    mov $boot_pml4, %eax
    mov %eax, %cr3

    /* EFER: LME | NXE */
    mov $0xC0000080, %ecx
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax
    wrmsr

    /* CR0: PE | MP | WP | PG, EM off */
    mov %cr0, %eax
    and $~(1 << 2), %eax
    or $((1 << 0) | (1 << 1) | (1 << 16) | (1 << 31)), %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $boot_long_mode

    .code64
boot_long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    movabs $BOOT_STACK, %rsp
    add ${stack_size}, %rsp
    xor %ebp, %ebp
    mov %esi, %edi                      /* first argument: hvm_start_info */
    movabs $kernel_main, %rax
    call *%rax
1:  hlt
    jmp 1b

    .pushsection .boot.data, "aw"
    .balign 4096
boot_pml4:
    .quad boot_pdpt_low + 0x3
    .fill 510, 8, 0
    .quad boot_pdpt_high + 0x3
boot_pdpt_low:
    .quad boot_pd + 0x3
    .fill 511, 8, 0
boot_pdpt_high:
    .fill 510, 8, 0
    .quad boot_pd + 0x3
    .quad 0
boot_pd:
    .set i, 0
    .rept 512
    .quad (i << 21) | 0x83
    .set i, i + 1
    .endr
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt
    .balign 16
    .fill 1024, 1, 0
boot_stack32_top:
    .popsection
    .popsection
    "#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);
