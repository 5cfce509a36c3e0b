/*
 * Shared freestanding support for the small test kernels.
 *
 * The same C sources are compiled for 32-bit protected mode (most kernels) and for 64-bit
 * long mode (bench, startup64), so everything here uses uintptr_t for addresses and
 * fixed-width types for device registers. Code built for 64-bit must not initialise pointers
 * statically (no `const char *x = "..."` data, no pointer tables): build.sh assembles it into an
 * ELF32 object, which has no 64-bit relocations, and `as` rejects such code loudly.
 */
#ifndef GUESTS_LIB_H
#define GUESTS_LIB_H

/* Everything is linked statically into one image: hidden visibility lets the 64-bit (-fpie)
   build call and address symbols directly instead of through PLT/GOT. */
#pragma GCC visibility push(hidden)

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed int i32;
typedef long long i64;
typedef unsigned long uintptr_t;
typedef unsigned long size_t;
typedef __builtin_va_list va_list;
#define va_start __builtin_va_start
#define va_end __builtin_va_end
#define va_arg __builtin_va_arg
#define NULL ((void *)0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- port and memory-mapped I/O ---- */
static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0,%1" :: "a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0,%1" :: "a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0,%1" :: "a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1,%0" : "=a"(v) : "Nd"(p)); return v; }
static inline u16 inw(u16 p) { u16 v; __asm__ volatile("inw %1,%0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1,%0" : "=a"(v) : "Nd"(p)); return v; }

static inline u8 mmio_read8(uintptr_t a) { return *(volatile u8 *)a; }
static inline u16 mmio_read16(uintptr_t a) { return *(volatile u16 *)a; }
static inline u32 mmio_read32(uintptr_t a) { return *(volatile u32 *)a; }
static inline void mmio_write8(uintptr_t a, u8 v) { *(volatile u8 *)a = v; }
static inline void mmio_write16(uintptr_t a, u16 v) { *(volatile u16 *)a = v; }
static inline void mmio_write32(uintptr_t a, u32 v) { *(volatile u32 *)a = v; }

static inline u64 rdtsc(void) {
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}
/* rdtsc is not serializing; lfence orders it after earlier instructions complete. */
static inline u64 rdtsc_ordered(void) { __asm__ volatile("lfence" ::: "memory"); return rdtsc(); }
static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
/* How long a kernel waits for something that should happen at once (an interrupt, a device's
   completion, an AP's start) before it fails instead of hanging: about 20 s at this host's
   2.6 GHz TSC. It is only a hang guard, long enough for a heavily loaded CI host, and below
   the test harness's 60 s limit so the kernel's FAIL line is seen. */
#define HANG_GUARD_CYCLES 50000000000ull
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* ---- string helpers (gcc may emit calls to memcpy/memset even when freestanding) ---- */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* ---- serial console (COM1, 0x3f8) and verdicts ---- */
void serial_init(void);
/* COM1's registers 1-7 (IER, IIR, LCR, MCR, LSR, MSR, SCR) as serial_init() found them. */
extern u8 serial_boot_regs[8];
void putchar(char c);
void puts(const char *s);                       /* no newline added */
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vprintf(const char *fmt, va_list ap);
/* isa-debug-exit at 0xf4: QEMU exits with status (code << 1) | 1. */
void __attribute__((noreturn)) exit(u32 code);
/* Set by each kernel; used by pass()/fail() and the exception handler. */
extern const char *test_name;
void __attribute__((noreturn)) pass(void);      /* "PASS name", exit(0) */
void __attribute__((noreturn)) fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Multiboot v1 ---- */
#define MB_BOOT_MAGIC 0x2BADB002u
struct mb_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    u32 syms[4];
    u32 mmap_length, mmap_addr;
};
struct mb_module { u32 mod_start, mod_end, string, reserved; };
struct mb_mmap { u32 size; u64 addr; u64 len; u32 type; } __attribute__((packed));
extern u32 mb_magic;      /* EAX at entry, saved by start.S */
extern u32 mb_info_addr;  /* EBX at entry */
static inline struct mb_info *mb_info(void) {
    return mb_magic == MB_BOOT_MAGIC ? (struct mb_info *)(uintptr_t)mb_info_addr : NULL;
}

/* ---- kernel command line: space separated key=value words ---- */
const char *cmdline(void);                      /* "" when absent */
int cmdline_has(const char *key);
/* Decimal or 0x-hex value of key=, or dflt when absent. */
u64 cmdline_uint(const char *key, u64 dflt);

/* ---- PCI configuration mechanism #1 (0xcf8/0xcfc) ---- */
#define PCI_BDF(b, d, f) (((u32)(b) << 8) | ((u32)(d) << 3) | (u32)(f))
u32 pci_read32(u32 bdf, u32 reg);
u16 pci_read16(u32 bdf, u32 reg);
u8 pci_read8(u32 bdf, u32 reg);
void pci_write32(u32 bdf, u32 reg, u32 v);
void pci_write16(u32 bdf, u32 reg, u16 v);
void pci_write8(u32 bdf, u32 reg, u8 v);
/* First function on bus 0 with this vendor/device; returns its bdf or -1. */
int pci_find(u16 vendor, u16 device);

/* ---- ACPI ---- */
struct acpi_sdt {
    char sig[4];
    u32 length;
    u8 revision, checksum;
    char oem_id[6], oem_table_id[8];
    u32 oem_revision, creator_id, creator_revision;
} __attribute__((packed));
struct acpi_rsdp {
    char sig[8];
    u8 checksum;
    char oem_id[6];
    u8 revision;
    u32 rsdt;
    u32 length;        /* revision >= 2 only */
    u64 xsdt;
    u8 ext_checksum, reserved[3];
} __attribute__((packed));
u8 acpi_sum(const void *p, u32 len);            /* 0 when the checksum is valid */
struct acpi_rsdp *acpi_find_rsdp(void);
struct acpi_sdt *acpi_find_table(const char *sig);  /* via the RSDT; NULL if absent */
u16 acpi_pm_timer_port(void);                   /* FADT PM_TMR_BLK, 0 if none */
u32 pm_timer_read(u16 port);                    /* 24 bits, 3.579545 MHz */
#define PM_TIMER_HZ 3579545u
/* Busy-wait using the PM timer (falls back to port 0x80 reads when there is none). */
void udelay(u32 us);

#pragma GCC visibility pop
#endif
