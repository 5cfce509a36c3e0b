/*
 * optionrom: a 512-byte PCI expansion ROM for pci-testdev (1b36:0005), for `romfile=` tests.
 * Firmware finds it through the device's ROM BAR (signature 0x55aa, the PCI data structure
 * "PCIR" with the device's ids, x86 code, last image), copies it below 1 MiB and far-calls its
 * initialization entry at offset 3. The entry prints a line on
 * COM1 (the AX it was given) and returns. build.sh fixes the last byte so the bytes sum to 0.
 */
    .code16
    .text
    .globl _start
_start:
    .byte 0x55, 0xaa
    .byte 1                         /* 1 x 512 bytes */
    jmp init
    .org 0x18
    .word pcir                      /* PCI data structure */
    .word 0                         /* no PnP header */
    .balign 4
pcir:
    .ascii "PCIR"
    .word 0x1b36, 0x0005            /* vendor, device */
    .word 0                         /* vital product data */
    .word 0x18                      /* structure length */
    .byte 0                         /* revision */
    .byte 0x00, 0xff, 0x00          /* class: prog-if, subclass, base class (PCI_CLASS_OTHERS) */
    .word 1                         /* image length, 512-byte units */
    .word 0                         /* code revision */
    .byte 0                         /* code type: x86 */
    .byte 0x80                      /* last image */
    .word 0

init:
    pushw %ds
    pushal
    mov %ax, %bx
    mov %cs, %ax
    mov %ax, %ds
    mov $msg, %si
    call puts
    mov %bx, %ax
    call puthex16
    mov $newline, %si
    call puts
    popal
    popw %ds
    lret

puts:
1:  lodsb
    test %al, %al
    jz 2f
    call putc
    jmp 1b
2:  ret

putc:
    push %dx
    push %ax
    mov $0x3fd, %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    pop %ax
    mov $0x3f8, %dx
    out %al, %dx
    pop %dx
    ret

puthex16:
    push %ax
    mov %ah, %al
    call puthex8
    pop %ax
puthex8:
    push %ax
    shr $4, %al
    call nibble
    pop %ax
    push %ax
    call nibble
    pop %ax
    ret
nibble:
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 1f
    add $('a' - '0' - 10), %al
1:  jmp putc

msg:     .asciz "optionrom: initialized by firmware, AX="
newline: .asciz "\n"
    .org 511
checksum: .byte 0
