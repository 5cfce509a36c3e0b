/*
 * pctestdev: QEMU's ISA pc-testdev scratch registers.
 *
 * - I/O 0xe0: a 32-bit register readable and writable at any width and byte offset.
 * - I/O 0xe8: the same register implemented only for byte accesses; wider accesses are split
 *   into bytes by QEMU's memory core, so the guest still sees a 32-bit register.
 * - MMIO 0xff000000 (64 KiB): scratch memory implemented as MMIO.
 * Every step writes a pattern and reads it back at the same and at other widths.
 */
#include "../lib/lib.h"

static u32 checks;
#define EXPECT(what, got, want) do { \
        u32 g_ = (u32)(got), w_ = (u32)(want); checks++; \
        if (g_ != w_) fail("%s: read %x, want %x", what, g_, w_); } while (0)

static void port_register(u16 base, const char *name) {
    printf("port %x (%s)\n", base, name);
    outl(base, 0x12345678);
    EXPECT("32-bit read after 32-bit write", inl(base), 0x12345678);
    EXPECT("16-bit read at +0", inw(base), 0x5678);
    EXPECT("16-bit read at +2", inw((u16)(base + 2)), 0x1234);
    for (u16 i = 0; i < 4; i++) EXPECT("8-bit read", inb((u16)(base + i)), (0x12345678u >> (8 * i)) & 0xff);
    /* Narrow writes change only their bytes. */
    outb((u16)(base + 1), 0xab);
    EXPECT("after byte write at +1", inl(base), 0x1234ab78);
    outb((u16)(base + 3), 0xcd);
    EXPECT("after byte write at +3", inl(base), 0xcd34ab78);
    outw((u16)(base + 2), 0xbeef);
    EXPECT("after word write at +2", inl(base), 0xbeefab78);
    outw(base, 0x0102);
    EXPECT("after word write at +0", inl(base), 0xbeef0102);
    /* Unaligned word access in the middle. */
    outw((u16)(base + 1), 0x5aa5);
    EXPECT("after word write at +1", inl(base), 0xbe5aa502);
    EXPECT("word read at +1", inw((u16)(base + 1)), 0x5aa5);
    outl(base, 0);
    EXPECT("cleared", inl(base), 0);
    outl(base, 0xffffffff);
    EXPECT("all ones", inl(base), 0xffffffff);
}

void kmain(void) {
    test_name = "pctestdev";
    port_register(0xe0, "any width");
    port_register(0xe8, "byte-implemented");
    /* Both windows are the same register. */
    outl(0xe0, 0xa5a5c3c3);
    EXPECT("0xe8 sees a 0xe0 write", inl(0xe8), 0xa5a5c3c3);
    outb(0xe8 + 2, 0x11);
    EXPECT("0xe0 sees a 0xe8 byte write", inl(0xe0), 0xa511c3c3);

    const uintptr_t m = 0xff000000u;
    printf("mmio %x\n", (u32)m);
    mmio_write32(m, 0xdeadbeef);
    EXPECT("mmio 32-bit", mmio_read32(m), 0xdeadbeef);
    EXPECT("mmio 16-bit +0", mmio_read16(m), 0xbeef);
    EXPECT("mmio 16-bit +2", mmio_read16(m + 2), 0xdead);
    for (u32 i = 0; i < 4; i++) EXPECT("mmio 8-bit", mmio_read8(m + i), (0xdeadbeefu >> (8 * i)) & 0xff);
    mmio_write8(m + 1, 0x42);
    EXPECT("mmio after byte write", mmio_read32(m), 0xdead42ef);
    mmio_write16(m + 2, 0x1357);
    EXPECT("mmio after word write", mmio_read32(m), 0x135742ef);
    /* Distinct values across the whole 64 KiB, then read them all back: it is memory, not one
       register. */
    for (u32 off = 0; off < 0x10000; off += 4) mmio_write32(m + off, off * 2654435761u);
    for (u32 off = 0; off < 0x10000; off += 4)
        if (mmio_read32(m + off) != off * 2654435761u)
            fail("mmio at +%x: read %x, want %x", off, mmio_read32(m + off), off * 2654435761u);
    checks++;
    /* The last word of the window at byte granularity. */
    mmio_write8(m + 0xffff, 0x77);
    EXPECT("mmio last byte", mmio_read8(m + 0xffff), 0x77);
    printf("%u checks\n", checks);
    pass();
}
