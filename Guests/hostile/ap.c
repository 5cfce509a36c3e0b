/*
 * ap.c: one application processor as a second attacker.
 *
 * The BSP starts the first other processor of the MADT with INIT, SIPI, SIPI (the shared
 * lib/trampoline.S brings it to ap_main() in protected mode). The AP then sleeps (sti; hlt)
 * until the BSP posts a job and sends an IPI, runs the job, reports its operation count and
 * sleeps again. Jobs touch only what the BSP leaves alone at that moment: PCI configuration
 * space (0xcf8 is one shared register) belongs to the AP while a job runs.
 */
#include "hostile.h"

#define TRAMPOLINE 0x8000u

extern const u8 tramp_start[], tramp_end[];
u32 ap_count;
volatile u32 ap_ops;
volatile u32 ap_stop;
static u32 ap_apic_id;
static volatile u32 ap_alive, ap_phase, ap_done;
static struct ap_cmd ap_cmd;
static u8 ap_buf[4096] __attribute__((aligned(4096)));

void ap_main(u32 index);
void ap_main(u32 index) {
    if (index != 0) for (;;) __asm__ volatile("cli; hlt");   /* only the first AP attacks */
    interrupts_ap();
    __atomic_store_n(&ap_alive, 1, __ATOMIC_SEQ_CST);
    u32 seen = 0;
    for (;;) {
        cli();
        while (ap_phase == seen) __asm__ volatile("sti; hlt; cli" ::: "memory");
        sti();
        seen = ap_phase;
        struct ap_cmd c = ap_cmd;
        struct rnd r;
        rnd_seed(&r, c.seed, 0xa9);
        u32 ops = 0;
        switch (c.job) {
        case AP_PORTS: ops = storm_ports(&r, c.count, ap_buf); break;
        case AP_MSIX: ops = storm_msix(&r, c.dev, c.entry, c.count, 1); break;
        case AP_MSIX_DATA: ops = storm_msix_data(&r, c.dev, c.entry, c.count); break;
        case AP_LOCKSTEP: ops = lockstep_write(c.addr, c.value, c.count); break;
        case AP_BARS: ops = storm_bars(&r, c.dev, c.spare, c.count); break;
        case AP_FWCFG: ops = storm_fwcfg(&r, c.count, ap_buf); break;
        default: break;
        }
        ap_ops = ops;
        __atomic_store_n(&ap_done, seen, __ATOMIC_SEQ_CST);
    }
}

static void ipi(u32 dest, u32 low) {
    lapic_write(0x310, dest << 24);
    lapic_write(0x300, low);
    for (u32 i = 0; i < 1000000 && (lapic_read(0x300) & (1u << 12)); i++) cpu_relax();
}

void ap_start_all(void) {
    struct acpi_sdt *madt = acpi_find_table("APIC");
    if (!madt) { printf("hostile: no MADT, no AP\n"); return; }
    u32 self = lapic_read(0x20) >> 24;
    int found = 0;
    for (u8 *p = (u8 *)madt + 44; p < (u8 *)madt + madt->length && p[1]; p += p[1])
        if (p[0] == 0 && (*(u32 *)(p + 4) & 1) && p[3] != self) { ap_apic_id = p[3]; found = 1; break; }
    if (!found) return;
    memcpy((void *)TRAMPOLINE, tramp_start, (u32)(tramp_end - tramp_start));
    ipi(ap_apic_id, 0x4500);                            /* INIT */
    udelay(10000);
    for (int k = 0; k < 2 && !ap_alive; k++) {
        ipi(ap_apic_id, 0x4600 | (TRAMPOLINE >> 12)); /* STARTUP */
        udelay(200);
    }
    for (u64 t = deadline_ms(2000); !ap_alive && !past(t);) cpu_relax();
    ap_count = ap_alive ? 1 : 0;
}

void ap_run(const struct ap_cmd *c) {
    if (!ap_count) return;
    ap_cmd = *c;
    ap_stop = 0;
    __atomic_store_n(&ap_phase, ap_phase + 1, __ATOMIC_SEQ_CST);
    ipi(ap_apic_id, V_IPI);
}

int ap_wait(u32 ms) {
    if (!ap_count) return 1;
    __atomic_store_n(&ap_stop, 1, __ATOMIC_SEQ_CST);
    u64 t = deadline_ms(ms), again = deadline_ms(50);
    while (__atomic_load_n(&ap_done, __ATOMIC_SEQ_CST) != ap_phase) {
        if (past(t)) return 0;
        if (past(again)) { ipi(ap_apic_id, V_IPI); again = deadline_ms(50); }
        cpu_relax();
    }
    return 1;
}

int ap_finished(void) { return !ap_count || __atomic_load_n(&ap_done, __ATOMIC_SEQ_CST) == ap_phase; }
