/*
 * bench (64-bit long mode): the cost of each pci-testdev write path.
 *
 * Command line: "[writes=N]" (default 100000). For each of the six pci-testdev tests it starts
 * the test (writing t at offset 0 of the BAR), reads `offset` and `data` from the header, does
 * a few warm-up writes, then times N byte writes of `data` at `offset` with RDTSC (LFENCE-
 * ordered) and prints exactly `path=NAME cycles=C` with C the integer TSC cycles per write.
 * MMIO writes go through BAR0 at its physical address (identity mapped by start64.S: SeaBIOS
 * assigns the 32-bit BAR below 4 GiB); port writes are OUTB to BAR1.
 * Each test's count is then checked as in pcitestdev (N + warm-up for no-eventfd, 0 for the
 * eventfd paths) so a number measured on the wrong path cannot pass unnoticed.
 *
 * Finally `tsc_khz=K source=S`: S is "cpuid15" (CPUID 0x15 crystal ratio), "cpuid16" (CPUID
 * 0x16 base MHz), "hv40000010" (hypervisor timing leaf, TSC kHz in EAX) when those report a
 * value, else "pmtimer": TSC ticks over 100 ms of the ACPI PM timer (3.579545 MHz, port from
 * the FADT, 0x608 when there are no ACPI tables). Then "PASS bench" and exit 0.
 */
#include "../lib/lib.h"

#define WARMUP 16

static uintptr_t mmio;
static u16 pio;

static u8 rd8(int type, u32 off) { return type ? inb((u16)(pio + off)) : mmio_read8(mmio + off); }
static u32 rd32(int type, u32 off) {
    u32 v = 0;
    for (u32 i = 0; i < 4; i++) v |= (u32)rd8(type, off + i) << (8 * i);
    return v;
}
static void wr8(int type, u32 off, u8 v) {
    if (type) outb((u16)(pio + off), v);
    else mmio_write8(mmio + off, v);
}

/* Times n writes; the loops are separate so each is as tight as possible. */
static u64 time_mmio(volatile u8 *p, u8 v, u32 n) {
    u64 t0 = rdtsc_ordered();
    for (u32 i = 0; i < n; i++) *p = v;
    return rdtsc_ordered() - t0;
}
static u64 time_pio(u16 port, u8 v, u32 n) {
    u64 t0 = rdtsc_ordered();
    for (u32 i = 0; i < n; i++) outb(port, v);
    return rdtsc_ordered() - t0;
}

static u32 tsc_khz(const char **source) {
    u32 a, b, c, d, max;
    cpuid(0, 0, &max, &b, &c, &d);
    if (max >= 0x15) {
        cpuid(0x15, 0, &a, &b, &c, &d);   /* TSC = crystal (ECX Hz) * EBX / EAX */
        if (a && b && c) { *source = "cpuid15"; return (u32)((u64)c * b / a / 1000); }
    }
    if (max >= 0x16) {
        cpuid(0x16, 0, &a, &b, &c, &d);   /* EAX = base frequency in MHz */
        if (a) { *source = "cpuid16"; return a * 1000; }
    }
    cpuid(1, 0, &a, &b, &c, &d);
    if (c & (1u << 31)) {                 /* hypervisor present */
        cpuid(0x40000000, 0, &max, &b, &c, &d);
        if (max >= 0x40000010 && max < 0x40000100) {
            cpuid(0x40000010, 0, &a, &b, &c, &d);
            if (a) { *source = "hv40000010"; return a; }
        }
    }
    u16 port = acpi_pm_timer_port();
    if (!port) port = 0x608;
    *source = "pmtimer";
    const u32 window = PM_TIMER_HZ / 10;  /* 100 ms */
    u32 start = pm_timer_read(port), now;
    while ((now = pm_timer_read(port)) == start) cpu_relax();   /* align to a tick edge */
    u64 c0 = rdtsc_ordered();
    u32 ticks;
    do ticks = (pm_timer_read(port) - now) & 0xffffff; while (ticks < window);
    u64 c1 = rdtsc_ordered();
    return (u32)((c1 - c0) * PM_TIMER_HZ / ticks / 1000);
}

void kmain(void) {
    serial_init();
    test_name = "bench";
    u32 n = (u32)cmdline_uint("writes", 100000);
    if (!n) fail("writes=0");
    int bdf = pci_find(0x1b36, 0x0005);
    if (bdf < 0) fail("pci-testdev not found");
    u32 bar0 = pci_read32((u32)bdf, 0x10), bar1 = pci_read32((u32)bdf, 0x14);
    mmio = bar0 & ~15u;
    pio = (u16)(bar1 & ~3u);
    if ((bar0 & 1) || !mmio || !(bar1 & 1) || !pio) fail("BARs not assigned: %08x %08x", bar0, bar1);

    for (int type = 0; type < 2; type++) {
        for (int t = 0; t < 3; t++) {
            wr8(type, 0, (u8)t);
            u32 off = rd32(type, 4);
            u8 data = rd8(type, 8);
            char name[32] = {0};
            for (u32 k = 0; k < sizeof name - 1; k++) name[k] = (char)rd8(type, 16 + k);
            for (u32 k = 0; k < WARMUP; k++) wr8(type, off, data);
            u64 cycles = type ? time_pio((u16)(pio + off), data, n)
                              : time_mmio((volatile u8 *)(mmio + off), data, n);
            u32 count = rd32(type, 12);
            printf("path=%s cycles=%llu\n", name, cycles / n);
            u32 want = t == 0 ? n + WARMUP : 0;
            if (count != want) fail("%s: count %u after the writes, want %u", name, count, want);
        }
        wr8(type, 0, 3);   /* stop the test: removes its ioeventfd */
    }
    const char *source = "none";
    u32 khz = tsc_khz(&source);
    printf("tsc_khz=%u source=%s\n", khz, source);
    pass();
}
