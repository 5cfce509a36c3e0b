/* PCI configuration mechanism #1: address at 0xcf8, data window 0xcfc-0xcff. */
#include "lib.h"

static void pci_select(u32 bdf, u32 reg) {
    outl(0xcf8, 0x80000000u | (bdf << 8) | (reg & 0xfc));
}

u32 pci_read32(u32 bdf, u32 reg) { pci_select(bdf, reg); return inl(0xcfc); }
u16 pci_read16(u32 bdf, u32 reg) { pci_select(bdf, reg); return inw((u16)(0xcfc + (reg & 2))); }
u8 pci_read8(u32 bdf, u32 reg) { pci_select(bdf, reg); return inb((u16)(0xcfc + (reg & 3))); }
void pci_write32(u32 bdf, u32 reg, u32 v) { pci_select(bdf, reg); outl(0xcfc, v); }
void pci_write16(u32 bdf, u32 reg, u16 v) { pci_select(bdf, reg); outw((u16)(0xcfc + (reg & 2)), v); }
void pci_write8(u32 bdf, u32 reg, u8 v) { pci_select(bdf, reg); outb((u16)(0xcfc + (reg & 3)), v); }

int pci_find(u16 vendor, u16 device) {
    for (u32 dev = 0; dev < 32; dev++) {
        for (u32 fn = 0; fn < 8; fn++) {
            u32 bdf = PCI_BDF(0, dev, fn);
            u32 id = pci_read32(bdf, 0);
            if ((id & 0xffff) == 0xffff) {
                if (fn == 0) break;      /* no device: skip the other functions */
                continue;
            }
            if ((id & 0xffff) == vendor && (id >> 16) == device) return (int)bdf;
            /* Only multi-function devices (header type bit 7) have functions 1-7. */
            if (fn == 0 && !(pci_read8(bdf, 0x0e) & 0x80)) break;
        }
    }
    return -1;
}
