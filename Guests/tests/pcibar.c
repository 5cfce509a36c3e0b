/*
 * pcibar: what a guest can do to BARs, and what the platform does about it.
 *
 * Default (`-append ""`, pci-testdev present): moves pci-testdev's 4 KiB memory BAR0 over RAM at
 * 4 MiB while memory decoding is on — RAM there must still read and write as RAM (i440FX: PCI
 * memory lies below RAM) — then back into the PCI hole, where its header decodes again; moves
 * it to 0xfffff000 (a 32-bit BAR whose last byte would be 0xffffffff: never decoded) and back;
 * checks all-ones sizing reads back 0xfffff000, that the ROM BAR (no ROM) ignores any write,
 * and moves the 256-port I/O BAR1 within I/O space (0xd000) and back, its header decoding at
 * each place.
 *
 * `cf8=1`: moves BAR1 over 0xc00-0xcff, which holds the configuration ports 0xcf8-0xcff, then
 * reads the host bridge's id through them. Under QEMU 7.2 the BAR takes the ports over and the
 * id is lost ("FAIL pcibar: configuration space lost"); swift-vmm never maps an I/O BAR over
 * them, so the id still reads 8086:1237 and the BAR moves back ("PASS pcibar").
 *
 * `bar64=1` (with -device virtio-rng-pci): virtio-pci's BAR4 is a 64-bit prefetchable memory
 * BAR: type bits 0xc, sizing gives ffffc00c/ffffffff, the upper half takes any value and reads
 * it back, and after moving it over RAM and back its common configuration decodes again.
 */
#include "../lib/lib.h"

#define RAM_PROBE 0x400000u

static const char *test_header_name(uintptr_t mmio, char *name) {
    mmio_write8(mmio, 0);                         /* start test 0 (mmio-no-eventfd) */
    for (u32 i = 0; i < 15; i++) name[i] = (char)mmio_read8(mmio + 16 + i);
    name[15] = 0;
    mmio_write8(mmio, 3);                         /* t >= 3 stops it */
    return name;
}

static int io_header_is_portio(u16 port) {
    char name[18];
    outb(port, 0);                                /* portio test 0 = test 3: portio-no-eventfd */
    for (u32 i = 0; i < 17; i++) name[i] = (char)inb((u16)(port + 16 + i));
    name[17] = 0;
    outb(port, 3);                                /* t >= 3 stops it */
    return strcmp(name, "portio-no-eventfd") == 0;
}

static void ram_over_bar(u32 bdf, u32 bar0) {
    volatile u32 *ram = (volatile u32 *)(uintptr_t)RAM_PROBE;
    ram[0] = 0x11223344u;
    ram[4] = 0x55667788u;                         /* where the header's name would be */
    pci_write32(bdf, 0x10, RAM_PROBE);            /* decoding stays on */
    printf("BAR0 programmed to %08x (reads back %08x)\n", RAM_PROBE, pci_read32(bdf, 0x10));
    if (pci_read32(bdf, 0x10) != RAM_PROBE) fail("BAR0 does not read back %08x", RAM_PROBE);
    printf("RAM under BAR0: %08x %08x\n", ram[0], ram[4]);
    if (ram[0] != 0x11223344u || ram[4] != 0x55667788u) fail("RAM at %08x changed under the BAR", RAM_PROBE);
    ram[0] = 0xcafef00du;
    printf("RAM write under BAR0 reads back %08x\n", ram[0]);
    if (ram[0] != 0xcafef00du) fail("RAM at %08x does not take writes", RAM_PROBE);
    char name[16];
    test_header_name(RAM_PROBE, name);            /* its writes land in RAM, not the device */
    printf("header through BAR0 over RAM: %s\n", strcmp(name, "mmio-no-eventfd") ? "not reachable" : "REACHABLE");
    if (!strcmp(name, "mmio-no-eventfd")) fail("BAR0 decodes over RAM");
    printf("RAM after the header probe: %08x %08x\n", ram[0], ram[4]);
    pci_write32(bdf, 0x10, bar0);
    printf("BAR0 back at %08x: header %s\n", bar0, test_header_name(bar0, name));
    if (strcmp(name, "mmio-no-eventfd")) fail("BAR0 does not decode back in the hole");
    printf("RAM at %08x after the BAR left: %08x\n", RAM_PROBE, ram[0]);
}

static void wrapping_bar(u32 bdf, u32 bar0) {
    char name[16];
    pci_write32(bdf, 0x10, 0xfffff000u);
    printf("BAR0 at fffff000 (reads back %08x): header %s\n", pci_read32(bdf, 0x10),
           strcmp(test_header_name(0xfffff000u, name), "mmio-no-eventfd") ? "not decoded" : "DECODED");
    if (!strcmp(name, "mmio-no-eventfd")) fail("a 32-bit BAR ending at 0xffffffff decodes");
    u16 cmd = pci_read16(bdf, 0x04);
    pci_write16(bdf, 0x04, (u16)(cmd & ~3u));
    pci_write32(bdf, 0x10, 0xffffffffu);
    printf("BAR0 sizing reads %08x\n", pci_read32(bdf, 0x10));
    if (pci_read32(bdf, 0x10) != 0xfffff000u) fail("BAR0 sizing %08x", pci_read32(bdf, 0x10));
    pci_write32(bdf, 0x10, bar0);
    pci_write16(bdf, 0x04, cmd);
    printf("BAR0 restored to %08x: header %s\n", pci_read32(bdf, 0x10), test_header_name(bar0, name));
    if (strcmp(name, "mmio-no-eventfd")) fail("BAR0 does not decode after the restore");
    /* The ROM BAR: pci-testdev has no ROM, so every write is ignored. */
    const u32 values[] = { 0xffffffffu, 0xfffff801u, 0x00000001u, 0xfebf0001u };
    for (u32 i = 0; i < ARRAY_SIZE(values); i++) {
        pci_write32(bdf, 0x30, values[i]);
        if (pci_read32(bdf, 0x30) != 0) fail("ROM BAR reads %08x after %08x", pci_read32(bdf, 0x30), values[i]);
    }
    printf("ROM BAR reads %08x after every write\n", pci_read32(bdf, 0x30));
}

static void io_bar_moves(u32 bdf, u32 bar1) {
    u16 port = (u16)(bar1 & ~3u);
    printf("BAR1 at %04x: portio header %s\n", port, io_header_is_portio(port) ? "ok" : "MISSING");
    if (!io_header_is_portio(port)) fail("BAR1 does not decode at %04x", port);
    pci_write32(bdf, 0x14, 0xd000);
    printf("BAR1 moved to %04x: portio header %s\n", pci_read32(bdf, 0x14) & ~3u, io_header_is_portio(0xd000) ? "ok" : "MISSING");
    if (!io_header_is_portio(0xd000)) fail("BAR1 does not decode at d000");
    pci_write32(bdf, 0x14, bar1);
    printf("BAR1 back at %04x: portio header %s\n", port, io_header_is_portio(port) ? "ok" : "MISSING");
    if (!io_header_is_portio(port)) fail("BAR1 does not decode back at %04x", port);
}

static void io_bar_over_config_ports(u32 bdf, u32 bar1) {
    pci_write32(bdf, 0x14, 0xc00);                /* 0xc00-0xcff: covers 0xcf8-0xcff */
    u32 id = pci_read32(PCI_BDF(0, 0, 0), 0);
    printf("BAR1 over 0xc00-0xcff: host bridge id %08x\n", id);
    if (id != 0x12378086u) fail("configuration space lost");
    pci_write32(bdf, 0x14, bar1);
    printf("BAR1 back: reads %08x, portio header %s\n", pci_read32(bdf, 0x14),
           io_header_is_portio((u16)(bar1 & ~3u)) ? "ok" : "MISSING");
    if (pci_read32(bdf, 0x14) != bar1) fail("BAR1 not restored");
}

static void bar64(void) {
    int v = pci_find(0x1af4, 0x1005);
    if (v < 0) fail("no virtio-rng-pci (1af4:1005)");
    u32 bdf = (u32)v;
    u32 lo = pci_read32(bdf, 0x20), hi = pci_read32(bdf, 0x24);
    printf("virtio BAR4 %08x %08x: %s\n", lo, hi, (lo & 0xf) == 0xc ? "64-bit prefetchable memory" : "other");
    if ((lo & 0xf) != 0xc) fail("BAR4 type bits %x, want c", lo & 0xf);
    u16 cmd = pci_read16(bdf, 0x04);
    pci_write16(bdf, 0x04, (u16)(cmd & ~3u));
    pci_write32(bdf, 0x20, 0xffffffffu);
    pci_write32(bdf, 0x24, 0xffffffffu);
    u32 slo = pci_read32(bdf, 0x20), shi = pci_read32(bdf, 0x24);
    printf("sizing reads %08x %08x\n", slo, shi);
    if (slo != 0xffffc00cu || shi != 0xffffffffu) fail("BAR4 sizing %08x %08x", slo, shi);
    pci_write32(bdf, 0x24, 0x12345678u);
    printf("upper half takes %08x\n", pci_read32(bdf, 0x24));
    if (pci_read32(bdf, 0x24) != 0x12345678u) fail("upper half reads %08x", pci_read32(bdf, 0x24));
    pci_write32(bdf, 0x20, lo);
    pci_write32(bdf, 0x24, hi);
    pci_write16(bdf, 0x04, cmd);
    uintptr_t common = lo & ~15u;
    mmio_write32(common, 1);                      /* device_feature_select */
    printf("restored %08x %08x: device_feature_select reads %u\n", pci_read32(bdf, 0x20), pci_read32(bdf, 0x24),
           mmio_read32(common));
    if (mmio_read32(common) != 1) fail("BAR4 does not decode after sizing");
    /* Over RAM, and back. */
    volatile u32 *ram = (volatile u32 *)(uintptr_t)RAM_PROBE;
    ram[0] = 0x0badf00du;
    pci_write32(bdf, 0x20, RAM_PROBE);
    ram[0] = ram[0] + 1;
    printf("BAR4 over RAM: RAM reads %08x\n", ram[0]);
    if (ram[0] != 0x0badf00eu) fail("RAM changed under BAR4");
    pci_write32(bdf, 0x20, lo);
    printf("BAR4 back: device_feature_select reads %u\n", mmio_read32(common));
    if (mmio_read32(common) != 1) fail("BAR4 does not decode back in the hole");
    mmio_write32(common, 0);
}

void kmain(void) {
    test_name = "pcibar";
    if (cmdline_has("bar64")) {
        bar64();
        pass();
    }
    int t = pci_find(0x1b36, 0x0005);
    if (t < 0) fail("pci-testdev 1b36:0005 not found");
    u32 bdf = (u32)t;
    u32 bar0 = pci_read32(bdf, 0x10), bar1 = pci_read32(bdf, 0x14);
    printf("pci-testdev at 00:%02x.%u BAR0 %08x BAR1 %08x\n", bdf >> 3, bdf & 7, bar0, bar1);
    if (cmdline_has("cf8")) {
        io_bar_over_config_ports(bdf, bar1);
        pass();
    }
    ram_over_bar(bdf, bar0);
    wrapping_bar(bdf, bar0);
    io_bar_moves(bdf, bar1);
    pass();
}
