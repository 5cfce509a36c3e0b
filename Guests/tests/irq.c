/*
 * irq: an ISA interrupt raised through pc-testdev reaches a handler.
 *
 * Command line: "[irq=N] [mode=pic|ioapic] [count=R] [level]" (defaults irq=10, mode=pic,
 * count=10).
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
 * Each of R rounds raises the line once and waits (hang guard only) for the handler to have
 * run; passes when the handler ran exactly R times.
 *
 * level (mode=ioapic on a level-triggered line): the semantics of a level-triggered
 * redirection entry. (1) The handler leaves the line high across two EOIs and lowers it on the
 * third delivery: exactly three deliveries per raise, then nothing pending (LAPIC IRR clear,
 * Remote IRR clear). (2) Raised and lowered while the entry is masked, then unmasked: not
 * delivered. (3) Raised while masked, then unmasked: delivered once, at the unmask.
 *
 * More deliveries than raises fail with "FAIL irq: extra delivery: ..." (fewer, with another
 * message). This host's KVM (kvm_pvm) now and then delivers a level-triggered IOAPIC vector
 * twice for one raise, under QEMU as under vmm (seen while the host is loaded; inside the
 * handler the LAPIC shows the vector still in IRR and not in ISR, i.e. KVM injected it before
 * acknowledging it): the tests record that signature as a known host issue.
 */
#include "../lib/lib.h"
#include "../lib/idt.h"

#define IOAPIC 0xfec00000u
static volatile u32 hits, this_round, hold = 1;
static u8 line, vector;
static int use_ioapic;

static void ioapic_write(u32 reg, u32 v) { mmio_write32(IOAPIC, reg); mmio_write32(IOAPIC + 0x10, v); }
static u32 ioapic_read(u32 reg) { mmio_write32(IOAPIC, reg); return mmio_read32(IOAPIC + 0x10); }

/* The vector's bit in the LAPIC register bank at `base` (ISR 0x100, TMR 0x180, IRR 0x200). */
static int lapic_bit(u32 base, u8 v) { return (lapic_read(base + 0x10 * (v / 32)) >> (v % 32)) & 1; }

static void handler(struct irq_frame *f) {
    (void)f;
    hits++;
    /* Lower the line before EOI on the hold-th delivery of this raise (level-triggered safe);
       before that, EOI with the line still high. */
    if (++this_round >= hold) outb((u16)(0x2000 + line), 0);
    if (use_ioapic) lapic_write(0xb0, 0);
    else pic_eoi(line);
}

static void ignore(struct irq_frame *f) { (void)f; }

static u32 rte_low(u32 gsi) { return ioapic_read(0x10 + 2 * gsi); }

/* Fails when the handler ran more often than `want`. */
static void expect_at_most(u32 want, const char *what) {
    if (hits > want) { cli(); fail("extra delivery: handler ran %u times, %u expected (%s)", hits, want, what); }
}

/* Nothing pending for the vector: LAPIC IRR clear, the entry's Remote IRR (bit 14) clear. */
static void expect_idle(const char *what, u32 gsi) {
    if (lapic_bit(0x200, vector)) fail("%s: vector %x still pending in the LAPIC IRR", what, vector);
    if (rte_low(gsi) & (1u << 14)) fail("%s: Remote IRR still set (entry %x)", what, rte_low(gsi));
}

/* Lets any pending interrupt be taken: an interrupt window of a few instructions. */
static void window(void) { __asm__ volatile("sti; nop; nop; nop; nop; cli" ::: "memory"); }

static void level_semantics(u32 gsi, int level, u32 rounds) {
    if (!use_ioapic || !level) fail("level needs mode=ioapic on a level-triggered line (irq %u is not)", line);
    /* (1) Left high across two EOIs: delivered again after each, lowered on the third. */
    hold = 3;
    for (u32 r = 0; r < rounds; r++) {
        this_round = 0;
        outb((u16)(0x2000 + line), 1);
        sti();
        for (u64 t0 = rdtsc(); this_round < hold && rdtsc() - t0 < HANG_GUARD_CYCLES; ) cpu_relax();
        cli();
        window();
        expect_at_most(rounds + (r + 1) * hold, "line held high across 2 EOIs");
        if (this_round != hold) fail("line held high across %u EOIs: %u deliveries in round %u", hold - 1, this_round, r);
        expect_idle("after the line was lowered", gsi);
    }
    printf("level: line left high across 2 EOIs: 3 deliveries per raise in %u rounds, none after lowering\n", rounds);
    /* (2) Raised and lowered while masked: nothing when unmasked. */
    hold = 1;
    u32 entry = rte_low(gsi), before = hits;
    ioapic_write(0x10 + 2 * gsi, entry | (1u << 16));
    outb((u16)(0x2000 + line), 1);
    outb((u16)(0x2000 + line), 0);
    ioapic_write(0x10 + 2 * gsi, entry);
    window();
    expect_at_most(before, "a line lowered while masked, then unmasked");
    expect_idle("raised and lowered while masked", gsi);
    printf("level: raised and lowered while masked: not delivered at unmask\n");
    /* (3) Raised while masked: delivered once at unmask. */
    this_round = 0;
    ioapic_write(0x10 + 2 * gsi, entry | (1u << 16));
    outb((u16)(0x2000 + line), 1);
    window();
    expect_at_most(before, "a masked line");
    ioapic_write(0x10 + 2 * gsi, entry);
    sti();
    for (u64 t0 = rdtsc(); hits == before && rdtsc() - t0 < HANG_GUARD_CYCLES; ) cpu_relax();
    cli();
    window();
    expect_at_most(before + 1, "a line raised while masked, then unmasked");
    if (hits != before + 1) fail("a line raised while masked: not delivered at unmask");
    expect_idle("raised while masked", gsi);
    printf("level: raised while masked: delivered once at unmask\n");
}

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
    int level = 0;
    u32 gsi = line;
    if (use_ioapic) {
        outb(0x21, 0xff); outb(0xa1, 0xff);    /* 8259 silent */
        u32 ver = ioapic_read(1);
        printf("ioapic version %x, %u entries\n", ver & 0xff, ((ver >> 16) & 0xff) + 1);
        vector = (u8)(0x40 + line);
        u32 flags = 0;
        struct acpi_sdt *madt = acpi_find_table("APIC");
        for (u8 *p = madt ? (u8 *)madt + 44 : NULL; p && p < (u8 *)madt + madt->length && p[1]; p += p[1])
            if (p[0] == 2 && p[3] == line) { gsi = *(u32 *)(p + 4); flags = *(u16 *)(p + 8); }
        level = (flags & 0xc) == 0xc;
        int low = (flags & 3) == 3;
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
        this_round = 0;
        outb((u16)(0x2000 + line), 1);
        for (u64 t0 = rdtsc(); hits == before && rdtsc() - t0 < HANG_GUARD_CYCLES; ) cpu_relax();
        if (hits == before) { cli(); fail("no interrupt in round %u (line %u, vector %x)", r, line, vector); }
        expect_at_most(r + 1, "one raise per round");
    }
    cli();
    window();
    expect_at_most(rounds, "one raise per round");
    printf("handler ran %u times\n", hits);
    if (cmdline_has("level")) level_semantics(gsi, level, rounds);
    pass();
}
