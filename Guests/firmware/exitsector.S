/*
 * exitsector: a boot sector that exits at once through isa-debug-exit (port 0xf4, value 0:
 * status 1), for timing firmware from start to the boot sector (`vmm bench firmware`).
 */
    .code16
    .text
    .globl _start
_start:
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
1:  hlt
    jmp 1b
    .org 510
    .byte 0x55, 0xaa
