/*
 * pci: bus 0 enumeration through configuration mechanism #1.
 *
 * Finds the 440FX host bridge (8086:1237) at 00:00.0 and pci-testdev (1b36:0005), prints every
 * function with its BARs, checks pci-testdev's BAR0 is 32-bit MMIO and BAR1 is I/O, both assigned
 * (nonzero: firmware, or the VMM, must have placed them), and sizes them the standard way
 * (write all ones, read back the size mask, restore) with decoding disabled meanwhile so the
 * transient all-ones address never decodes. Every other function's assigned BARs are printed
 * with their sizes (sized the same way; a 64-bit BAR as one), with its interrupt pin and line
 * and its capability list, so a run with more devices (virtio-pci) compares them all.
 */
#include "../lib/lib.h"

/* Size mask of the BAR at `reg` (and, for a 64-bit BAR, its upper half at reg + 4): all ones
   written with I/O and memory decoding off, the old value restored. */
static u64 bar_mask(u32 bdf, u32 reg, int is64) {
    u16 cmd = pci_read16(bdf, 0x04);
    pci_write16(bdf, 0x04, (u16)(cmd & ~3u));
    u32 lo = pci_read32(bdf, reg), hi = is64 ? pci_read32(bdf, reg + 4) : 0;
    pci_write32(bdf, reg, 0xffffffffu);
    if (is64) pci_write32(bdf, reg + 4, 0xffffffffu);
    u64 mask = pci_read32(bdf, reg) | (is64 ? (u64)pci_read32(bdf, reg + 4) << 32 : 0xffffffff00000000ull);
    pci_write32(bdf, reg, lo);
    if (is64) pci_write32(bdf, reg + 4, hi);
    pci_write16(bdf, 0x04, cmd);
    return mask;
}

/* Every assigned BAR with its size (64-bit BARs as one), the interrupt pin and line, and the
   capability list (id@offset in list order). */
static void print_bars(u32 bdf) {
    u8 htype = pci_read8(bdf, 0x0e) & 0x7f;
    int nbars = htype == 0 ? 6 : htype == 1 ? 2 : 0;
    for (int i = 0; i < nbars; i++) {
        u32 reg = 0x10 + 4 * (u32)i;
        u32 bar = pci_read32(bdf, reg);
        int is64 = !(bar & 1) && (bar & 6) == 4 && i + 1 < nbars;
        u32 hi = is64 ? pci_read32(bdf, reg + 4) : 0;
        if (!bar && !hi) { if (is64) i++; continue; }
        if (bar & 1) {
            u32 mask = (u32)bar_mask(bdf, reg, 0) | 0xffff0000u;
            printf("    BAR%d io   %04x size %u\n", i, bar & ~3u, ~(mask & ~3u) + 1);
        } else {
            u64 mask = bar_mask(bdf, reg, is64) & ~0xfull;
            u64 addr = ((u64)hi << 32) | (bar & ~15u);
            if (is64) printf("    BAR%d mem  %llx 64-bit%s size %llu\n", i, addr, bar & 8 ? " prefetch" : "", ~mask + 1);
            else printf("    BAR%d mem  %08x%s size %u\n", i, bar & ~15u, bar & 8 ? " prefetch" : "", (u32)(~mask + 1));
        }
        if (is64) i++;
    }
    u8 pin = pci_read8(bdf, 0x3d);
    if (pin) printf("    interrupt pin %c line %u\n", 'A' + pin - 1, pci_read8(bdf, 0x3c));
    if (pci_read16(bdf, 0x06) & 0x10) {
        printf("    capabilities");
        u8 ptr = pci_read8(bdf, 0x34) & 0xfc;
        for (int guard = 0; ptr && guard < 48; guard++, ptr = pci_read8(bdf, ptr + 1) & 0xfc)
            printf(" %02x@%02x", pci_read8(bdf, ptr), ptr);
        printf("\n");
    }
}

/* Returns the value read back after writing all ones to a BAR, restoring it afterwards. */
static u32 size_bar(u32 bdf, u32 reg) {
    u16 cmd = pci_read16(bdf, 0x04);
    pci_write16(bdf, 0x04, (u16)(cmd & ~3u));   /* I/O and memory decoding off */
    u32 old = pci_read32(bdf, reg);
    pci_write32(bdf, reg, 0xffffffffu);
    u32 mask = pci_read32(bdf, reg);
    pci_write32(bdf, reg, old);
    u32 back = pci_read32(bdf, reg);
    pci_write16(bdf, 0x04, cmd);
    if (back != old) fail("BAR at %02x not restored: %08x, was %08x", reg, back, old);
    return mask;
}

void kmain(void) {
    test_name = "pci";
    u32 hb = pci_read32(PCI_BDF(0, 0, 0), 0);
    printf("00:00.0 id %08x\n", hb);
    if (hb != 0x12378086) fail("host bridge id %08x, want 8086:1237", hb);

    int found = -1, absent = -1;
    u32 nfuncs = 0;
    for (u32 dev = 0; dev < 32; dev++) {
        for (u32 fn = 0; fn < 8; fn++) {
            u32 bdf = PCI_BDF(0, dev, fn);
            u32 id = pci_read32(bdf, 0);
            if ((id & 0xffff) == 0xffff) {
                if (fn == 0) { if (absent < 0) absent = (int)bdf; break; }
                continue;
            }
            u32 cls = pci_read32(bdf, 0x08);
            printf("00:%02x.%u %04x:%04x class %06x rev %02x\n", dev, fn, id & 0xffff, id >> 16, cls >> 8, cls & 0xff);
            print_bars(bdf);
            nfuncs++;
            if (id == 0x00051b36) found = (int)bdf;
            if (fn == 0 && !(pci_read8(bdf, 0x0e) & 0x80)) break;
        }
    }
    printf("%u functions on bus 0\n", nfuncs);
    /* An absent function reads as all ones at every width. */
    if (absent < 0) fail("no absent device slot on bus 0?");
    if (pci_read32((u32)absent, 0) != 0xffffffffu || pci_read16((u32)absent, 2) != 0xffff ||
        pci_read8((u32)absent, 0x0e) != 0xff)
        fail("absent 00:%02x.0 does not read as all ones", (u32)absent >> 3);
    if (found < 0) fail("pci-testdev 1b36:0005 not found");
    u32 bdf = (u32)found;

    /* QEMU sets the 16-bit class register (0x0a) to PCI_CLASS_OTHERS = 0x00ff: base class 0x00,
       subclass 0xff, prog-if 0, revision 0, i.e. dword 0x08 reads 0x00ff0000. */
    u32 cls = pci_read32(bdf, 0x08);
    if (cls != 0x00ff0000) fail("pci-testdev class/rev %08x, want 00ff0000", cls);
    if (pci_read8(bdf, 0x3d) != 0) fail("pci-testdev interrupt pin %u, want 0", pci_read8(bdf, 0x3d));

    u32 bar0 = pci_read32(bdf, 0x10), bar1 = pci_read32(bdf, 0x14);
    printf("pci-testdev at 00:%02x.%u BAR0 %08x BAR1 %08x command %04x\n", bdf >> 3, bdf & 7, bar0, bar1,
           pci_read16(bdf, 0x04));
    if (bar0 & 1) fail("BAR0 %08x is I/O, want MMIO", bar0);
    if ((bar0 & 6) != 0) fail("BAR0 %08x is not a 32-bit memory BAR", bar0);
    if (!(bar0 & ~0xfffu)) fail("BAR0 unassigned");
    if (!(bar1 & 1)) fail("BAR1 %08x is memory, want I/O", bar1);
    if (!(bar1 & ~3u)) fail("BAR1 unassigned");
    if ((pci_read16(bdf, 0x04) & 3) != 3) fail("command %04x: I/O and memory decoding not both enabled",
                                               pci_read16(bdf, 0x04));

    u32 m0 = size_bar(bdf, 0x10), m1 = size_bar(bdf, 0x14);
    printf("BAR0 size mask %08x (%u bytes), BAR1 size mask %08x (%u bytes)\n", m0, ~(m0 & ~15u) + 1, m1,
           (~(m1 & ~3u) + 1) & 0xffff);
    if (m0 != 0xfffff000u) fail("BAR0 size mask %08x, want fffff000 (4 KiB MMIO)", m0);
    if (m1 != 0xffffff01u) fail("BAR1 size mask %08x, want ffffff01 (256-byte I/O)", m1);
    /* Unused BARs must size to zero. */
    for (u32 r = 0x18; r <= 0x24; r += 4)
        if (size_bar(bdf, r) != 0) fail("BAR at %02x sizes to %08x, want 0", r, size_bar(bdf, r));
    /* Decoding still works after the restore: start MMIO test 0 and read its name. */
    uintptr_t mmio = bar0 & ~15u;
    mmio_write8(mmio, 0);
    char name[16] = {0};
    for (u32 i = 0; i < 15; i++) name[i] = (char)mmio_read8(mmio + 16 + i);
    mmio_write8(mmio, 3);   /* t >= 3 stops the test */
    printf("BAR0 header name after restore: \"%s\"\n", name);
    if (strcmp(name, "mmio-no-eventfd"))
        fail("BAR0 does not decode after sizing (name \"%s\")", name);
    pass();
}
