/*
 * acpi: the firmware's ACPI tables and the PM timer they point to.
 *
 * Finds the RSDP in 0xe0000-0xfffff, validates the checksums of the RSDP (and its extended
 * part when revision >= 2), the RSDT (and XSDT if present), every table the RSDT lists and the
 * DSDT and FACS the FADT points to, printing their signatures. Then reads PM_TMR_BLK from the
 * FADT (PM_TMR_LEN must be 4) and checks the 24-bit PM timer at that port advances; for
 * information it prints the TSC rate measured against it over 50 ms (3.579545 MHz ticks).
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
    /* Against the TSC, for information: tick rate should be 3579545 Hz. */
    u32 t0 = pm_timer_read(port);
    u64 c0 = rdtsc_ordered();
    u32 ticks = 0;
    while (ticks < PM_TIMER_HZ / 20) ticks = (pm_timer_read(port) - t0) & 0xffffff;   /* 50 ms */
    u64 c1 = rdtsc_ordered();
    printf("TSC: %u kHz measured against the PM timer\n", (u32)((c1 - c0) * PM_TIMER_HZ / ticks / 1000));
    pass();
}
