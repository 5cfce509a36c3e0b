/*
 * elcr: the 8259 edge/level control registers (ELCR, I/O 0x4d0 master, 0x4d1 slave) as the
 * kernel finds them, and what they do.
 *
 * SeaBIOS's PIIX setup (piix_isa_bridge_setup) routes PCI INTA-D to IRQs 10, 10, 11, 11 and
 * marks those IRQs level-triggered: ELCR 0x00 0x0c on QEMU's pc. A VMM without firmware must
 * leave them the same. Prints both registers and the level-triggered IRQs; then (the write
 * masks) writes all ones, prints what reads back (the in-kernel 8259 keeps IRQs 0-2, 8 and 13
 * edge-triggered) and restores them. Then IRQ 10 through pc-testdev and the 8259 (remapped to
 * 0x20, LAPIC LINT0 as ExtINT): raised and lowered while masked in the 8259, then unmasked, an
 * edge-triggered line was latched and is delivered, a level-triggered one is not (IRQ 11,
 * raised after the unmask, is the marker: the 8259 delivers 10 before it); raised while
 * unmasked, it is delivered once (the handler lowers it). Fails only when the 8259's
 * behaviour disagrees with the ELCR.
 */
#include "../lib/lib.h"
#include "../lib/idt.h"

#define LINE 10
static volatile u32 deliveries;

static void handler(struct irq_frame *f) {
    (void)f;
    deliveries++;
    outb(0x2000 + LINE, 0);
    pic_eoi(LINE);
}

/* IRQ 11, lower priority than 10 on the slave: once its handler ran, a pending IRQ 10 has been
   delivered before it. */
#define MARKER 11
static volatile u32 markers;
static void marker(struct irq_frame *f) {
    (void)f;
    markers++;
    outb(0x2000 + MARKER, 0);
    pic_eoi(MARKER);
}

static void ignore(struct irq_frame *f) { (void)f; }

static void window(void) { __asm__ volatile("sti; nop; nop; nop; nop; cli" ::: "memory"); }

void kmain(void) {
    test_name = "elcr";
    u8 m = inb(0x4d0), s = inb(0x4d1);
    printf("elcr 4d0 %02x 4d1 %02x\n", m, s);
    u16 elcr = (u16)(m | s << 8);
    printf("level-triggered IRQs:");
    for (u32 i = 0; i < 16; i++)
        if (elcr & (1u << i)) printf(" %u", i);
    printf("\n");

    outb(0x4d0, 0xff);
    outb(0x4d1, 0xff);
    printf("writable bits: 4d0 %02x 4d1 %02x\n", inb(0x4d0), inb(0x4d1));
    outb(0x4d0, m);
    outb(0x4d1, s);
    if (inb(0x4d0) != m || inb(0x4d1) != s) fail("ELCR not restored: %02x %02x", inb(0x4d0), inb(0x4d1));

    idt_init();
    pic_init(0x20);
    lapic_virtual_wire();
    idt_set_handler(0xff, ignore);
    idt_set_handler(0x27, ignore);
    idt_set_handler(0x2f, ignore);
    idt_set_handler(0x20 + LINE, handler);
    idt_set_handler(0x20 + MARKER, marker);
    if (inb(0x4d0) != m || inb(0x4d1) != s) fail("8259 initialisation changed the ELCR: %02x %02x", inb(0x4d0), inb(0x4d1));
    outb(0x2000 + LINE, 0);
    outb(0x2000 + LINE, 1);                        /* raised and lowered while masked */
    outb(0x2000 + LINE, 0);
    pic_unmask(LINE);
    pic_unmask(MARKER);
    outb(0x2000 + MARKER, 0);
    outb(0x2000 + MARKER, 1);
    sti();
    for (u64 t0 = rdtsc(); !markers && rdtsc() - t0 < HANG_GUARD_CYCLES; ) cpu_relax();
    cli();
    if (!markers) fail("IRQ %u (the marker) never delivered", MARKER);
    u32 latched = deliveries;
    printf("IRQ %u raised and lowered while masked in the 8259: %u deliveries at unmask\n", LINE, latched);
    int level = (elcr >> LINE) & 1;
    if (level && latched != 0) fail("IRQ %u is level-triggered in the ELCR but a pulse was latched", LINE);
    if (!level && latched != 1) fail("IRQ %u is edge-triggered in the ELCR but a pulse was not latched", LINE);
    outb(0x2000 + LINE, 1);
    sti();
    for (u64 t0 = rdtsc(); deliveries == latched && rdtsc() - t0 < HANG_GUARD_CYCLES; ) cpu_relax();
    cli();
    for (int i = 0; i < 8; i++) window();
    printf("IRQ %u raised while unmasked: %u deliveries\n", LINE, deliveries - latched);
    if (deliveries - latched != 1) fail("IRQ %u raised once, delivered %u times", LINE, deliveries - latched);
    pass();
}
