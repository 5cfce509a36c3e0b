/*
 * wake16: the real-mode S3 waking code of the suspend kernel. Position independent: the kernel
 * copies wake16_start..wake16_end to a paragraph-aligned address below 1 MiB and points the
 * FACS waking vector at it; firmware (or vmm's direct resume) enters it with CS:IP = addr>>4:0.
 * It prints PM1 status (without TMR_STS, which depends on timing), the CMOS shutdown status and
 * whether the word the kernel left at 0x8000 survived, then passes through isa-debug-exit.
 * The kernel fills wake16_pm1_evt (the PM1a event port) in the copy before suspending.
 */
    .code16
    .section .rodata
    .globl wake16_start, wake16_end, wake16_pm1_evt
wake16_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0xff0, %sp
    mov $(msg_resumed - wake16_start), %si
    call puts
    mov (wake16_pm1_evt - wake16_start), %dx
    in %dx, %ax
    and $0xfffe, %ax
    call puthex16
    mov $(msg_cmos - wake16_start), %si
    call puts
    mov $0x0f, %al
    out %al, $0x70
    in $0x71, %al
    call puthex8
    mov $(msg_ram - wake16_start), %si
    call puts
    mov $0x800, %ax
    mov %ax, %es
    mov $(msg_lost - wake16_start), %si
    cmpl $0x5a17c0de, %es:0
    jne 1f
    mov $(msg_kept - wake16_start), %si
1:  call puts
    mov $(msg_pass - wake16_start), %si
    call puts
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
2:  hlt
    jmp 2b

puts:
    push %ax
1:  lodsb
    test %al, %al
    jz 2f
    call putc
    jmp 1b
2:  pop %ax
    ret

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

msg_resumed: .asciz "resumed: PM1 status "
msg_cmos:    .asciz ", CMOS shutdown status "
msg_ram:     .asciz ", RAM word at 0x8000 "
msg_kept:    .asciz "kept\n"
msg_lost:    .asciz "lost\n"
msg_pass:    .asciz "PASS suspend\n"
    .balign 2
wake16_pm1_evt: .word 0
wake16_end:
.section .note.GNU-stack,"",@progbits
