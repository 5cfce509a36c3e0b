/*
 * virtiorng: drive a virtio-rng PCI device through the modern (virtio 1.x) PCI interface,
 * with completion interrupts by MSI-X.
 *
 * Command line: "[requests=R] [poll]" (default 100 requests; poll: spin instead of hlt).
 *
 * Finds 1af4:1005 (transitional) or 1af4:1044 (modern) on bus 0, walks the capability list for
 * the virtio vendor capabilities (common, notify, ISR, device config) and MSI-X, maps the BARs
 * they name (a 64-bit BAR placed above 4 GiB is moved to 0xfe000000 with decoding off, since
 * this kernel runs without paging), enables memory decode and bus mastering, and initialises
 * the device as in virtio 1.x section 3.1 with VIRTIO_F_VERSION_1 as the only driver feature.
 * Queue 0 is a split virtqueue of min(queue_size, 16) entries in one static 4 KiB page.
 * MSI-X table entry 0 sends vector 0x41 to APIC ID 0; queue 0 uses MSI-X vector 0, the config
 * change interrupt none. Each of R requests posts one device-writable 64-byte buffer, kicks
 * the notify register and waits (sti; hlt, the LAPIC timer as a 10 ms wake-up so a lost
 * interrupt cannot stop the CPU for good; plain polling if that timer never ticks) for the used
 * ring and then for the interrupt. Passes when every request completed with 1-64 bytes, the
 * handler ran exactly R times, and the bytes were not all zero.
 */
#include "../lib/lib.h"
#include "../lib/idt.h"

#define VENDOR 0x1af4
#define MSI_VECTOR 0x41
#define TIMER_VECTOR 0x42
#define QMAX 16
#define BUFLEN 64
#define NEW_BAR_BASE 0xfe000000u

/* virtio_pci_common_cfg offsets */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_MSIX 0x10
#define C_NUMQ 0x12
#define C_STATUS 0x14
#define C_Q_SELECT 0x16
#define C_Q_SIZE 0x18
#define C_Q_MSIX 0x1a
#define C_Q_ENABLE 0x1c
#define C_Q_NOFF 0x1e
#define C_Q_DESC 0x20
#define C_Q_AVAIL 0x28
#define C_Q_USED 0x30

#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 0x80

struct vq_desc { u64 addr; u32 len; u16 flags, next; };
#define VIRTQ_DESC_F_WRITE 2

/* Descriptor table at 0, avail ring at 256, used ring at 512 of one page. */
static u8 vq_page[4096] __attribute__((aligned(4096)));
static u8 bufs[QMAX][BUFLEN] __attribute__((aligned(64)));
#define DESC ((volatile struct vq_desc *)vq_page)
#define AVAIL ((volatile u16 *)(vq_page + 256))          /* flags, idx, ring[N], used_event */
#define USED ((volatile u8 *)(vq_page + 512))            /* flags, idx, {id, len}[N], avail_event */
#define USED_IDX (*(volatile u16 *)(USED + 2))
#define USED_ID(i) (*(volatile u32 *)(USED + 4 + 8 * (i)))
#define USED_LEN(i) (*(volatile u32 *)(USED + 8 + 8 * (i)))

static volatile u32 msix_hits, timer_ticks;
static int use_hlt;
static u32 bdf;
static u32 bar_base[6];   /* 32-bit address of each memory BAR once mapped, 0 otherwise */

static void msix_handler(struct irq_frame *f) { (void)f; msix_hits++; lapic_write(0xb0, 0); }
static void timer_handler(struct irq_frame *f) { (void)f; timer_ticks++; lapic_write(0xb0, 0); }
static void ignore(struct irq_frame *f) { (void)f; }

/* About 1.5 s at this host's 2.6 GHz TSC. */
#define TIMEOUT_CYCLES 4000000000ull

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

/* A 32-bit memory BAR of another bus-0 function starts inside [base, base+size). */
static int bar_conflict(u32 base, u32 size) {
    for (u32 dev = 0; dev < 32; dev++)
        for (u32 fn = 0; fn < 8; fn++) {
            u32 b = PCI_BDF(0, dev, fn);
            u32 id = pci_read32(b, 0);
            if ((id & 0xffff) == 0xffff) { if (fn == 0) break; continue; }
            if (b != bdf && (pci_read8(b, 0x0e) & 0x7f) == 0)
                for (u32 i = 0; i < 6; i++) {
                    u32 v = pci_read32(b, 0x10 + 4 * i);
                    if (v & 1) continue;
                    u32 hi = ((v >> 1) & 3) == 2 ? pci_read32(b, 0x14 + 4 * i) : 0;
                    u32 a = v & ~0xfu;
                    if (((v >> 1) & 3) == 2) i++;
                    if (hi == 0 && a >= base && a - base < size) return 1;
                }
            if (fn == 0 && !(pci_read8(b, 0x0e) & 0x80)) break;
        }
    return 0;
}

/* Returns the 32-bit address of memory BAR n, moving a 64-bit BAR from above 4 GiB. */
static u32 map_bar(u32 n) {
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
        if (bar_conflict(base, (u32)size)) fail("BAR%u: %x is taken by another device", n, base);
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

void kmain(void) {
    test_name = "virtiorng";
    u32 requests = (u32)cmdline_uint("requests", 100);
    if (requests == 0 || requests > 1000000) fail("requests=%u out of range", requests);

    /* ---- find the device ---- */
    int found = pci_find(VENDOR, 0x1005);
    if (found < 0) found = pci_find(VENDOR, 0x1044);
    if (found < 0) fail("no virtio-rng (1af4:1005 or 1af4:1044) on bus 0");
    bdf = (u32)found;
    u16 devid = pci_read16(bdf, 2);
    printf("virtio-rng at 00:%02x.%x id 1af4:%04x\n", (bdf >> 3) & 31, bdf & 7, devid);

    /* ---- capabilities ---- */
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
    if (!msix) fail("no MSI-X capability");
    if (common.len < 0x38) fail("common configuration only %u bytes", common.len);
    u16 msgctl = pci_read16(bdf, msix + 2);
    u32 table = pci_read32(bdf, msix + 4);
    u32 tbir = table & 7, toff = table & ~7u;
    printf("caps common=%u+0x%x notify=%u+0x%x mult=%u isr=%u+0x%x device=%u+0x%x msix=%u+0x%x\n",
           common.bar, common.off, notify.bar, notify.off, mult, isr.bar, isr.off,
           device.bar, device.off, tbir, toff);

    /* ---- BARs, command register ---- */
    u32 cmn = map_bar(common.bar) + common.off;
    u32 ntf = map_bar(notify.bar) + notify.off;
    map_bar(isr.bar);
    map_bar(device.bar);
    u32 mtab = map_bar(tbir) + toff;
    pci_write16(bdf, 4, (u16)(pci_read16(bdf, 4) | 0x6));   /* memory decode, bus master */
    if ((pci_read16(bdf, 4) & 6) != 6) fail("command register %x", pci_read16(bdf, 4));

    /* ---- interrupts: IDT, 8259 remapped and masked, LAPIC, MSI-X entry 0 ---- */
    idt_init();
    pic_init(0x20);                            /* SeaBIOS's IRQ0 must not land on vector 8 */
    idt_set_handler(0xff, ignore);             /* LAPIC spurious */
    idt_set_handler(0x27, ignore);             /* 8259 spurious */
    idt_set_handler(0x2f, ignore);
    idt_set_handler(MSI_VECTOR, msix_handler);
    idt_set_handler(TIMER_VECTOR, timer_handler);
    lapic_write(0xf0, 0x1ff);                  /* SVR: software enable, spurious 0xff */
    lapic_write(0x80, 0);                      /* TPR */
    if ((msgctl & 0x7ff) < 1) fail("MSI-X table size %u", (msgctl & 0x7ff) + 1);
    mmio_write32(mtab + 0, 0xfee00000u);       /* destination APIC ID 0, physical */
    mmio_write32(mtab + 4, 0);
    mmio_write32(mtab + 8, MSI_VECTOR);        /* fixed, edge */
    mmio_write32(mtab + 12, 0);                /* unmasked */
    pci_write16(bdf, msix + 2, (u16)((msgctl | 0x8000) & ~0x4000));
    if ((pci_read16(bdf, msix + 2) & 0xc000) != 0x8000) fail("MSI-X control %x", pci_read16(bdf, msix + 2));

    /* LAPIC timer, periodic, as the hlt wake-up (10 ms when the APIC bus runs at 1 GHz). */
    lapic_write(0x3e0, 0xb);                   /* divide by 1 */
    lapic_write(0x320, TIMER_VECTOR | (1u << 17));
    lapic_write(0x380, 10000000);
    sti();
    for (u64 t0 = rdtsc(); timer_ticks < 2 && rdtsc() - t0 < TIMEOUT_CYCLES; ) cpu_relax();
    use_hlt = timer_ticks >= 2 && !cmdline_has("poll");
    if (timer_ticks < 2) printf("LAPIC timer did not tick: polling instead of hlt\n");

    /* ---- virtio initialisation (3.1.1) ---- */
    mmio_write8(cmn + C_STATUS, 0);
    u64 t0 = rdtsc();
    while (mmio_read8(cmn + C_STATUS) != 0)
        if (rdtsc() - t0 > TIMEOUT_CYCLES) fail("reset: status stays %x", mmio_read8(cmn + C_STATUS));
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE);
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER);
    mmio_write32(cmn + C_DFSELECT, 1);
    u32 f_hi = mmio_read32(cmn + C_DF);
    if (!(f_hi & 1)) fail("device does not offer VIRTIO_F_VERSION_1 (features[63:32] %x)", f_hi);
    mmio_write32(cmn + C_GFSELECT, 0);
    mmio_write32(cmn + C_GF, 0);
    mmio_write32(cmn + C_GFSELECT, 1);
    mmio_write32(cmn + C_GF, 1);               /* VERSION_1 only */
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    u8 st = mmio_read8(cmn + C_STATUS);
    if (!(st & S_FEATURES_OK)) { mmio_write8(cmn + C_STATUS, st | S_FAILED); fail("FEATURES_OK not accepted (status %x)", st); }
    if (mmio_read16(cmn + C_NUMQ) < 1) fail("device has no queues");

    mmio_write16(cmn + C_Q_SELECT, 0);
    u16 qsize = mmio_read16(cmn + C_Q_SIZE);
    if (qsize == 0) fail("queue 0 not available (size 0)");
    if (mmio_read16(cmn + C_Q_ENABLE)) fail("queue 0 already enabled after reset");
    u16 n = qsize < QMAX ? qsize : QMAX;
    if (n & (n - 1)) fail("queue size %u not a power of 2", n);
    printf("queue size %u\n", n);
    mmio_write16(cmn + C_Q_SIZE, n);
    memset(vq_page, 0, sizeof vq_page);
    mmio_write32(cmn + C_Q_DESC, (u32)(uintptr_t)DESC);
    mmio_write32(cmn + C_Q_DESC + 4, 0);
    mmio_write32(cmn + C_Q_AVAIL, (u32)(uintptr_t)AVAIL);
    mmio_write32(cmn + C_Q_AVAIL + 4, 0);
    mmio_write32(cmn + C_Q_USED, (u32)(uintptr_t)USED);
    mmio_write32(cmn + C_Q_USED + 4, 0);
    mmio_write16(cmn + C_Q_MSIX, 0);
    u16 qv = mmio_read16(cmn + C_Q_MSIX);
    if (qv != 0) fail("queue_msix_vector reads %x after writing 0", qv);
    mmio_write16(cmn + C_MSIX, 0xffff);
    u16 noff = mmio_read16(cmn + C_Q_NOFF);
    u32 kick = ntf + (u32)noff * mult;
    if ((u32)noff * mult + 2 > notify.len) fail("notify offset %u * %u beyond the %u-byte notify region", noff, mult, notify.len);
    mmio_write16(cmn + C_Q_ENABLE, 1);
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    st = mmio_read8(cmn + C_STATUS);
    if (st & 0x40) fail("device needs reset (status %x)", st);

    /* ---- requests ---- */
    u16 avail_idx = 0, used_seen = 0;
    u32 used_count = 0;
    u64 bytes = 0;
    u8 any = 0;
    u32 hits0 = msix_hits;
    if (hits0) fail("%u MSI-X interrupts before the first request", hits0);
    u64 c0 = rdtsc_ordered();
    for (u32 r = 1; r <= requests; r++) {
        u16 d = (u16)(avail_idx % n);
        memset(bufs[d], 0, BUFLEN);
        DESC[d].addr = (u32)(uintptr_t)bufs[d];
        DESC[d].len = BUFLEN;
        DESC[d].flags = VIRTQ_DESC_F_WRITE;
        DESC[d].next = 0;
        AVAIL[2 + avail_idx % n] = d;
        barrier();
        avail_idx++;
        AVAIL[1] = avail_idx;                   /* x86 keeps stores in order */
        __asm__ volatile("mfence" ::: "memory"); /* idx visible before the notify write */
        mmio_write16(kick, 0);
        wait_idx_target = avail_idx;
        if (!wait_for(used_reached, TIMEOUT_CYCLES)) {
            cli();
            fail("request %u: used idx stays %u (avail %u, interrupts %u)", r, USED_IDX, avail_idx, msix_hits);
        }
        while (used_seen != USED_IDX) {
            u32 slot = used_seen % n, id = USED_ID(slot), len = USED_LEN(slot);
            used_seen++;
            used_count++;
            if (id != d) { cli(); fail("request %u: used id %u, posted %u", r, id, d); }
            if (len == 0 || len > BUFLEN) { cli(); fail("request %u: used length %u", r, len); }
            bytes += len;
            for (u32 i = 0; i < len; i++) any |= bufs[d][i];
        }
        wait_hits_target = r;
        if (!wait_for(hits_reached, TIMEOUT_CYCLES)) {
            cli();
            fail("request %u: no MSI-X interrupt (%u so far)", r, msix_hits);
        }
    }
    u64 c1 = rdtsc_ordered();
    /* Let a stray extra interrupt show up before counting. */
    for (u64 t = rdtsc(); rdtsc() - t < 10000000ull; ) cpu_relax();
    cli();
    lapic_write(0x320, 1u << 16);               /* timer masked */
    u32 hits = msix_hits;
    printf("requests %u used %u interrupts %u bytes %llu\n", requests, used_count, hits, bytes);
    printf("cycles_per_request=%llu\n", (c1 - c0) / requests);
    mmio_write8(cmn + C_STATUS, 0);             /* reset: the device stops using our memory */
    if (used_count != requests) fail("%u used for %u requests", used_count, requests);
    if (hits != requests) fail("%u interrupts for %u requests", hits, requests);
    if (!any) fail("all %llu random bytes are zero", bytes);
    pass();
}
