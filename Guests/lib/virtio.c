/* virtio.c: see virtio.h. */
#include "virtio.h"
#include "idt.h"

#define VENDOR 0x1af4
#define NEW_BAR_BASE 0xfe000000u

u8 vq_page[4096] __attribute__((aligned(4096)));
u8 *vq_ring = vq_page;
volatile u32 msix_hits, intx_spurious;
static volatile u32 timer_ticks;
static int use_hlt;
static u32 bar_base[6];   /* 32-bit address of each memory BAR once mapped, 0 otherwise */
static u32 isr_addr;      /* the ISR byte, read by the INTx handler */
static u32 hits_at_begin; /* completion interrupts when the last initialisation began */

static void msix_handler(struct irq_frame *f) { (void)f; msix_hits++; lapic_write(0xb0, 0); }
/* INTx: reading the ISR returns and clears it, which lowers the line (virtio 1.x 4.1.4.5). */
static void intx_handler(struct irq_frame *f) {
    (void)f;
    u8 isr = mmio_read8(isr_addr);
    if (isr & 1) msix_hits++;
    else if (!isr) intx_spurious++;
    lapic_write(0xb0, 0);
}
static void timer_handler(struct irq_frame *f) { (void)f; timer_ticks++; lapic_write(0xb0, 0); }
static void ignore(struct irq_frame *f) { (void)f; }

static volatile u16 wait_idx_target;
static int used_reached(void) { return (u16)(USED_IDX - wait_idx_target) < 0x8000; }
static volatile u32 wait_hits_target;
static int hits_reached(void) { return msix_hits >= wait_hits_target; }

/* Waits with interrupts enabled until cond() holds; 0 on timeout. With hlt: cli before the
   check and "sti; hlt" after it, so an interrupt that lands in between still ends the hlt. */
static int wait_for(int (*cond)(void), u64 timeout) {
    u64 start = rdtsc();
    for (;;) {
        if (use_hlt) cli();
        if (cond()) { sti(); return 1; }
        if (rdtsc() - start > timeout) { sti(); return 0; }
        if (use_hlt) __asm__ volatile("sti; hlt" ::: "memory");
        else cpu_relax();             /* interrupts stay enabled throughout */
    }
}

int virtio_wait_used(struct virtio_pci *v) { wait_idx_target = v->avail_idx; return wait_for(used_reached, VIO_TIMEOUT); }
int virtio_wait_interrupts(u32 n) { wait_hits_target = n; return wait_for(hits_reached, VIO_TIMEOUT); }

/* A 32-bit memory BAR of another bus-0 function starts inside [base, base+size). */
static int bar_conflict(u32 self, u32 base, u32 size) {
    for (u32 dev = 0; dev < 32; dev++)
        for (u32 fn = 0; fn < 8; fn++) {
            u32 b = PCI_BDF(0, dev, fn);
            u32 id = pci_read32(b, 0);
            if ((id & 0xffff) == 0xffff) { if (fn == 0) break; continue; }
            if (b != self && (pci_read8(b, 0x0e) & 0x7f) == 0)
                for (u32 i = 0; i < 6; i++) {
                    u32 val = pci_read32(b, 0x10 + 4 * i);
                    if (val & 1) continue;
                    u32 hi = ((val >> 1) & 3) == 2 ? pci_read32(b, 0x14 + 4 * i) : 0;
                    u32 a = val & ~0xfu;
                    if (((val >> 1) & 3) == 2) i++;
                    if (hi == 0 && a >= base && a - base < size) return 1;
                }
            if (fn == 0 && !(pci_read8(b, 0x0e) & 0x80)) break;
        }
    return 0;
}

/* Returns the 32-bit address of memory BAR n, moving a 64-bit BAR from above 4 GiB. */
static u32 map_bar(u32 bdf, u32 n) {
    if (n > 5) fail("capability names BAR%u", n);
    if (bar_base[n]) return bar_base[n];
    u32 reg = 0x10 + 4 * n;
    u32 lo = pci_read32(bdf, reg);
    if (lo & 1) fail("BAR%u is an I/O BAR (%x)", n, lo);
    int is64 = ((lo >> 1) & 3) == 2;
    u32 hi = is64 ? pci_read32(bdf, reg + 4) : 0;
    if (is64 && n == 5) fail("64-bit BAR5");
    u64 addr = ((u64)hi << 32) | (lo & ~0xfu);
    if (addr == 0) fail("BAR%u not assigned", n);
    if (hi != 0) {
        u16 cmd = pci_read16(bdf, 4);
        pci_write16(bdf, 4, (u16)(cmd & ~7u));      /* decoding off while sizing and moving */
        pci_write32(bdf, reg, 0xffffffffu);
        pci_write32(bdf, reg + 4, 0xffffffffu);
        u64 mask = ((u64)pci_read32(bdf, reg + 4) << 32) | (pci_read32(bdf, reg) & ~0xfu);
        u64 size = ~mask + 1;
        if (size == 0 || size > 0x1000000 || (size & (size - 1)))
            fail("BAR%u size mask %llx", n, mask);
        u32 base = NEW_BAR_BASE;
        if (bar_conflict(bdf, base, (u32)size)) fail("BAR%u: %x is taken by another device", n, base);
        pci_write32(bdf, reg, base | (lo & 0xf));
        pci_write32(bdf, reg + 4, 0);
        pci_write16(bdf, 4, cmd);
        u32 now = pci_read32(bdf, reg) & ~0xfu;
        printf("BAR%u moved from %llx to %x (%llu bytes)\n", n, addr, now, size);
        if (now != base || pci_read32(bdf, reg + 4) != 0) fail("BAR%u did not take %x", n, base);
        addr = base;
    }
    bar_base[n] = (u32)addr;
    return (u32)addr;
}

struct vcap { int found; u32 bar, off, len; };

static void find(struct virtio_pci *v, u16 transitional_id, u16 modern_id, const char *name, int need_msix) {
    memset(v, 0, sizeof *v);
    int found = pci_find(VENDOR, transitional_id);
    if (found < 0) found = pci_find(VENDOR, modern_id);
    if (found < 0) fail("no %s (1af4:%04x or 1af4:%04x) on bus 0", name, transitional_id, modern_id);
    u32 bdf = v->bdf = (u32)found;
    v->devid = pci_read16(bdf, 2);
    printf("%s at 00:%02x.%x id 1af4:%04x\n", name, (bdf >> 3) & 31, bdf & 7, v->devid);

    if (!(pci_read16(bdf, 6) & 0x10)) fail("status register has no capability list");
    struct vcap common = {0}, notify = {0}, isr = {0}, device = {0};
    u32 mult = 0, msix = 0;
    u8 ptr = pci_read8(bdf, 0x34) & 0xfc;
    for (int guard = 0; ptr && guard < 48; guard++, ptr = pci_read8(bdf, ptr + 1) & 0xfc) {
        u8 id = pci_read8(bdf, ptr);
        if (id == 0x11) { if (!msix) msix = ptr; continue; }
        if (id != 0x09) continue;
        u8 type = pci_read8(bdf, ptr + 3);
        struct vcap c = { 1, pci_read8(bdf, ptr + 4), pci_read32(bdf, ptr + 8), pci_read32(bdf, ptr + 12) };
        if (c.bar > 5) continue;            /* spec: ignore capabilities with a reserved BAR */
        /* the first capability of each type is the preferred one */
        if (type == 1 && !common.found) common = c;
        else if (type == 2 && !notify.found) { notify = c; mult = pci_read32(bdf, ptr + 16); }
        else if (type == 3 && !isr.found) isr = c;
        else if (type == 4 && !device.found) device = c;
    }
    if (!common.found) fail("no common configuration capability");
    if (!notify.found) fail("no notify capability");
    if (!isr.found) fail("no ISR capability");
    if (!device.found) fail("no device configuration capability");
    if (!msix && need_msix) fail("no MSI-X capability");
    if (common.len < 0x38) fail("common configuration only %u bytes", common.len);
    u32 table = msix ? pci_read32(bdf, msix + 4) : 0, pba = msix ? pci_read32(bdf, msix + 8) : 0;
    u32 tbir = table & 7, toff = table & ~7u;
    printf("caps common=%u+0x%x notify=%u+0x%x mult=%u isr=%u+0x%x device=%u+0x%x",
           common.bar, common.off, notify.bar, notify.off, mult, isr.bar, isr.off, device.bar, device.off);
    if (msix) printf(" msix=%u+0x%x\n", tbir, toff);
    else printf(" msix=none\n");

    v->common = map_bar(bdf, common.bar) + common.off;
    v->notify = map_bar(bdf, notify.bar) + notify.off;
    v->isr = map_bar(bdf, isr.bar) + isr.off;
    v->device = map_bar(bdf, device.bar) + device.off;
    v->notify_len = notify.len;
    v->mult = mult;
    v->msix = msix;
    if (msix) {
        v->msix_table = map_bar(bdf, tbir) + toff;
        v->msix_pba = map_bar(bdf, pba & 7) + (pba & ~7u);
    }
    pci_write16(bdf, 4, (u16)(pci_read16(bdf, 4) | 0x6));   /* memory decode, bus master */
    if ((pci_read16(bdf, 4) & 6) != 6) fail("command register %x", pci_read16(bdf, 4));
}

void virtio_find(struct virtio_pci *v, u16 transitional_id, u16 modern_id, const char *name) {
    find(v, transitional_id, modern_id, name, 1);
}

void virtio_find_any(struct virtio_pci *v, u16 transitional_id, u16 modern_id, const char *name) {
    find(v, transitional_id, modern_id, name, 0);
}

void virtio_msix_entry(struct virtio_pci *v, u32 n, u8 vector, int masked) {
    u32 e = v->msix_table + 16 * n;
    mmio_write32(e + 0, 0xfee00000u);          /* destination APIC ID 0, physical */
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vector);               /* fixed, edge */
    mmio_write32(e + 12, masked ? 1 : 0);
}

u16 virtio_msix_control(struct virtio_pci *v) { return pci_read16(v->bdf, v->msix + 2); }
void virtio_set_msix_control(struct virtio_pci *v, u16 control) { pci_write16(v->bdf, v->msix + 2, control); }

/* Routes ISA IRQ `irq` through the IOAPIC to `vector` on this CPU, with the MADT override's
   GSI, trigger mode and polarity (ISA default: same GSI, edge, active high); 8259 masked. */
static void ioapic_route(u8 irq, u8 vector) {
    u32 gsi = irq, flags = 0;
    struct acpi_sdt *madt = acpi_find_table("APIC");
    for (u8 *p = madt ? (u8 *)madt + 44 : NULL; p && p < (u8 *)madt + madt->length && p[1]; p += p[1])
        if (p[0] == 2 && p[3] == irq) { gsi = *(u32 *)(p + 4); flags = *(u16 *)(p + 8); }
    int level = (flags & 0xc) == 0xc, low = (flags & 3) == 3;
    printf("INTx: irq %u -> gsi %u, %s-triggered, active %s\n", irq, gsi, level ? "level" : "edge", low ? "low" : "high");
    mmio_write32(0xfec00000u, 0x10 + 2 * gsi + 1);
    mmio_write32(0xfec00010u, (lapic_read(0x20) >> 24) << 24);
    mmio_write32(0xfec00000u, 0x10 + 2 * gsi);
    mmio_write32(0xfec00010u, vector | (low ? 1u << 13 : 0) | (level ? 1u << 15 : 0));
}

void virtio_interrupts(struct virtio_pci *v) {
    idt_init();
    pic_init(0x20);                            /* SeaBIOS's IRQ0 must not land on vector 8 */
    idt_set_handler(0xff, ignore);             /* LAPIC spurious */
    idt_set_handler(0x27, ignore);             /* 8259 spurious */
    idt_set_handler(0x2f, ignore);
    idt_set_handler(VIO_MSI_VECTOR, msix_handler);
    idt_set_handler(VIO_TIMER_VECTOR, timer_handler);
    lapic_write(0xf0, 0x1ff);                  /* SVR: software enable, spurious 0xff */
    lapic_write(0x80, 0);                      /* TPR */
    if (!v->msix) v->intx = 1;
    if (v->intx) {
        if (v->msix && (virtio_msix_control(v) & 0x8000)) fail("MSI-X enabled before the driver enabled it");
        u8 pin = pci_read8(v->bdf, 0x3d), irq = pci_read8(v->bdf, 0x3c);
        printf("INTx: pin %c line %u\n", pin ? 'A' + pin - 1 : '-', irq);
        if (!pin || irq == 0 || irq >= 16) fail("no usable INTx (pin %u line %u)", pin, irq);
        v->irq = irq;
        isr_addr = v->isr;
        idt_set_handler(VIO_MSI_VECTOR, intx_handler);
        ioapic_route(irq, VIO_MSI_VECTOR);
    } else {
        u16 msgctl = virtio_msix_control(v);
        if ((msgctl & 0x7ff) < 1) fail("MSI-X table size %u", (msgctl & 0x7ff) + 1);
        virtio_msix_entry(v, 0, VIO_MSI_VECTOR, 0);
        virtio_set_msix_control(v, (u16)((msgctl | 0x8000) & ~0x4000));
        if ((virtio_msix_control(v) & 0xc000) != 0x8000) fail("MSI-X control %x", virtio_msix_control(v));
    }

    /* LAPIC timer, periodic, as the hlt wake-up (10 ms when the APIC bus runs at 1 GHz). */
    lapic_write(0x3e0, 0xb);                   /* divide by 1 */
    lapic_write(0x320, VIO_TIMER_VECTOR | (1u << 17));
    lapic_write(0x380, 10000000);
    sti();
    for (u64 t0 = rdtsc(); timer_ticks < 2 && rdtsc() - t0 < VIO_TIMEOUT; ) cpu_relax();
    use_hlt = timer_ticks >= 2 && !cmdline_has("poll");
    if (timer_ticks < 2) printf("LAPIC timer did not tick: polling instead of hlt\n");
}

u32 virtio_begin(struct virtio_pci *v) {
    u32 cmn = v->common;
    hits_at_begin = msix_hits;
    mmio_write8(cmn + C_STATUS, 0);
    u64 t0 = rdtsc();
    while (mmio_read8(cmn + C_STATUS) != 0)
        if (rdtsc() - t0 > VIO_TIMEOUT) fail("reset: status stays %x", mmio_read8(cmn + C_STATUS));
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE);
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER);
    mmio_write32(cmn + C_DFSELECT, 0);
    u32 f_lo = mmio_read32(cmn + C_DF);
    mmio_write32(cmn + C_DFSELECT, 1);
    u32 f_hi = mmio_read32(cmn + C_DF);
    if (!(f_hi & 1)) fail("device does not offer VIRTIO_F_VERSION_1 (features[63:32] %x)", f_hi);
    return f_lo;
}

void virtio_features_ok(struct virtio_pci *v, u32 driver_lo) {
    u32 cmn = v->common;
    v->event_idx = (driver_lo >> VIRTIO_F_EVENT_IDX) & 1;
    mmio_write32(cmn + C_GFSELECT, 0);
    mmio_write32(cmn + C_GF, driver_lo);
    mmio_write32(cmn + C_GFSELECT, 1);
    mmio_write32(cmn + C_GF, 1);               /* VERSION_1 */
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    u8 st = mmio_read8(cmn + C_STATUS);
    if (!(st & S_FEATURES_OK)) { mmio_write8(cmn + C_STATUS, st | S_FAILED); fail("FEATURES_OK not accepted (status %x)", st); }
    if (mmio_read16(cmn + C_NUMQ) < 1) fail("device has no queues");
}

void virtio_queue0(struct virtio_pci *v, u16 min_size) { virtio_queue0_vector(v, min_size, v->intx ? 0xffff : 0); }

void virtio_queue0_vector(struct virtio_pci *v, u16 min_size, u16 vector) {
    u32 cmn = v->common;
    mmio_write16(cmn + C_Q_SELECT, 0);
    u16 qsize = mmio_read16(cmn + C_Q_SIZE);
    if (qsize == 0) fail("queue 0 not available (size 0)");
    if (mmio_read16(cmn + C_Q_ENABLE)) fail("queue 0 already enabled after reset");
    u16 n = qsize < VIO_QMAX ? qsize : VIO_QMAX;
    if (n & (n - 1)) fail("queue size %u not a power of 2", n);
    if (n < min_size) fail("queue size %u too small (need %u)", n, min_size);
    printf("queue size %u\n", n);
    v->qn = n;
    mmio_write16(cmn + C_Q_SIZE, n);
    memset(vq_page, 0, sizeof vq_page);
    mmio_write32(cmn + C_Q_DESC, (u32)(uintptr_t)DESC);
    mmio_write32(cmn + C_Q_DESC + 4, 0);
    mmio_write32(cmn + C_Q_AVAIL, (u32)(uintptr_t)AVAIL);
    mmio_write32(cmn + C_Q_AVAIL + 4, 0);
    mmio_write32(cmn + C_Q_USED, (u32)(uintptr_t)USED);
    mmio_write32(cmn + C_Q_USED + 4, 0);
    /* Without an MSI-X capability every vector reads back as NO_VECTOR (0xffff). */
    mmio_write16(cmn + C_Q_MSIX, v->msix ? vector : 0);
    u16 qv = mmio_read16(cmn + C_Q_MSIX), want = v->msix ? vector : 0xffff;
    if (!v->msix) printf("queue_msix_vector reads %x after writing 0 (no MSI-X)\n", qv);
    if (qv != want) fail("queue_msix_vector reads %x after writing %x", qv, v->msix ? vector : 0);
    mmio_write16(cmn + C_MSIX, 0xffff);
    u16 noff = mmio_read16(cmn + C_Q_NOFF);
    if ((u32)noff * v->mult + 2 > v->notify_len)
        fail("notify offset %u * %u beyond the %u-byte notify region", noff, v->mult, v->notify_len);
    v->kick = v->notify + (u32)noff * v->mult;
    mmio_write16(cmn + C_Q_ENABLE, 1);
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    u8 st = mmio_read8(cmn + C_STATUS);
    if (st & 0x40) fail("device needs reset (status %x)", st);
    if (msix_hits != hits_at_begin) fail("%u MSI-X interrupts before the first request", msix_hits - hits_at_begin);
}

void virtio_submit(struct virtio_pci *v, u16 head) {
    AVAIL[2 + v->avail_idx % v->qn] = head;
    if (v->event_idx) USED_EVENT(v) = v->used_seen;   /* interrupt when the next entry is used */
    barrier();
    u16 old = v->avail_idx;
    v->avail_idx++;
    AVAIL[1] = v->avail_idx;                    /* x86 keeps stores in order */
    __asm__ volatile("mfence" ::: "memory");    /* idx visible before the notify write */
    /* With EVENT_IDX, kick only when avail_event lies in [old, new): vring_need_event(). */
    if (v->event_idx && (u16)(v->avail_idx - AVAIL_EVENT(v) - 1) >= (u16)(v->avail_idx - old)) return;
    v->kicks++;
    mmio_write16(v->kick, 0);
}

void virtio_quiesce(void) {
    for (u64 t = rdtsc(); rdtsc() - t < 10000000ull; ) cpu_relax();
    cli();
    lapic_write(0x320, 1u << 16);               /* timer masked */
}
