/* ACPI table discovery (RSDP in the BIOS area, RSDT walk) and the PM timer. */
#include "lib.h"

u8 acpi_sum(const void *p, u32 len) {
    const u8 *b = p;
    u8 s = 0;
    while (len--) s = (u8)(s + *b++);
    return s;
}

/* The RSDP sits on a 16-byte boundary in 0xe0000-0xfffff (the EBDA is not searched: QEMU's
   SeaBIOS puts it in the F segment). */
struct acpi_rsdp *acpi_find_rsdp(void) {
    for (uintptr_t a = 0xe0000; a < 0x100000; a += 16) {
        struct acpi_rsdp *r = (struct acpi_rsdp *)a;
        if (!memcmp(r->sig, "RSD PTR ", 8) && acpi_sum(r, 20) == 0) return r;
    }
    return NULL;
}

struct acpi_sdt *acpi_find_table(const char *sig) {
    struct acpi_rsdp *r = acpi_find_rsdp();
    if (!r || !r->rsdt) return NULL;
    struct acpi_sdt *rsdt = (struct acpi_sdt *)(uintptr_t)r->rsdt;
    u32 n = (rsdt->length - sizeof *rsdt) / 4;
    u32 *entries = (u32 *)(rsdt + 1);
    for (u32 i = 0; i < n; i++) {
        struct acpi_sdt *t = (struct acpi_sdt *)(uintptr_t)entries[i];
        if (!memcmp(t->sig, sig, 4)) return t;
    }
    return NULL;
}

u16 acpi_pm_timer_port(void) {
    struct acpi_sdt *fadt = acpi_find_table("FACP");
    if (!fadt || fadt->length < 80) return 0;
    return (u16)*(u32 *)((u8 *)fadt + 76);     /* PM_TMR_BLK */
}

u32 pm_timer_read(u16 port) { return inl(port) & 0xffffff; }

void udelay(u32 us) {
    static u16 port;
    static int looked;
    if (!looked) { port = acpi_pm_timer_port(); looked = 1; }
    if (!port) {
        /* Each port 0x80 access takes about a microsecond on real hardware and longer
           as a VM exit, so this waits at least as long as asked. */
        while (us--) (void)inb(0x80);
        return;
    }
    u64 ticks = (u64)us * PM_TIMER_HZ / 1000000 + 1, waited = 0;
    u32 last = pm_timer_read(port);
    while (waited < ticks) {
        u32 now = pm_timer_read(port);
        waited += (now - last) & 0xffffff;      /* 24-bit wrap */
        last = now;
        cpu_relax();
    }
}
