/*
 * poweroff: ACPI soft-off (S5), as an OS shuts down: PM1a_CNT_BLK from the FADT, SLP_TYPa from
 * the DSDT's \_S5 package, then SLP_TYPa << 10 | SLP_EN (bit 13) written to PM1a_CNT.
 *
 * Command line: "[typ=N]" - first writes sleep type N (default 7, a type no \_Sx names) with
 * SLP_EN, which must not stop the machine, then S5. Prints the PM1 registers as found, then
 * "powering off"; the machine must stop there (QEMU exits with status 0, as a powered-off
 * machine does; no isa-debug-exit write happens). Anything after is a failure.
 */
#include "../lib/lib.h"

static u32 rd(const u8 *t, u32 off, u32 size) {
    u32 v = 0;
    for (u32 i = 0; i < size; i++) v |= (u32)t[off + i] << (8 * i);
    return v;
}

/* SLP_TYPa of the DSDT's Name(_S5_, Package() {...}); -1 when absent. */
static int s5_type(const u8 *dsdt) {
    u32 len = ((const struct acpi_sdt *)dsdt)->length;
    for (u32 i = sizeof(struct acpi_sdt); i + 8 < len; i++) {
        if (dsdt[i] != 0x08 || memcmp(dsdt + i + 1, "_S5_", 4) || dsdt[i + 5] != 0x12) continue;
        const u8 *p = dsdt + i + 6;
        p += (p[0] >> 6) + 1;                      /* PkgLength */
        p++;                                       /* NumElements */
        switch (p[0]) {
        case 0x00: return 0;
        case 0x01: return 1;
        case 0x0a: return p[1];
        default: return -1;
        }
    }
    return -1;
}

void kmain(void) {
    test_name = "poweroff";
    const u8 *fadt = (const u8 *)acpi_find_table("FACP");
    if (!fadt) fail("no FADT");
    u16 evt = (u16)rd(fadt, 56, 4), cnt = (u16)rd(fadt, 64, 4);
    const u8 *dsdt = (const u8 *)(uintptr_t)rd(fadt, 40, 4);
    if (!cnt || !dsdt) fail("FADT has no PM1a_CNT_BLK or DSDT");
    int typ = s5_type(dsdt);
    printf("PM1a_EVT %x: status %04x enable %04x; PM1a_CNT %x: %04x\n", evt, inw(evt), inw((u16)(evt + 2)), cnt, inw(cnt));
    if (typ < 0) fail("no \\_S5 in the DSDT");
    printf("\\_S5: SLP_TYPa %u\n", (u32)typ);

    u32 other = (u32)cmdline_uint("typ", 7);
    outw(cnt, (u16)((inw(cnt) & 0x0001) | (other & 7) << 10 | 1u << 13));
    udelay(20000);
    printf("SLP_TYP %u with SLP_EN: still running, PM1a_CNT %04x\n", other, inw(cnt));

    printf("powering off\n");
    outw(cnt, (u16)((inw(cnt) & 0x0001) | (u32)typ << 10 | 1u << 13));
    /* Powered off: nothing below runs. Give the VMM a moment, bounded, then fail. */
    udelay(2000000);
    fail("still running 2 s after the S5 request");
}
