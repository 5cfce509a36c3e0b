/*
 * acpi: the firmware's ACPI tables and the PM timer they point to.
 *
 * Finds the RSDP in 0xe0000-0xfffff, validates the checksums of the RSDP (and its extended
 * part when revision >= 2), the RSDT (and XSDT if present), every table the RSDT lists and the
 * DSDT and FACS the FADT points to, printing their signatures. Then prints what a guest relies
 * on, one field per line so a comparison with QEMU can name each difference: the table set in
 * RSDT order, the FADT's fixed-hardware fields (those inside its length), the MADT's entries,
 * the DSDT's \_S5 package (SLP_TYPa/b for soft-off) and the HPET table's fields when present.
 * Then reads PM_TMR_BLK from the FADT (PM_TMR_LEN must be 4) and checks the 24-bit PM timer at
 * that port advances, prints PM1 status TMR_STS after clearing it and after the timer's bit 23
 * next changes (up to ~2.4 s), and for information the TSC rate measured against the timer
 * over 50 ms (3.579545 MHz ticks).
 */
#include "../lib/lib.h"

static void check_table(const char *what, u32 addr) {
    struct acpi_sdt *t = (struct acpi_sdt *)(uintptr_t)addr;
    char sig[5] = {t->sig[0], t->sig[1], t->sig[2], t->sig[3], 0};
    char oem[7] = {0};
    memcpy(oem, t->oem_id, 6);
    printf("%s %s at %08x len %u rev %u oem \"%s\"\n", what, sig, addr, t->length, t->revision, oem);
    if (t->length < sizeof *t || t->length > 0x100000) fail("%s length %u", sig, t->length);
    if (acpi_sum(t, t->length)) fail("%s checksum bad (sum %02x)", sig, acpi_sum(t, t->length));
}

static u32 rd(const u8 *t, u32 off, u32 size) {
    u32 v = 0;
    for (u32 i = 0; i < size; i++) v |= (u32)t[off + i] << (8 * i);
    return v;
}

/* One FADT field per line, only when the table is long enough to hold it. */
static void fadt_field(const u8 *t, u32 len, const char *name, u32 off, u32 size) {
    if (off + size <= len) printf("FADT %s %x\n", name, rd(t, off, size));
}

static void print_fadt(const u8 *t) {
    u32 len = ((const struct acpi_sdt *)t)->length;
    fadt_field(t, len, "SCI_INT", 46, 2);
    fadt_field(t, len, "SMI_CMD", 48, 4);
    fadt_field(t, len, "ACPI_ENABLE", 52, 1);
    fadt_field(t, len, "ACPI_DISABLE", 53, 1);
    fadt_field(t, len, "PM1a_EVT_BLK", 56, 4);
    fadt_field(t, len, "PM1b_EVT_BLK", 60, 4);
    fadt_field(t, len, "PM1a_CNT_BLK", 64, 4);
    fadt_field(t, len, "PM1b_CNT_BLK", 68, 4);
    fadt_field(t, len, "PM2_CNT_BLK", 72, 4);
    fadt_field(t, len, "PM_TMR_BLK", 76, 4);
    fadt_field(t, len, "GPE0_BLK", 80, 4);
    fadt_field(t, len, "GPE1_BLK", 84, 4);
    fadt_field(t, len, "PM1_EVT_LEN", 88, 1);
    fadt_field(t, len, "PM1_CNT_LEN", 89, 1);
    fadt_field(t, len, "PM_TMR_LEN", 91, 1);
    fadt_field(t, len, "GPE0_BLK_LEN", 92, 1);
    fadt_field(t, len, "P_LVL2_LAT", 96, 2);
    fadt_field(t, len, "P_LVL3_LAT", 98, 2);
    fadt_field(t, len, "DAY_ALRM", 106, 1);
    fadt_field(t, len, "MON_ALRM", 107, 1);
    fadt_field(t, len, "CENTURY", 108, 1);
    fadt_field(t, len, "IAPC_BOOT_ARCH", 109, 2);
    fadt_field(t, len, "Flags", 112, 4);
    if (len >= 129) {   /* RESET_REG (generic address) and RESET_VALUE, FADT revision 2 and later */
        printf("FADT RESET_REG space %u width %u address %x value %x\n", t[116], t[117], rd(t, 120, 4), t[128]);
    }
}

static void print_madt(const u8 *t) {
    u32 len = ((const struct acpi_sdt *)t)->length;
    printf("MADT local APIC address %x flags %x\n", rd(t, 36, 4), rd(t, 40, 4));
    for (u32 off = 44; off + 2 <= len && t[off + 1] >= 2 && off + t[off + 1] <= len; off += t[off + 1]) {
        const u8 *p = t + off;
        switch (p[0]) {
        case 0: printf("MADT processor uid %u apic id %u flags %x\n", p[2], p[3], rd(p, 4, 4)); break;
        case 1: printf("MADT ioapic id %u address %x gsi base %u\n", p[2], rd(p, 4, 4), rd(p, 8, 4)); break;
        case 2: printf("MADT override bus %u irq %u gsi %u flags %x\n", p[2], p[3], rd(p, 4, 4), rd(p, 8, 2)); break;
        case 4: printf("MADT local NMI uid %x flags %x lint %u\n", p[2], rd(p, 3, 2), p[5]); break;
        default: printf("MADT entry type %u length %u\n", p[0], p[1]); break;
        }
    }
}

/* An AML integer at p (ZeroOp, OneOp, BytePrefix, WordPrefix); returns its length or 0. */
static u32 aml_int(const u8 *p, u32 *v) {
    switch (p[0]) {
    case 0x00: *v = 0; return 1;
    case 0x01: *v = 1; return 1;
    case 0x0a: *v = p[1]; return 2;
    case 0x0b: *v = rd(p, 1, 2); return 3;
    default: return 0;
    }
}

/* The DSDT's Name(_S5_, Package() { SLP_TYPa, SLP_TYPb, ... }): the soft-off sleep types. */
static void print_s5(const u8 *t) {
    u32 len = ((const struct acpi_sdt *)t)->length;
    for (u32 i = sizeof(struct acpi_sdt); i + 8 < len; i++) {
        if (t[i] != 0x08 || memcmp(t + i + 1, "_S5_", 4) || t[i + 5] != 0x12) continue;
        const u8 *p = t + i + 6;
        u32 pkglen_bytes = (p[0] >> 6) + 1;
        p += pkglen_bytes;
        u32 count = p[0], a = 0, b = 0, la, lb;
        p++;
        if (count >= 2 && (la = aml_int(p, &a)) && (lb = aml_int(p + la, &b))) {
            printf("DSDT \\_S5 elements %u SLP_TYPa %u SLP_TYPb %u\n", count, a, b);
            return;
        }
        printf("DSDT \\_S5 package not understood\n");
        return;
    }
    printf("DSDT has no \\_S5\n");
}

static void print_hpet(const u8 *t) {
    printf("HPET event timer block id %x\n", rd(t, 36, 4));
    printf("HPET base space %u address %x\n", t[40], rd(t, 44, 4));
    printf("HPET number %u min tick %u page protection %x\n", t[52], rd(t, 53, 2), t[55]);
}

void kmain(void) {
    test_name = "acpi";
    struct acpi_rsdp *r = acpi_find_rsdp();
    if (!r) fail("no RSDP in 0xe0000-0xfffff");
    char oem[7] = {0};
    memcpy(oem, r->oem_id, 6);
    printf("RSDP at %08x rev %u oem \"%s\" rsdt %08x\n", (u32)(uintptr_t)r, r->revision, oem, r->rsdt);
    if (r->revision >= 2) {
        if (acpi_sum(r, r->length)) fail("RSDP extended checksum bad");
        printf("XSDT at %llx\n", r->xsdt);
        if (r->xsdt >> 32) fail("XSDT above 4 GiB");
        if (r->xsdt) check_table("XSDT", (u32)r->xsdt);
    }
    if (!r->rsdt) fail("RSDT address 0");
    check_table("RSDT", r->rsdt);
    struct acpi_sdt *rsdt = (struct acpi_sdt *)(uintptr_t)r->rsdt;
    if (memcmp(rsdt->sig, "RSDT", 4)) fail("RSDT signature wrong");
    u32 n = (rsdt->length - sizeof *rsdt) / 4;
    u32 *e = (u32 *)(rsdt + 1);
    int have_fadt = 0;
    for (u32 i = 0; i < n; i++) {
        check_table("  table", e[i]);
        struct acpi_sdt *t = (struct acpi_sdt *)(uintptr_t)e[i];
        if (!memcmp(t->sig, "FACP", 4)) {
            have_fadt = 1;
            u32 facs = *(u32 *)((u8 *)t + 36), dsdt = *(u32 *)((u8 *)t + 40);
            if (dsdt) check_table("    DSDT", dsdt);
            if (facs) {
                /* The FACS has no checksum: check its signature and length only. */
                u32 *f = (u32 *)(uintptr_t)facs;
                printf("    FACS at %08x len %u\n", facs, f[1]);
                if (memcmp(f, "FACS", 4)) fail("FACS signature wrong");
            }
        }
    }
    if (!have_fadt) fail("no FADT (FACP) in the RSDT");

    /* What a guest relies on, one field per line. */
    printf("tables:");
    for (u32 i = 0; i < n; i++) {
        struct acpi_sdt *t = (struct acpi_sdt *)(uintptr_t)e[i];
        printf(" %c%c%c%c", t->sig[0], t->sig[1], t->sig[2], t->sig[3]);
    }
    printf("\n");
    for (u32 i = 0; i < n; i++) {
        const u8 *t = (const u8 *)(uintptr_t)e[i];
        if (!memcmp(t, "FACP", 4)) {
            print_fadt(t);
            u32 dsdt = rd(t, 40, 4);
            if (dsdt) print_s5((const u8 *)(uintptr_t)dsdt);
        } else if (!memcmp(t, "APIC", 4)) {
            print_madt(t);
        } else if (!memcmp(t, "HPET", 4)) {
            print_hpet(t);
        }
    }

    u16 port = acpi_pm_timer_port();
    struct acpi_sdt *fadt = acpi_find_table("FACP");
    u8 tmr_len = *((u8 *)fadt + 91);
    printf("PM_TMR_BLK %x (PM_TMR_LEN %u)\n", port, tmr_len);
    if (!port) fail("FADT has no PM timer");
    if (tmr_len != 4) fail("PM_TMR_LEN %u, want 4", tmr_len);

    /* The counter must move, and stay within 24 bits. */
    u32 first = inl(port), prev = first & 0xffffff, moved = 0, total = 0;
    if (first >> 24) printf("note: bits 31:24 read %x (FADT TMR_VAL_EXT may say 32-bit)\n", first >> 24);
    for (u32 i = 0; i < 100000 && total < 100000; i++) {
        u32 now = pm_timer_read(port);
        if (now != prev) moved++;
        total += (now - prev) & 0xffffff;
        prev = now;
    }
    printf("PM timer advanced %u ticks, changed on %u reads\n", total, moved);
    if (!moved || total == 0) fail("PM timer does not advance");
    /* PM1 status TMR_STS (bit 0): set whenever the timer's bit 23 changes (every 2^23 ticks,
       ~2.34 s). Cleared by writing 1, then watched across one change of bit 23. */
    u16 evt = (u16)*(u32 *)((u8 *)fadt + 56);
    outw(evt, 1);
    u16 cleared = inw(evt) & 1;
    u32 start = pm_timer_read(port), bit23 = start >> 23;
    for (u32 waited = 0; (pm_timer_read(port) >> 23) == bit23 && waited <= (1u << 23) + PM_TIMER_HZ / 10; )
        waited = (pm_timer_read(port) - start) & 0xffffff;
    printf("PM1 TMR_STS %u after clearing, %u after timer bit 23 changed\n", cleared, inw(evt) & 1);
    /* Against the TSC, for information: tick rate should be 3579545 Hz. */
    u32 t0 = pm_timer_read(port);
    u64 c0 = rdtsc_ordered();
    u32 ticks = 0;
    while (ticks < PM_TIMER_HZ / 20) ticks = (pm_timer_read(port) - t0) & 0xffffff;   /* 50 ms */
    u64 c1 = rdtsc_ordered();
    printf("TSC: %u kHz measured against the PM timer\n", (u32)((c1 - c0) * PM_TIMER_HZ / ticks / 1000));
    pass();
}
