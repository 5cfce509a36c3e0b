/* cf8low: configuration mechanism #1 as QEMU's host bridge decodes it. The register is bits
 * 7:0 of CONFIG_ADDRESS (bits 1:0 included) ORed with the offset in the data window, an access
 * that runs past register 0xff is cut there, and any byte of 0xcf8-0xcfb reads the low bytes
 * of CONFIG_ADDRESS. QEMU: pci_host_data_read() (config_reg | (addr & 3)), pci_data_read(),
 * pci_host_config_read_common(), pci_host_config_read(). The kernel prints what it reads and
 * checks the one case a third-party kernel relies on: 0x80001002, then a word at 0xcfc, is the
 * device ID of the function at 00:02.0 (pci-testdev, 1b36:0005, on the reference command line). */
#include "../lib/lib.h"

static u32 address(u32 bdf, u32 low) { return 0x80000000u | (bdf << 8) | low; }

void kmain(void) {
    test_name = "cf8low";
    int found = pci_find(0x1b36, 0x0005);
    if (found < 0) fail("pci-testdev not found");
    u32 bdf = (u32)found;
    printf("pci-testdev at %x\n", bdf);

    outl(0xcf8, address(bdf, 0x02));
    u16 device = inw(0xcfc);
    printf("0x%x, word at 0xcfc: %x\n", address(bdf, 0x02), device);
    outl(0xcf8, address(bdf, 0x01));
    printf("low bits 1, byte at 0xcfc: %x\n", inb(0xcfc));
    printf("low bits 1, byte at 0xcfe: %x\n", inb(0xcfe));
    outl(0xcf8, address(bdf, 0x02));
    printf("low bits 2, word at 0xcfe: %x\n", inw(0xcfe));
    outl(0xcf8, address(bdf, 0x03));
    printf("low bits 3, dword at 0xcfc: %x\n", inl(0xcfc));
    outl(0xcf8, address(bdf, 0xfd));
    printf("register 0xfd, dword at 0xcfc: %x\n", inl(0xcfc));
    outl(0xcf8, address(bdf, 0x3e));
    printf("register 0x3e, dword at 0xcfc: %x\n", inl(0xcfc));
    /* Writes take the same decode: the interrupt line (0x3c) through low bits 0x3d | 3. */
    outl(0xcf8, address(bdf, 0x3d));
    outb(0xcff, 0x5a);
    printf("write via 0x3d|3 (register 0x3f), interrupt line still %x\n", pci_read8(bdf, 0x3c));
    outl(0xcf8, address(bdf, 0x3c));
    outb(0xcfd, 0x77);
    printf("write to pin via 0x3c|1, pin now %x\n", pci_read8(bdf, 0x3d));
    outl(0xcf8, 0x87654302u);
    printf("0xcf8 bytes: %x %x %x %x, word at 0xcfa: %x\n", inb(0xcf8), inb(0xcf9), inb(0xcfa), inb(0xcfb), inw(0xcfa));
    outl(0xcf8, 0);
    if (device != 0x0005) fail("word at 0xcfc after 0x%x reads %x, not the device ID 5", address(bdf, 0x02), device);
    pass();
}
