/*
 * Real-mode AP trampoline for the smp kernel.
 *
 * tramp_start..tramp_end is copied to a page below 1 MiB (the SIPI vector page); an AP
 * starts there in real mode with CS = page >> 4, IP = 0. It loads the kernel's flat GDT
 * (absolute address, so the code is position independent within its page), enters protected
 * mode and far-jumps to ap_entry32 in the kernel image, which picks a private stack and
 * calls ap_main(index).
 */
.data
.code16
.globl tramp_start, tramp_end
tramp_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds                     /* tramp_gdtr is addressed relative to the copy */
    lgdtl tramp_gdtr - tramp_start
    mov %cr0, %eax
    or $1, %eax                      /* PE */
    mov %eax, %cr0
    ljmpl $0x08, $ap_entry32         /* 32-bit far jump: loads CS from the new GDT */
.align 4
tramp_gdtr:
    .word 23
    .long gdt
tramp_end:

.text
.code32
ap_entry32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $1, %eax
    lock xadd %eax, ap_next          /* this AP's index: 0, 1, ... */
    lea 1(%eax), %ecx
    shl $12, %ecx                    /* 4 KiB stack each */
    lea ap_stacks(%ecx), %esp
    push %eax
    call ap_main
1:  cli
    hlt
    jmp 1b

.data
.align 4
.globl ap_next
ap_next: .long 0
.bss
.align 4096
.globl ap_stacks
ap_stacks: .skip 4096 * 64
.section .note.GNU-stack,"",@progbits
