/*
 * smp: bring up the application processors listed in the MADT.
 *
 * Command line: "cpus=N" (the -smp count). Parses the MADT's processor local APIC entries,
 * copies a real-mode trampoline to 0x8000 (checked usable in the Multiboot memory map), and
 * starts each enabled AP other than this one with INIT, 10 ms, SIPI, 200 us, SIPI (the
 * universal startup algorithm; the second SIPI is ignored by an AP that already started).
 * Each AP increments a shared counter with a locked add and records its APIC ID, then halts.
 * Passes when the counter equals cpus - 1 and every MADT APIC ID was seen once.
 */
#include "../lib/lib.h"
#include "../lib/idt.h"

#define TRAMPOLINE 0x8000u
#define MAX_CPUS 64

extern const u8 tramp_start[], tramp_end[];
static volatile u32 started;
static volatile u32 seen_id[MAX_CPUS];

void ap_main(u32 index);
void ap_main(u32 index) {
    u32 id = lapic_read(0x20) >> 24;
    if (index < MAX_CPUS) seen_id[index] = id + 1;   /* +1: 0 means "not written" */
    __atomic_fetch_add(&started, 1, __ATOMIC_SEQ_CST);
}

static void icr_send(u32 dest, u32 low) {
    lapic_write(0x310, dest << 24);
    lapic_write(0x300, low);
    for (u32 i = 0; i < 1000000 && (lapic_read(0x300) & (1u << 12)); i++) cpu_relax();   /* delivery status */
}

static int usable(u64 start, u64 end) {
    struct mb_info *mbi = mb_info();
    if (!mbi || !(mbi->flags & (1u << 6))) return 1;    /* no map: assume conventional memory */
    for (uintptr_t p = mbi->mmap_addr; p < mbi->mmap_addr + mbi->mmap_length;) {
        struct mb_mmap *e = (struct mb_mmap *)p;
        if (e->type == 1 && e->addr <= start && e->addr + e->len >= end) return 1;
        p += e->size + 4;
    }
    return 0;
}

void kmain(void) {
    test_name = "smp";
    u32 cpus = (u32)cmdline_uint("cpus", 0);
    if (!cpus) fail("no cpus= argument");

    struct acpi_sdt *madt = acpi_find_table("APIC");
    if (!madt) fail("no MADT");
    u32 lapic_addr = *(u32 *)((u8 *)madt + 36);
    printf("MADT local APIC address %08x flags %x\n", lapic_addr, *(u32 *)((u8 *)madt + 40));
    if (lapic_addr != LAPIC_BASE) fail("local APIC at %08x, this test expects %08x", lapic_addr, LAPIC_BASE);

    u32 ids[MAX_CPUS], n = 0;
    for (u8 *p = (u8 *)madt + 44; p < (u8 *)madt + madt->length && p[1]; p += p[1]) {
        if (p[0] == 0) {
            printf("  processor uid %u apic id %u flags %x\n", p[2], p[3], *(u32 *)(p + 4));
            if ((*(u32 *)(p + 4) & 1) && n < MAX_CPUS) ids[n++] = p[3];
        } else if (p[0] == 1) {
            printf("  ioapic id %u at %08x gsi base %u\n", p[2], *(u32 *)(p + 4), *(u32 *)(p + 8));
        } else if (p[0] == 2) {
            printf("  override irq %u -> gsi %u flags %x\n", p[3], *(u32 *)(p + 4), *(u16 *)(p + 8));
        }
    }
    printf("%u enabled processors in the MADT, cpus=%u\n", n, cpus);
    if (n != cpus) fail("MADT lists %u enabled processors, want %u", n, cpus);

    u32 tsize = (u32)(tramp_end - tramp_start);
    if (!usable(TRAMPOLINE, TRAMPOLINE + 0x1000)) fail("trampoline page %x not usable RAM", TRAMPOLINE);
    memcpy((void *)TRAMPOLINE, tramp_start, tsize);
    printf("trampoline: %u bytes at %x\n", tsize, TRAMPOLINE);

    lapic_write(0xf0, lapic_read(0xf0) | 0x1ff);      /* software-enable our APIC */
    u32 self = lapic_read(0x20) >> 24;
    printf("BSP apic id %u\n", self);
    for (u32 i = 0; i < n; i++) {
        if (ids[i] == self) continue;
        icr_send(ids[i], 0x4500);                       /* INIT, level assert */
        udelay(10000);
        for (int k = 0; k < 2; k++) {
            icr_send(ids[i], 0x4600 | (TRAMPOLINE >> 12));  /* STARTUP */
            udelay(200);
        }
    }
    /* Wait for everyone; 30 s on the PM timer is only a hang guard (APs start in ms). */
    for (u32 ms = 0; ms < 30000 && started < cpus - 1; ms++) udelay(1000);
    printf("APs started: %u\n", started);
    if (started != cpus - 1) fail("%u APs started, want %u", started, cpus - 1);
    for (u32 i = 0; i < n; i++) {
        if (ids[i] == self) continue;
        int found = 0;
        for (u32 k = 0; k < started; k++) found += seen_id[k] == ids[i] + 1;
        if (found != 1) fail("APIC id %u reported %d times", ids[i], found);
    }
    pass();
}
