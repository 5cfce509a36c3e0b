/*
 * msixstorm: two vCPUs hammer one MSI-X entry and the MSI-X message control of a virtio-rng
 * PCI device at the same time; afterwards the device must still complete a request with its
 * MSI-X interrupt, and a round must cost no more at the end than at the start.
 *
 * Command line: "[rounds=N] [sync]" (default 100000 rounds; N from 2 to 10000000).
 * Needs "-smp 2 -device virtio-rng-pci".
 *
 * Set-up is virtiorng's (lib/virtio.c): the device found on bus 0, its BARs mapped, MSI-X
 * table entry 0 sending vector 0x41 to APIC ID 0, MSI-X enabled, queue 0 on vector 0, DRIVER_OK.
 * The application processor is started from the MADT as the smp kernel does (INIT, SIPI, SIPI,
 * lib/trampoline.S). Then both CPUs run N rounds each, released together; one round is
 *   entry 0: mask, address low/high, data (alternately vector 0x41 and 0x43), unmask;
 *   message control: Enable + Function Mask, then 0 (disabled), then Enable;
 * all through the same MMIO addresses and the same 0xcf8 value on both CPUs, so the CPUs race
 * only inside the device model. The BSP times its rounds with rdtsc and prints the average
 * cycles per round over the first and over the last min(1000, N/2) rounds (for the README; no
 * verdict depends on them). The BSP then restores entry 0 (0x41, unmasked) and Enable, checks
 * that no MSI-X interrupt arrived during the storm (the device had no request), sends one
 * virtio-rng request and passes when it completes with exactly one interrupt on vector 0x41.
 *
 * With "sync" the kernel prints "storm: ready" before the storm and "storm: done" after
 * restoring the state, and after each waits for one byte on COM1 (a test harness counts the
 * VMM's resources at those two points).
 */
#include "../lib/virtio.h"

/* Hang guard for the storm phases, which take long by design (minutes at 10 M rounds). */
#define STORM_GUARD_CYCLES 400000000000ull

#define TRAMPOLINE 0x8000u
#define MAX_CPUS 64
#define WINDOW_MAX 1000u
#define OTHER_VECTOR 0x43

extern const u8 tramp_start[], tramp_end[];

static struct virtio_pci dev;
static u32 msix_ctl;                     /* config offset of the message control register */
static u32 table, pba;                   /* MSI-X table and pending-bit array addresses */
static u32 rounds;
static volatile u32 ap_up, go, ap_done;
static volatile u32 stray_hits;
static u8 buf[64] __attribute__((aligned(64)));

static void stray_handler(struct irq_frame *f) { (void)f; stray_hits++; lapic_write(0xb0, 0); }

static void round_once(u32 r) {
    mmio_write32(table + 12, 1);                         /* mask before reprogramming */
    mmio_write32(table + 0, 0xfee00000u);
    mmio_write32(table + 4, 0);
    mmio_write32(table + 8, (r & 1) ? OTHER_VECTOR : VIO_MSI_VECTOR);
    mmio_write32(table + 12, 0);
    pci_write16(dev.bdf, msix_ctl, 0xc000);              /* enable + function mask */
    pci_write16(dev.bdf, msix_ctl, 0x0000);              /* disabled */
    pci_write16(dev.bdf, msix_ctl, 0x8000);              /* enabled */
}

void ap_main(u32 index);
void ap_main(u32 index) {
    (void)index;
    __atomic_store_n(&ap_up, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST)) cpu_relax();
    for (u32 r = 0; r < rounds; r++) round_once(r);
    __atomic_store_n(&ap_done, 1, __ATOMIC_SEQ_CST);
}

static void icr_send(u32 dest, u32 low) {
    lapic_write(0x310, dest << 24);
    lapic_write(0x300, low);
    for (u32 i = 0; i < 1000000 && (lapic_read(0x300) & (1u << 12)); i++) cpu_relax();
}

/* Starts the one application processor the MADT lists besides this CPU. */
static void start_ap(void) {
    struct acpi_sdt *madt = acpi_find_table("APIC");
    if (!madt) fail("no MADT");
    u32 ids[MAX_CPUS], n = 0;
    for (u8 *p = (u8 *)madt + 44; p < (u8 *)madt + madt->length && p[1]; p += p[1])
        if (p[0] == 0 && (*(u32 *)(p + 4) & 1) && n < MAX_CPUS) ids[n++] = p[3];
    if (n != 2) fail("%u enabled processors in the MADT; run with -smp 2", n);
    u32 self = lapic_read(0x20) >> 24, other = ids[0] == self ? ids[1] : ids[0];
    memcpy((void *)TRAMPOLINE, tramp_start, (u32)(tramp_end - tramp_start));
    icr_send(other, 0x4500);                             /* INIT */
    udelay(10000);
    for (int k = 0; k < 2; k++) { icr_send(other, 0x4600 | (TRAMPOLINE >> 12)); udelay(200); }
    for (u32 ms = 0; ms < 1000 && !__atomic_load_n(&ap_up, __ATOMIC_SEQ_CST); ms++) udelay(1000);
    if (!ap_up) fail("the application processor (APIC ID %u) did not start", other);
    printf("cpus 2 (BSP %u, AP %u)\n", self, other);
}

/* Finds the MSI-X capability; the table's BAR (the PBA's too) was mapped below 4 GiB by
   virtio_find(). */
static void find_msix(void) {
    u8 ptr = pci_read8(dev.bdf, 0x34) & 0xfc;
    for (int guard = 0; ptr && guard < 48; guard++, ptr = pci_read8(dev.bdf, ptr + 1) & 0xfc)
        if (pci_read8(dev.bdf, ptr) == 0x11) break;
    if (!ptr || pci_read8(dev.bdf, ptr) != 0x11) fail("no MSI-X capability");
    msix_ctl = ptr + 2u;
    u32 t = pci_read32(dev.bdf, ptr + 4u), bir = t & 7;
    u32 p = pci_read32(dev.bdf, ptr + 8u);
    if (bir > 5 || (p & 7) != bir) fail("MSI-X table in BAR%u, PBA in BAR%u", bir, p & 7);
    u32 lo = pci_read32(dev.bdf, 0x10 + 4 * bir);
    if (((lo >> 1) & 3) == 2 && pci_read32(dev.bdf, 0x14 + 4 * bir) != 0) fail("MSI-X BAR%u above 4 GiB", bir);
    table = (lo & ~0xfu) + (t & ~7u);
    pba = (lo & ~0xfu) + (p & ~7u);
}

static void wait_byte(const char *what) {
    printf("storm: %s\n", what);
    for (u64 t0 = rdtsc(); !(inb(0x3fd) & 1); cpu_relax())
        if (rdtsc() - t0 > STORM_GUARD_CYCLES) fail("no byte on COM1 after \"storm: %s\"", what);
    (void)inb(0x3f8);
}

void kmain(void) {
    test_name = "msixstorm";
    rounds = (u32)cmdline_uint("rounds", 100000);
    if (rounds < 2 || rounds > 10000000) fail("rounds=%u out of range (2-10000000)", rounds);
    u32 window = rounds / 2 < WINDOW_MAX ? rounds / 2 : WINDOW_MAX;
    int sync = cmdline_has("sync");

    virtio_find(&dev, 0x1005, 0x1044, "virtio-rng");
    virtio_interrupts(&dev);
    idt_set_handler(OTHER_VECTOR, stray_handler);
    virtio_begin(&dev);
    virtio_features_ok(&dev, 0);
    virtio_queue0(&dev, 1);
    find_msix();
    start_ap();

    if (sync) wait_byte("ready");
    printf("storm: %u rounds on each of 2 CPUs\n", rounds);
    u64 t0 = 0, t1 = 0, t2 = 0, t3;
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    t0 = rdtsc_ordered();
    for (u32 r = 0; r < rounds; r++) {
        if (r == window) t1 = rdtsc_ordered();
        if (r == rounds - window) t2 = rdtsc_ordered();
        round_once(r);
    }
    t3 = rdtsc_ordered();
    for (u64 w = rdtsc(); !__atomic_load_n(&ap_done, __ATOMIC_SEQ_CST); cpu_relax())
        if (rdtsc() - w > STORM_GUARD_CYCLES) fail("the AP did not finish its rounds");
    printf("cycles_per_round first=%llu last=%llu (over %u rounds each)\n",
           (t1 - t0) / window, (t3 - t2) / window, window);

    /* Back to the set-up state: entry 0 -> 0x41 unmasked, MSI-X enabled, not function-masked. */
    mmio_write32(table + 12, 1);
    mmio_write32(table + 0, 0xfee00000u);
    mmio_write32(table + 4, 0);
    mmio_write32(table + 8, VIO_MSI_VECTOR);
    mmio_write32(table + 12, 0);
    pci_write16(dev.bdf, msix_ctl, 0x8000);
    u16 ctl = pci_read16(dev.bdf, msix_ctl);
    if ((ctl & 0xc000) != 0x8000) fail("MSI-X control %x after the storm", ctl);
    if (mmio_read32(table + 8) != VIO_MSI_VECTOR || (mmio_read32(table + 12) & 1))
        fail("entry 0 reads data %x control %x", mmio_read32(table + 8), mmio_read32(table + 12));
    if (mmio_read32(pba) & 1) fail("vector 0 pending after the storm");
    if (msix_hits || stray_hits) fail("%u + %u MSI-X interrupts during the storm", msix_hits, stray_hits);
    printf("storm: state restored, no interrupts\n");
    if (sync) wait_byte("done");

    memset(buf, 0, sizeof buf);
    DESC[0].addr = (u32)(uintptr_t)buf;
    DESC[0].len = sizeof buf;
    DESC[0].flags = VIRTQ_DESC_F_WRITE;
    DESC[0].next = 0;
    virtio_submit(&dev, 0);
    if (!virtio_wait_used(&dev)) { cli(); fail("request: used idx stays %u", USED_IDX); }
    u32 len = USED_LEN(0);
    if (USED_ID(0) != 0 || len == 0 || len > sizeof buf) { cli(); fail("used id %u len %u", USED_ID(0), len); }
    if (!virtio_wait_interrupts(1)) { cli(); fail("request completed without its MSI-X interrupt"); }
    virtio_quiesce();
    printf("request: %u bytes, interrupts %u on vector 0x%x, %u elsewhere\n", len, msix_hits, VIO_MSI_VECTOR, stray_hits);
    mmio_write8(dev.common + C_STATUS, 0);
    if (msix_hits != 1 || stray_hits) fail("%u interrupts on 0x41 and %u on 0x43 for one request", msix_hits, stray_hits);
    pass();
}
