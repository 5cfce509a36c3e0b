/*
 * reset: reboots the machine the ways a guest can, counting boots in CMOS byte 0x7e (a system
 * reset keeps CMOS RAM: QEMU's RTC does not clear it).
 *
 * Command line: "method=cf9|cf9full|kbd|triple [boots=N]" (default cf9, 3). Each boot prints
 * "boot K of N", the CMOS shutdown status byte (0x0f), and from the second boot on whether the
 * word it left at 0x300000 (RAM outside its image) is still there. Boots 1 to N-1 then reset
 * the machine: cf9 writes 0x02 then 0x06 to the PIIX reset control register 0xcf9 (a system
 * reset, as Linux's reboot=pci), cf9full writes 0x0e (full reset), kbd pulses the reset line
 * through the i8042 (command 0xfe to port 0x64), triple loads an empty IDT and executes int3
 * (a triple fault). Boot N passes. With -no-reboot the first reset ends the run (status 0).
 */
#include "../lib/lib.h"

#define CMOS_BOOTS 0x7e
#define MARKER ((volatile u32 *)0x300000)
#define MARK 0x5eb00700u

static u8 cmos_read(u8 index) { outb(0x70, index); return inb(0x71); }
static void cmos_write(u8 index, u8 v) { outb(0x70, index); outb(0x71, v); }

static void triple_fault(void) {
    struct { u16 limit; u32 base; } __attribute__((packed)) empty = { 0, 0 };
    __asm__ volatile("lidt %0; xor %%ecx, %%ecx; div %%ecx" :: "m"(empty) : "eax", "ecx", "edx");
}

void kmain(void) {
    test_name = "reset";
    u32 boots = (u32)cmdline_uint("boots", 3);
    u32 boot = (u32)cmos_read(CMOS_BOOTS) + 1;
    cmos_write(CMOS_BOOTS, (u8)boot);
    printf("boot %u of %u, CMOS shutdown status %02x\n", boot, boots, cmos_read(0x0f));
    if (boot > 1) printf("RAM word at 0x300000 %s\n", *MARKER == MARK + boot - 1 ? "kept" : "lost");
    *MARKER = MARK + boot;
    if (boot >= boots) {
        cmos_write(CMOS_BOOTS, 0);
        pass();
    }
    const char *line = cmdline();
    const char *m = "cf9";
    for (const char *p = line; *p; p++) {
        if (!strncmp(p, "method=", 7) && (p == line || p[-1] == ' ')) { m = p + 7; break; }
    }
    if (!strncmp(m, "cf9full", 7)) {
        printf("resetting: 0xcf9 <- 0x0e\n");
        outb(0xcf9, 0x0e);
    } else if (!strncmp(m, "cf9", 3)) {
        printf("resetting: 0xcf9 <- 0x02, 0x06\n");
        outb(0xcf9, 0x02);
        outb(0xcf9, 0x06);
    } else if (!strncmp(m, "kbd", 3)) {
        printf("resetting: i8042 0x64 <- 0xfe\n");
        outb(0x64, 0xfe);
    } else if (!strncmp(m, "triple", 6)) {
        printf("resetting: triple fault\n");
        triple_fault();
    } else {
        fail("unknown method");
    }
    udelay(2000000);
    fail("still running 2 s after the reset request");
}
