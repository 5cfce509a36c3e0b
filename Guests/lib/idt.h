/* Minimal 32-bit IDT, 8259 PIC and local APIC helpers for the interrupt tests. */
#ifndef GUESTS_IDT_H
#define GUESTS_IDT_H
#include "lib.h"

struct irq_frame {
    u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;   /* pusha */
    u32 vector, error;
    u32 eip, cs, eflags;
};
typedef void (*irq_handler)(struct irq_frame *);

/* Installs all 256 vectors; unhandled exceptions and interrupts fail the test. */
void idt_init(void);
void idt_set_handler(u8 vector, irq_handler h);
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }

/* 8259 pair remapped to vectors base..base+15, all lines masked. */
void pic_init(u8 base);
void pic_unmask(u8 irq);
void pic_eoi(u8 irq);

/* Local APIC (xAPIC MMIO at 0xfee00000). */
#define LAPIC_BASE 0xfee00000u
static inline u32 lapic_read(u32 reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC_BASE + reg, v); }
/* Software-enable the APIC with LINT0 = ExtINT (virtual wire) so 8259 interrupts reach the
   CPU even when no firmware did it (a VMM that boots the kernel directly). */
void lapic_virtual_wire(void);
#endif
