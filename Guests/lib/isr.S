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
    iret

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
