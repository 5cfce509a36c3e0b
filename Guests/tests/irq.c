/*
 * irq: an ISA interrupt raised through pc-testdev reaches a handler.
 *
 * Command line: "[irq=N] [mode=pic|ioapic] [count=R]" (defaults irq=10, mode=pic, count=10).
 *
 * Writing V to I/O port 0x2000+N makes pc-testdev raise (V != 0) or lower (V == 0) ISA IRQ
 * line N. Line 10 is free on QEMU's pc with -nodefaults (nothing else drives it: the serial
 * port is 4, the ACPI SCI 9, IDE 14/15, and pci-testdev has no INTx pin). SeaBIOS marks 10 and
 * 11 level-triggered in the ELCR for PCI; the handler therefore lowers the line before the EOI,
 * which is right for edge mode too. Lines 16 and above abort QEMU 7.2 and must not be used.
 *
 * mode=pic: the 8259 pair remapped to vectors 0x20-0x2f, delivered through LAPIC LINT0 set to
 * ExtINT by the kernel itself (no reliance on firmware having left virtual-wire mode on).
 * mode=ioapic: the 8259 fully masked, IOAPIC (0xfec00000) redirection entry for the line's GSI
 * (ISA IRQs map 1:1 unless the MADT has an interrupt source override: QEMU's pc overrides IRQ0
 * to GSI 2 and marks 5, 9, 10, 11 level-triggered active high) to vector 0x40+N, with the
 * override's trigger mode and polarity (ISA default: edge, active high), physical destination
 * this CPU; EOI goes to the local APIC.
 *
 * Each of R rounds raises the line once and waits (bounded) for the handler to have run;
 * passes when the handler ran exactly R times.
 */
#include "../lib/lib.h"
#include "../lib/idt.h"

#define IOAPIC 0xfec00000u
static volatile u32 hits;
static u8 line;
static int use_ioapic;

static void ioapic_write(u32 reg, u32 v) { mmio_write32(IOAPIC, reg); mmio_write32(IOAPIC + 0x10, v); }
static u32 ioapic_read(u32 reg) { mmio_write32(IOAPIC, reg); return mmio_read32(IOAPIC + 0x10); }

static void handler(struct irq_frame *f) {
    (void)f;
    hits++;
    outb((u16)(0x2000 + line), 0);    /* lower the line before EOI (level-triggered safe) */
    if (use_ioapic) lapic_write(0xb0, 0);
    else pic_eoi(line);
}

static void ignore(struct irq_frame *f) { (void)f; }

void kmain(void) {
    test_name = "irq";
    line = (u8)cmdline_uint("irq", 10);
    u32 rounds = (u32)cmdline_uint("count", 10);
    for (const char *c = cmdline(); *c; c++)
        if (!strncmp(c, " mode=ioapic", 12)) use_ioapic = 1;
    if (line >= 16 || line == 0 || line == 2) fail("irq=%u: choose an ISA line 1-15 other than 2", line);
    printf("irq line %u via %s, %u rounds\n", line, use_ioapic ? "ioapic" : "pic", rounds);

    idt_init();
    pic_init(0x20);
    lapic_virtual_wire();
    idt_set_handler(0xff, ignore);             /* LAPIC spurious */
    idt_set_handler(0x27, ignore);             /* 8259 spurious IRQ7 */
    idt_set_handler(0x2f, ignore);             /* 8259 spurious IRQ15 */
    u8 vector;
    if (use_ioapic) {
        outb(0x21, 0xff); outb(0xa1, 0xff);    /* 8259 silent */
        u32 ver = ioapic_read(1);
        printf("ioapic version %x, %u entries\n", ver & 0xff, ((ver >> 16) & 0xff) + 1);
        vector = (u8)(0x40 + line);
        u32 gsi = line, flags = 0;
        struct acpi_sdt *madt = acpi_find_table("APIC");
        for (u8 *p = madt ? (u8 *)madt + 44 : NULL; p && p < (u8 *)madt + madt->length && p[1]; p += p[1])
            if (p[0] == 2 && p[3] == line) { gsi = *(u32 *)(p + 4); flags = *(u16 *)(p + 8); }
        int level = (flags & 0xc) == 0xc, low = (flags & 3) == 3;
        printf("ISA irq %u -> gsi %u, %s-triggered, active %s\n", line, gsi, level ? "level" : "edge", low ? "low" : "high");
        ioapic_write(0x10 + 2 * gsi + 1, (lapic_read(0x20) >> 24) << 24);   /* destination: this CPU */
        /* fixed delivery, physical destination, unmasked */
        ioapic_write(0x10 + 2 * gsi, vector | (low ? 1u << 13 : 0) | (level ? 1u << 15 : 0));
    } else {
        vector = (u8)(0x20 + line);
        pic_unmask(line);
    }
    idt_set_handler(vector, handler);
    outb((u16)(0x2000 + line), 0);             /* start from a low line */
    sti();
    for (u32 r = 0; r < rounds; r++) {
        u32 before = hits;
        outb((u16)(0x2000 + line), 1);
        for (u32 spin = 0; hits == before && spin < 10000000; spin++) cpu_relax();
        if (hits == before) { cli(); fail("no interrupt in round %u (line %u, vector %x)", r, line, vector); }
    }
    cli();
    printf("handler ran %u times\n", hits);
    if (hits != rounds) fail("handler ran %u times for %u raises", hits, rounds);
    pass();
}
