/*
 * Multiboot v1 entry for the 32-bit kernels.
 *
 * The loader enters in flat 32-bit protected mode with EAX = 0x2BADB002 and EBX = the
 * Multiboot information; the GDTR it leaves behind is undefined (Multiboot says so), so we
 * load our own flat GDT before touching segment registers (the smp kernel's APs reuse it).
 */
.section .multiboot,"a"
.align 4
.long 0x1BADB002                   /* magic */
.long 0x00000003                   /* flags: page-align modules, provide memory info */
.long -(0x1BADB002 + 0x00000003)   /* checksum */

.text
.globl _start
_start:
    cli
    mov %eax, mb_magic
    mov %ebx, mb_info_addr
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $stack_top, %esp
    xor %ebp, %ebp
    call serial_init
    call kmain
    push $1                          /* kmain must not return: report it as a failure */
    call exit

.data
.globl mb_magic, mb_info_addr, gdt, gdt_desc
mb_magic: .long 0
mb_info_addr: .long 0
.align 8
gdt:
    .quad 0                          /* null */
    .quad 0x00cf9a000000ffff         /* 0x08: flat 32-bit code */
    .quad 0x00cf92000000ffff         /* 0x10: flat data */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt

.bss
.align 16
.skip 16384
stack_top:

.section .note.GNU-stack,"",@progbits
