#include "idt.h"

struct idt_entry { u16 off_lo, sel; u8 zero, type; u16 off_hi; } __attribute__((packed));
static struct idt_entry idt[256] __attribute__((aligned(8)));
static irq_handler handlers[256];
extern const u32 isr_stubs[256];

void idt_init(void) {
    for (int v = 0; v < 256; v++) {
        u32 a = isr_stubs[v];
        idt[v] = (struct idt_entry){ (u16)a, 0x08, 0, 0x8e /* present, ring 0, 32-bit interrupt gate */, (u16)(a >> 16) };
    }
    struct { u16 limit; u32 base; } __attribute__((packed)) d = { sizeof idt - 1, (u32)idt };
    __asm__ volatile("lidt %0" :: "m"(d));
}

void idt_set_handler(u8 vector, irq_handler h) { handlers[vector] = h; }

void isr_dispatch(struct irq_frame *f) {
    if (handlers[f->vector]) { handlers[f->vector](f); return; }
    fail("unexpected %s %u (error %x) at eip %x", f->vector < 32 ? "exception" : "interrupt",
         f->vector, f->error, f->eip);
}

#define PIC1 0x20
#define PIC2 0xa0
static u8 pic_base;

void pic_init(u8 base) {
    pic_base = base;
    outb(PIC1, 0x11); outb(PIC2, 0x11);          /* ICW1: edge (ELCR may override), cascade, ICW4 */
    outb(PIC1 + 1, base); outb(PIC2 + 1, (u8)(base + 8));  /* ICW2: vector bases */
    outb(PIC1 + 1, 0x04); outb(PIC2 + 1, 0x02);  /* ICW3: slave on IRQ2 */
    outb(PIC1 + 1, 0x01); outb(PIC2 + 1, 0x01);  /* ICW4: 8086 mode */
    outb(PIC1 + 1, 0xfb); outb(PIC2 + 1, 0xff);  /* mask all but the cascade */
}

void pic_unmask(u8 irq) {
    u16 port = irq < 8 ? PIC1 + 1 : PIC2 + 1;
    outb(port, (u8)(inb(port) & ~(1u << (irq & 7))));
}

void pic_eoi(u8 irq) {
    if (irq >= 8) outb(PIC2, 0x20);
    outb(PIC1, 0x20);
}

void lapic_virtual_wire(void) {
    lapic_write(0xf0, lapic_read(0xf0) | 0x100 | 0xff);  /* SVR: enable, spurious vector 0xff */
    lapic_write(0x350, 0x700);                           /* LVT LINT0: ExtINT, unmasked */
    lapic_write(0x360, 0x400);                           /* LVT LINT1: NMI */
}
