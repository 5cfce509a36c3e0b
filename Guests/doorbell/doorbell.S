/*
 * The doorbell guest: tiny 64-bit routines the host enters directly (RIP = routine) after
 * putting the CPU in long mode with identity paging. Loaded at guest-physical 0x1000; each
 * routine sits at a fixed 32-byte slot so the host can name it by offset.
 *
 * Arguments, by register: rax = value to write, rcx = count, rdx = port, rbx = address,
 * rsi/rdi = buffer. Every routine ends in HLT, which (without an in-kernel irqchip) returns
 * to the host: the end of one run.
 *
 * Regenerate the embedded image (Sources/Machine/Doorbell/DoorbellGuestImage.swift) with
 *   Guests/doorbell/build.sh
 * MachineTests checks that the embedded bytes equal a fresh build of this file.
 */
    .code64
    .text
    .globl _start
_start:

    .org 0x000          /* out of 1 byte, rcx times */
pio8:   outb %al, %dx
        dec %ecx
        jnz pio8
        hlt

    .org 0x020          /* out of 2 bytes */
pio16:  outw %ax, %dx
        dec %ecx
        jnz pio16
        hlt

    .org 0x040          /* out of 4 bytes */
pio32:  outl %eax, %dx
        dec %ecx
        jnz pio32
        hlt

    .org 0x060          /* MMIO store of 1 byte at rbx */
mmio8:  movb %al, (%rbx)
        dec %ecx
        jnz mmio8
        hlt

    .org 0x080
mmio16: movw %ax, (%rbx)
        dec %ecx
        jnz mmio16
        hlt

    .org 0x0a0
mmio32: movl %eax, (%rbx)
        dec %ecx
        jnz mmio32
        hlt

    .org 0x0c0
mmio64: movq %rax, (%rbx)
        dec %ecx
        jnz mmio64
        hlt

    .org 0x0e0          /* rep outsb: rcx bytes from rsi to port dx */
outs:   cld
        rep outsb
        hlt

    .org 0x100          /* rep insb: rcx bytes from port dx to rdi */
ins:    cld
        rep insb
        hlt

    .org 0x120          /* store rax at (rbx), load 8(rbx), report its low half on port dx */
ramrw:  movq %rax, (%rbx)
        movq 8(%rbx), %rax
        outl %eax, %dx
        hlt

    .org 0x140          /* load 4 bytes from (rbx) (MMIO or ROM) and report on port dx */
load32: movl (%rbx), %eax
        outl %eax, %dx
        hlt

    .org 0x160          /* in 4 bytes from port dx, store at (rbx) */
in32:   inl %dx, %eax
        movl %eax, (%rbx)
        hlt

    .org 0x180          /* interrupts: program the PICs (vectors 0x20-0x2f, only IRQ 5
                           unmasked), load the IDT the host built at 0x7000, report 0 on
                           port dx (ready: an edge raised from now on is latched), then
                           sleep; after each interrupt report the count (at 0x2000) */
irq:    movb $0x11, %al
        outb %al, $0x20
        outb %al, $0xa0
        movb $0x20, %al
        outb %al, $0x21
        movb $0x28, %al
        outb %al, $0xa1
        movb $0x04, %al
        outb %al, $0x21
        movb $0x02, %al
        outb %al, $0xa1
        movb $0x01, %al
        outb %al, $0x21
        outb %al, $0xa1
        movb $0xdf, %al
        outb %al, $0x21
        movb $0xff, %al
        outb %al, $0xa1
        lidt 0x7000
        xorl %r8d, %r8d
        movl %r8d, %eax
        outl %eax, %dx
        sti
1:      hlt
        movl 0x2000, %eax
        cmpl %r8d, %eax
        je 1b
        movl %eax, %r8d
        outl %eax, %dx
        jmp 1b

    .org 0x300          /* IRQ 5 handler: count, EOI */
irq5:   pushq %rax
        lock incl 0x2000
        movb $0x20, %al
        outb %al, $0x20
        popq %rax
        iretq

    .org 0x340          /* any other PIC vector: EOI only */
other:  pushq %rax
        movb $0x20, %al
        outb %al, $0x20
        popq %rax
        iretq
