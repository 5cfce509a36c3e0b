/*
 * hostile: a Multiboot guest that attacks its VMM with seeded random device accesses.
 *
 * It never touches its own RAM at random; it aims at everything a VMM must check: every I/O
 * port (except the debug-exit and reset ports, which would end the test early), string I/O
 * with huge counts, the PCI configuration mechanism with random addresses, every width at odd
 * alignments, the MMIO holes (IOAPIC, pc-testdev scratch, the PCI window, unassigned space).
 * It prints "hostile: survived N rounds" and exits through isa-debug-exit with value 0x21,
 * so a VMM that survived ends with status (0x21 << 1) | 1 = 67.
 * Command line: "seed=S rounds=R [spare_irq=1]".
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

struct mbi { u32 flags, mem_lower, mem_upper, boot_device, cmdline; };

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0,%1" :: "a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0,%1" :: "a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0,%1" :: "a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1,%0" : "=a"(v) : "Nd"(p)); return v; }
static inline u16 inw(u16 p) { u16 v; __asm__ volatile("inw %1,%0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1,%0" : "=a"(v) : "Nd"(p)); return v; }

static void putc(char c) { outb(0x3f8, (u8)c); }
static void puts(const char *s) { while (*s) putc(*s++); }
static void putu(u32 v) {
    char b[12]; int i = 0;
    do { b[i++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (i) putc(b[--i]);
}

static u64 state = 88172645463325252ull;
static u32 rnd(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return (u32)state; }

static u32 parse(const char *cmd, const char *key, u32 dflt) {
    for (const char *p = cmd; p && *p; p++) {
        const char *k = key, *q = p;
        while (*k && *q == *k) { k++; q++; }
        if (!*k && *q == '=') {
            u32 v = 0; q++;
            while (*q >= '0' && *q <= '9') v = v * 10 + (u32)(*q++ - '0');
            return v;
        }
    }
    return dflt;
}

static u8 scratch[4096] __attribute__((aligned(16)));

/* "spare_irq=1" spares pc-testdev's IRQ ports 0x2010-0x2017: QEMU 7.2 asserts (and aborts) on
   ISA IRQ lines 16-23 there, so differential runs against QEMU need it. */
static u32 spare_irq;

static int forbidden_port(u16 p, u32 width) {
    /* 0xf4..0xf7 debug exit, 0xcf9 reset, 0x64 keyboard reset, 0x604 ACPI PM1a control (S5 soft-off), 0x3f8-0x3ff our own console output,
       0x92 fast A20/reset. */
    for (u32 i = 0; i < width; i++) {
        u16 q = (u16)(p + i);
        if (spare_irq && q >= 0x2010 && q <= 0x2017) return 1;
        if ((q >= 0xf4 && q <= 0xf7) || q == 0xcf9 || q == 0x64 || q == 0x604 || q == 0x605 || q == 0x92 || (q >= 0x3f8 && q <= 0x3ff)) return 1;
    }
    return 0;
}

static void port_attack(void) {
    u16 p = (u16)rnd();
    if (rnd() & 1) p &= 0x0fff;           /* favour the crowded low ports */
    u32 op = rnd() % 8, v = rnd();
    u32 w = op % 3 == 0 ? 1 : op % 3 == 1 ? 2 : 4;
    if (forbidden_port(p, w)) return;
    switch (op) {
    case 0: outb(p, (u8)v); break;
    case 1: outw(p, (u16)v); break;
    case 2: outl(p, v); break;
    case 3: (void)inb(p); break;
    case 4: (void)inw(p); break;
    case 5: (void)inl(p); break;
    case 6: { /* string output with a large count from a valid buffer */
        u32 n = 1 + rnd() % 1024;
        __asm__ volatile("cld; rep outsb" : "+S"((u32){(u32)scratch}), "+c"(n) : "d"(p) : "memory");
        break; }
    case 7: { /* string input into a valid buffer */
        u32 n = 1 + rnd() % 1024;
        __asm__ volatile("cld; rep insb" : "+D"((u32){(u32)scratch}), "+c"(n) : "d"(p) : "memory");
        break; }
    }
}

static void pci_attack(void) {
    outl(0xcf8, rnd() | (rnd() & 1 ? 0x80000000u : 0));
    u16 port = (u16)(0xcfc + rnd() % 4);
    switch (rnd() % 6) {
    case 0: outb(port, (u8)rnd()); break;
    case 1: outw(port, (u16)rnd()); break;
    case 2: outl(port, rnd()); break;
    case 3: (void)inb(port); break;
    case 4: (void)inw(port); break;
    default: (void)inl(port); break;
    }
}

static void mmio_attack(u32 ram_top) {
    static const u32 windows[][2] = {
        {0xfec00000u, 0x1000}, {0xfee00000u, 0x1000}, {0xff000000u, 0x10000},
        {0xfe000000u, 0xc00000}, {0xe0000000u, 0x1000000}, {0xa0000u, 0x20000},
    };
    u32 wi = rnd() % (sizeof windows / sizeof windows[0]);
    u32 a = windows[wi][0] + rnd() % windows[wi][1];
    if (a < ram_top && a >= 0x100000) return;
    if (wi == 1) return;                 /* the local APIC can legitimately stop this CPU */
    volatile u8 *p8 = (volatile u8 *)a;
    switch (rnd() % 6) {
    case 0: *p8 = (u8)rnd(); break;
    case 1: *(volatile u16 *)a = (u16)rnd(); break;
    case 2: *(volatile u32 *)a = rnd(); break;
    case 3: (void)*p8; break;
    case 4: (void)*(volatile u16 *)a; break;
    default: (void)*(volatile u32 *)a; break;
    }
}

void kmain(u32 magic, struct mbi *mbi) {
    const char *cmd = (magic == 0x2BADB002 && (mbi->flags & 4)) ? (const char *)mbi->cmdline : "";
    u32 seed = parse(cmd, "seed", 1), rounds = parse(cmd, "rounds", 20000);
    spare_irq = parse(cmd, "spare_irq", 0);
    u32 ram_top = (magic == 0x2BADB002 && (mbi->flags & 1)) ? (mbi->mem_upper + 1024) * 1024 : 0x8000000;
    state ^= (u64)seed * 0x9E3779B97F4A7C15ull;
    if (!state) state = 1;
    for (u32 i = 0; i < sizeof scratch; i++) scratch[i] = (u8)rnd();
    puts("hostile: seed="); putu(seed); puts(" rounds="); putu(rounds); puts("\n");
    for (u32 r = 0; r < rounds; r++) {
        switch (rnd() % 4) {
        case 0: case 1: port_attack(); break;
        case 2: pci_attack(); break;
        default: mmio_attack(ram_top); break;
        }
    }
    puts("hostile: survived "); putu(rounds); puts(" rounds\n");
    outb(0xf4, 0x21);
    for (;;) __asm__ volatile("cli; hlt");
}
