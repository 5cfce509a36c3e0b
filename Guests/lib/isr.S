/*
 * Interrupt entry stubs (32-bit): one per vector, each pushes a uniform frame
 * (error code or 0, vector) and calls isr_dispatch(struct irq_frame *).
 */
.macro STUB vec
isr_\vec:
    .if (\vec == 8) || (\vec >= 10 && \vec <= 14) || (\vec == 17)
    .else
    push $0                          /* CPU pushed no error code: keep the frame uniform */
    .endif
    push $\vec
    jmp isr_common
.endm

.text
isr_common:
    pusha
    push %esp                        /* struct irq_frame * */
    cld
    call isr_dispatch
    add $4, %esp
    popa
    add $8, %esp                     /* vector, error code */
    /*
     * Return without IRET. On this machine KVM is the PVM flavour (kvm_pvm, no hardware
     * virtualization), which hands a 32-bit protected-mode IRET to the instruction emulator,
     * and that emulator only implements real-mode IRET: the VM dies with "KVM internal error,
     * emulation failure". For a same-privilege return with flat segments, POPF + far RET does
     * the same job: the stack holds EIP, CS, EFLAGS, so push a copy of EFLAGS, pop it into the
     * flags, then LRET pops EIP and CS and drops the original EFLAGS slot. (An interrupt may
     * arrive between POPF and LRET; it nests on the stack below and returns the same way.)
     */
    pushl 8(%esp)
    popfl
    lret $4

.altmacro
.set i, 0
.rept 256
    STUB %i
    .set i, i + 1
.endr

/* Table of the stubs' addresses for idt_init(). */
.macro STUBADDR vec
    .long isr_\vec
.endm
.section .rodata
.globl isr_stubs
isr_stubs:
.set i, 0
.rept 256
    STUBADDR %i
    .set i, i + 1
.endr

.section .note.GNU-stack,"",@progbits
