/* Serial console on COM1 and the isa-debug-exit verdict helpers. */
#include "lib.h"

#define COM1 0x3f8

/* Not initialised statically: 64-bit code lives in an ELF32 object here (see build.sh), which
   cannot hold 64-bit pointer relocations, so no pointer may be initialised at build time. */
const char *test_name;
static const char *name(void) { return test_name ? test_name : "unnamed"; }

u8 serial_boot_regs[8];

/* Program 115200 8N1 anyway: real UARTs need it, QEMU ignores the rate. The registers as the
   kernel found them are kept in serial_boot_regs first (offsets 1-7; 0 is not read). */
void serial_init(void) {
    for (u16 r = 1; r < 8; r++) serial_boot_regs[r] = inb(COM1 + r);
    outb(COM1 + 1, 0x00);   /* no interrupts: every writer polls */
    outb(COM1 + 3, 0x80);   /* DLAB on */
    outb(COM1 + 0, 0x01);   /* divisor 1 = 115200 */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* DLAB off, 8N1 */
    outb(COM1 + 2, 0x00);   /* FIFO off: one byte per THR write keeps it simple */
    outb(COM1 + 4, 0x03);   /* DTR, RTS */
}

void putchar(char c) {
    /* Wait for THR empty, bounded so a VMM that never sets the bit cannot hang us. */
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
        cpu_relax();
    outb(COM1, (u8)c);
}

void puts(const char *s) { while (*s) putchar(*s++); }

static void put_num(u64 v, unsigned base, int width, char pad, int neg) {
    char buf[24];
    int i = 0;
    do {
        unsigned d = (unsigned)(v % base);
        buf[i++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    if (neg) buf[i++] = '-';
    while (i < width) buf[i++] = pad;
    while (i) putchar(buf[--i]);
}

/* Supports %s %c %d %u %x %p with optional 0-padding width and l/ll size prefixes. */
void vprintf(const char *fmt, va_list ap) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') { putchar(*fmt); continue; }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') { longs++; fmt++; }
        switch (*fmt) {
        case 's': { const char *s = va_arg(ap, const char *); puts(s ? s : "(null)"); break; }
        case 'c': putchar((char)va_arg(ap, int)); break;
        case 'd': {
            i64 v = longs >= 2 ? va_arg(ap, i64) : longs ? va_arg(ap, long) : va_arg(ap, int);
            put_num(v < 0 ? (u64)-v : (u64)v, 10, width, pad, v < 0);
            break;
        }
        case 'u': case 'x': {
            u64 v = longs >= 2 ? va_arg(ap, u64) : longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            put_num(v, *fmt == 'u' ? 10 : 16, width, pad, 0);
            break;
        }
        case 'p': puts("0x"); put_num((uintptr_t)va_arg(ap, void *), 16, width, pad, 0); break;
        case '%': putchar('%'); break;
        default: putchar('%'); putchar(*fmt); if (!*fmt) return; break;
        }
    }
}

void printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

void exit(u32 code) {
    /* A 32-bit write like kvm-unit-tests; the device is 4 ports wide. */
    outl(0xf4, code);
    /* Only reached without isa-debug-exit: stop here rather than run off. */
    for (;;) __asm__ volatile("cli; hlt");
}

void pass(void) {
    printf("PASS %s\n", name());
    exit(0);
}

void fail(const char *fmt, ...) {
    va_list ap;
    printf("FAIL %s: ", name());
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    exit(1);
}
