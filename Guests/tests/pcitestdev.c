/*
 * pcitestdev: runs the six pci-testdev tests (QEMU hw/misc/pci-testdev.c contract).
 *
 * Command line: "[writes=N]" (default 64). For each test i = type * 3 + t it starts the test by
 * writing t at offset 0 of the type's BAR (BAR0 MMIO for "mmio", BAR1 I/O for "portio"),
 * checks the header (test index, width 1, offset, data, name, count 0), performs N byte writes of
 * `data` at `offset` and reads `count`: N for the no-eventfd tests (every write reaches the
 * device), 0 for the eventfd tests (KVM's ioeventfd consumes the writes in the kernel).
 *
 * As in QEMU's source (hw/misc/pci-testdev.c), `data` is 0xCE only for the wildcard tests and
 * 0xFA for both no-eventfd and datamatch: every test but wildcard matches on data, in the
 * device as well as in the eventfd. So no-eventfd and datamatch tests also get one write of a
 * different value, which misses any eventfd, reaches the device and must not be counted.
 */
#include "../lib/lib.h"

static uintptr_t mmio;
static u16 pio;

static u8 bar_read8(int type, u32 off) { return type ? inb((u16)(pio + off)) : mmio_read8(mmio + off); }
static void bar_write8(int type, u32 off, u8 v) {
    if (type) outb((u16)(pio + off), v);
    else mmio_write8(mmio + off, v);
}
static u32 bar_read32(int type, u32 off) {
    u32 v = 0;
    for (u32 i = 0; i < 4; i++) v |= (u32)bar_read8(type, off + i) << (8 * i);
    return v;
}

void kmain(void) {
    test_name = "pcitestdev";
    int bdf = pci_find(0x1b36, 0x0005);
    if (bdf < 0) fail("pci-testdev not found");
    u32 bar0 = pci_read32((u32)bdf, 0x10), bar1 = pci_read32((u32)bdf, 0x14);
    mmio = bar0 & ~15u;
    pio = (u16)(bar1 & ~3u);
    if ((bar0 & 1) || !mmio || !(bar1 & 1) || !pio) fail("BARs not assigned: %08x %08x", bar0, bar1);
    printf("pci-testdev 00:%02x.%u mmio %08x io %04x\n", (u32)bdf >> 3, (u32)bdf & 7, (u32)mmio, pio);
    u32 n = (u32)cmdline_uint("writes", 64);
    static const char *const types[2] = {"mmio", "portio"};
    static const char *const tests[3] = {"no-eventfd", "wildcard-eventfd", "datamatch-eventfd"};

    for (int type = 0; type < 2; type++) {
        for (int t = 0; t < 3; t++) {
            u32 i = (u32)(type * 3 + t);
            bar_write8(type, 0, (u8)t);
            u8 idx = bar_read8(type, 0), width = bar_read8(type, 1), data = bar_read8(type, 8);
            u32 off = bar_read32(type, 4), count = bar_read32(type, 12);
            char name[32] = {0}, want[32] = {0};
            for (u32 k = 0; k < sizeof name - 1; k++) name[k] = (char)bar_read8(type, 16 + k);
            memcpy(want, types[type], strlen(types[type]));
            want[strlen(want)] = '-';
            memcpy(want + strlen(want), tests[t], strlen(tests[t]));
            printf("header %s: test %u width %u offset %u data %02x count %u\n", name, idx, width, off, data, count);

            u32 want_off = (type ? 128u : 2048u) + i;
            u8 want_data = t == 1 ? 0xce : 0xfa;
            if (strcmp(name, want)) fail("test %u name \"%s\", want \"%s\"", i, name, want);
            if (idx != i || width != 1 || off != want_off || data != want_data || count != 0)
                fail("%s header: test %u width %u offset %u data %02x count %u", name, idx, width, off, data, count);

            for (u32 k = 0; k < n; k++) bar_write8(type, off, data);
            if (t != 1) bar_write8(type, off, (u8)~data);   /* data mismatch: not counted */
            count = bar_read32(type, 12);
            printf("test %s count=%u\n", name, count);
            u32 want_count = t == 0 ? n : 0;
            if (count != want_count) fail("%s count %u, want %u", name, count, want_count);
        }
        bar_write8(type, 0, 3);   /* stop: the header then reads as zeros */
        if (bar_read32(type, 4) != 0) fail("%s header not cleared after stop", types[type]);
    }
    pass();
}
