/*
 * rombar: the expansion ROM BAR (config 0x30) of pci-testdev given `romfile=` (the 512-byte
 * firmware/optionrom.rom): its value as firmware left it, sizing (all ones reads back the
 * size mask with the enable bit), the ROM's first bytes read through memory space once
 * enabled, and what the same address reads when the enable bit or memory decoding is off.
 * Run with -device pci-testdev,romfile=OUT/optionrom.rom.
 */
#include "../lib/lib.h"

void kmain(void) {
    test_name = "rombar";
    int bdf = pci_find(0x1b36, 0x0005);
    if (bdf < 0) fail("no pci-testdev");
    u32 orig = pci_read32((u32)bdf, 0x30);
    u16 cmd = (u16)pci_read32((u32)bdf, 0x04);
    printf("ROM BAR as firmware left it: %08x, command %04x\n", orig, cmd);
    pci_write32((u32)bdf, 0x30, 0xffffffff);
    u32 sized = pci_read32((u32)bdf, 0x30);
    pci_write32((u32)bdf, 0x30, 0xfffffffe);
    printf("sizing: %08x (enable written 1), %08x (enable written 0)\n", sized, pci_read32((u32)bdf, 0x30));
    u32 size = ~(sized & ~1u) + 1;
    u32 at = orig & ~(size - 1);
    if (!at) at = 0xfe000000;                      /* no address from firmware: pick one */
    pci_write32((u32)bdf, 0x30, at | 1);
    pci_write16((u32)bdf, 0x04, (u16)(cmd | 2));
    printf("enabled at %08x: %08x %08x, byte 0x18: %02x\n", at, mmio_read32(at), mmio_read32(at + 0x1c), mmio_read8(at + 0x18));
    pci_write32((u32)bdf, 0x30, at);
    printf("enable bit clear: %08x\n", mmio_read32(at));
    pci_write32((u32)bdf, 0x30, at | 1);
    pci_write16((u32)bdf, 0x04, (u16)(cmd & ~2));
    printf("memory decoding off: %08x\n", mmio_read32(at));
    pci_write16((u32)bdf, 0x04, cmd);
    pci_write32((u32)bdf, 0x30, orig);
    printf("restored: %08x\n", pci_read32((u32)bdf, 0x30));
    pass();
}
