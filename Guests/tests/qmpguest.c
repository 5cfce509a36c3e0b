/*
 * qmpguest: a guest for driving the VMM through QMP. It ticks on COM1 ("tick N", N counting
 * up without gaps) so a client can stop and continue it and check that nothing was lost or
 * repeated, and it waits for the ACPI power button: PM1_EN.PWRBTN_EN is set, the SCI (ISA
 * IRQ 9, routed through the IOAPIC as the MADT's override says: level, active high) has a
 * handler, and when QMP system_powerdown presses the button the handler sees PM1_STS.PWRBTN_STS,
 * clears it, and the guest powers off through ACPI S5 (SHUTDOWN, guest-shutdown).
 *
 * Command line: "[ticks=N]" stops ticking (and powers off) after N ticks without a button.
 */
#include "../lib/lib.h"
#include "../lib/idt.h"

#define IOAPIC 0xfec00000u
#define PM1_STS 0x600
#define PM1_EN 0x602
#define PM1_CNT 0x604
#define PWRBTN (1u << 8)

static volatile u32 sci_hits, button;

static void ioapic_write(u32 reg, u32 v) { mmio_write32(IOAPIC, reg); mmio_write32(IOAPIC + 0x10, v); }

static void sci(struct irq_frame *f) {
    (void)f;
    sci_hits++;
    u16 sts = inw(PM1_STS);
    if (sts & PWRBTN) {
        button = 1;
        outw(PM1_STS, PWRBTN);                 /* write 1 to clear: the SCI drops */
    }
    lapic_write(0xb0, 0);
}

static void ignore(struct irq_frame *f) { (void)f; }

static void __attribute__((noreturn)) power_off(void) {
    outw(PM1_CNT, (u16)(inw(PM1_CNT) | (1u << 13)));   /* SLP_TYP 0 (\_S5), SLP_EN */
    for (;;) __asm__ volatile("cli; hlt");
}

void kmain(void) {
    test_name = "qmpguest";
    u32 limit = (u32)cmdline_uint("ticks", 0);
    idt_init();
    pic_init(0x20);
    outb(0x21, 0xff); outb(0xa1, 0xff);
    lapic_virtual_wire();
    idt_set_handler(0xff, ignore);
    idt_set_handler(0x27, ignore);
    idt_set_handler(0x2f, ignore);
    u32 gsi = 9, flags = 0;
    struct acpi_sdt *madt = acpi_find_table("APIC");
    for (u8 *p = madt ? (u8 *)madt + 44 : NULL; p && p < (u8 *)madt + madt->length && p[1]; p += p[1])
        if (p[0] == 2 && p[3] == 9) { gsi = *(u32 *)(p + 4); flags = *(u16 *)(p + 8); }
    int level = (flags & 0xc) == 0xc, low = (flags & 3) == 3;
    idt_set_handler(0x49, sci);
    ioapic_write(0x10 + 2 * gsi + 1, (lapic_read(0x20) >> 24) << 24);
    ioapic_write(0x10 + 2 * gsi, 0x49 | (low ? 1u << 13 : 0) | (level ? 1u << 15 : 0));
    outw(PM1_STS, 0xffff);
    outw(PM1_EN, PWRBTN);
    printf("qmpguest: SCI on gsi %u (%s), PWRBTN_EN set\n", gsi, level ? "level" : "edge");
    sti();
    for (u32 n = 0; !button && (limit == 0 || n < limit); n++) {
        printf("tick %u\n", n);
        udelay(20000);
    }
    cli();
    if (button) printf("qmpguest: power button (SCI %u), powering off\n", sci_hits);
    else printf("qmpguest: %u ticks, powering off\n", limit);
    power_off();
}
