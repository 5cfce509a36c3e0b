/*
 * suspend: ACPI S3 (suspend to RAM) and the resume through the FACS waking vector, as an OS
 * does it: PM1a_EVT/PM1a_CNT and the FACS from the FADT, SLP_TYPa from the DSDT's \_S3
 * package; the real-mode waking code (lib/wake16.S) copied to 0x7000 and the FACS's
 * firmware_waking_vector pointed at it; then SLP_TYPa << 10 | SLP_EN to PM1a_CNT.
 *
 * Command line: "wake=rtc|qmp [in=N]". rtc (default) sets the RTC alarm N seconds ahead (default
 * 3) with AIE and RTC_EN, so the alarm wakes the machine; qmp leaves waking to the host (QMP
 * system_wakeup). The machine must stop at the S3 write; the waking code then prints PM1 status
 * (WAK_STS with RTC_STS, or with PWRBTN_STS for a host wake-up), the CMOS shutdown status
 * (firmware clears it) and whether the word left at 0x8000 survived, and passes.
 */
#include "../lib/lib.h"

extern const u8 wake16_start[], wake16_end[];
extern u16 wake16_pm1_evt;

#define WAKE_CODE 0x7000u

static u32 rd(const u8 *t, u32 off, u32 size) {
    u32 v = 0;
    for (u32 i = 0; i < size; i++) v |= (u32)t[off + i] << (8 * i);
    return v;
}

/* SLP_TYPa of the DSDT's Name(_Sx_, Package() {...}); -1 when absent. */
static int sleep_type(const u8 *dsdt, const char *name) {
    u32 len = ((const struct acpi_sdt *)dsdt)->length;
    for (u32 i = sizeof(struct acpi_sdt); i + 8 < len; i++) {
        if (dsdt[i] != 0x08 || memcmp(dsdt + i + 1, name, 4) || dsdt[i + 5] != 0x12) continue;
        const u8 *p = dsdt + i + 6;
        p += (p[0] >> 6) + 1;
        p++;
        switch (p[0]) {
        case 0x00: return 0;
        case 0x01: return 1;
        case 0x0a: return p[1];
        default: return -1;
        }
    }
    return -1;
}

static u8 cmos_read(u8 index) { outb(0x70, index); return inb(0x71); }
static void cmos_write(u8 index, u8 v) { outb(0x70, index); outb(0x71, v); }
static u32 from_bcd(u8 v, int binary) { return binary ? v : (u32)(v >> 4) * 10 + (v & 15); }
static u8 to_bcd(u32 v, int binary) { return binary ? (u8)v : (u8)((v / 10) << 4 | v % 10); }

static void set_alarm(u32 seconds) {
    while (cmos_read(0x0a) & 0x80) cpu_relax();          /* no update in progress */
    u8 b = cmos_read(0x0b);
    int binary = b & 0x04;
    if (!(b & 0x02)) fail("RTC in 12-hour mode");
    u32 s = from_bcd(cmos_read(0x00), binary), m = from_bcd(cmos_read(0x02), binary), h = from_bcd(cmos_read(0x04), binary);
    u32 t = (h * 3600 + m * 60 + s + seconds) % 86400;
    cmos_write(0x01, to_bcd(t % 60, binary));
    cmos_write(0x03, to_bcd(t / 60 % 60, binary));
    cmos_write(0x05, to_bcd(t / 3600, binary));
    (void)cmos_read(0x0c);                                /* clear pending flags */
    cmos_write(0x0b, b | 0x20);                           /* AIE */
}

void kmain(void) {
    test_name = "suspend";
    const u8 *fadt = (const u8 *)acpi_find_table("FACP");
    if (!fadt) fail("no FADT");
    u16 evt = (u16)rd(fadt, 56, 4), cnt = (u16)rd(fadt, 64, 4);
    u8 *facs = (u8 *)(uintptr_t)rd(fadt, 36, 4);
    const u8 *dsdt = (const u8 *)(uintptr_t)rd(fadt, 40, 4);
    if (!evt || !cnt || !facs || !dsdt) fail("FADT lacks PM1a blocks, FACS or DSDT");
    if (memcmp(facs, "FACS", 4)) fail("no FACS signature");
    int typ = sleep_type(dsdt, "_S3_");
    if (typ < 0) fail("no \\_S3 in the DSDT");
    printf("\\_S3: SLP_TYPa %u; FACS waking vector %x\n", (u32)typ, rd(facs, 12, 4));

    u32 size = (u32)(wake16_end - wake16_start);
    memcpy((void *)WAKE_CODE, wake16_start, size);
    *(u16 *)(WAKE_CODE + (u32)((const u8 *)&wake16_pm1_evt - wake16_start)) = evt;
    *(volatile u32 *)0x8000 = 0x5a17c0de;
    *(u32 *)(facs + 12) = WAKE_CODE;

    int by_rtc = !cmdline_has("wake=qmp");
    if (by_rtc) {
        u32 in = (u32)cmdline_uint("in", 3);
        set_alarm(in);
        outw((u16)(evt + 2), (u16)(inw((u16)(evt + 2)) | 1u << 10));   /* RTC_EN */
        printf("RTC alarm in %u s, RTC_EN set\n", in);
    }
    printf("suspending: SLP_TYP %u\n", (u32)typ);
    outw(cnt, (u16)((inw(cnt) & 0x0001) | (u32)typ << 10 | 1u << 13));
    /* Suspended: nothing below runs; the machine resumes at the waking vector. */
    udelay(10000000);
    fail("still running 10 s after the S3 request");
}
