/*
 * virtioblk: drive a virtio-blk PCI device through the modern (virtio 1.x) PCI interface, with
 * completion interrupts by MSI-X. Transport code (capability walk, BAR mapping, MSI-X, LAPIC
 * timer wake-up, waits with timeouts) is the same as tests/virtiorng.c.
 *
 * Command line: "sectors=N [poll]" - N is the disk size in 512-byte sectors (required).
 *
 * Finds 1af4:1001 (transitional) or 1af4:1042 (modern) on bus 0, negotiates VIRTIO_F_VERSION_1
 * plus VIRTIO_BLK_F_FLUSH (bit 9) when offered, reads the capacity from the device config and
 * checks it against sectors=. Queue 0 has min(queue_size, 16) entries; every request is a
 * descriptor chain header (16 bytes, device-readable) [-> data] -> status (1 byte, writable),
 * submitted one at a time and completed by used ring + MSI-X interrupt (vector 0x41).
 * Sequence: read sector 0 (must start "SWIFTVMM-DISK-SECTOR0"), write + read back sector 5,
 * write + read back sectors 100-101 in one request each, flush (if negotiated), read sector N
 * (must give VIRTIO_BLK_S_IOERR), GET_ID (status printed only). Passes when interrupts ==
 * requests.
 */
#include "../lib/lib.h"
#include "../lib/idt.h"

#define VENDOR 0x1af4
#define MSI_VECTOR 0x41
#define TIMER_VECTOR 0x42
#define QMAX 16
#define NEW_BAR_BASE 0xfe000000u

/* virtio_pci_common_cfg offsets */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_MSIX 0x10
#define C_NUMQ 0x12
#define C_STATUS 0x14
#define C_CFGGEN 0x15
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
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

/* Descriptor table at 0, avail ring at 256, used ring at 512 of one page. */
static u8 vq_page[4096] __attribute__((aligned(4096)));
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

#define VIRTIO_BLK_F_FLUSH (1u << 9)
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define SIG "SWIFTVMM-DISK-SECTOR0"

struct blk_hdr { u32 type, reserved; u64 sector; };

static struct blk_hdr hdr __attribute__((aligned(16)));
static u8 data[1024] __attribute__((aligned(512)));
static volatile u8 status_byte __attribute__((aligned(16)));
static u32 cmn, kick;
static u16 qn, avail_idx, used_seen;
static u32 requests_done;

/* Submits one request and waits for its used entry and its interrupt. The chain starts at a
   different descriptor each time (slots of 3) so the used id is a real check. Returns the
   status byte; *used_len gets the used-ring length. */
static u8 blk_req(const char *what, u32 type, u64 sector, u32 len, int writable, u32 *used_len) {
    u16 slots = (u16)(qn / 3);
    u16 head = (u16)((requests_done % slots) * 3), d = head;
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status_byte = 0xff;
    DESC[d].addr = (u32)(uintptr_t)&hdr;
    DESC[d].len = sizeof hdr;
    DESC[d].flags = VIRTQ_DESC_F_NEXT;
    DESC[d].next = (u16)(d + 1);
    d++;
    if (len) {
        DESC[d].addr = (u32)(uintptr_t)data;
        DESC[d].len = len;
        DESC[d].flags = (u16)(VIRTQ_DESC_F_NEXT | (writable ? VIRTQ_DESC_F_WRITE : 0));
        DESC[d].next = (u16)(d + 1);
        d++;
    }
    DESC[d].addr = (u32)(uintptr_t)&status_byte;
    DESC[d].len = 1;
    DESC[d].flags = VIRTQ_DESC_F_WRITE;
    DESC[d].next = 0;
    AVAIL[2 + avail_idx % qn] = head;
    barrier();
    avail_idx++;
    AVAIL[1] = avail_idx;
    __asm__ volatile("mfence" ::: "memory");
    mmio_write16(kick, 0);
    requests_done++;
    wait_idx_target = avail_idx;
    if (!wait_for(used_reached, TIMEOUT_CYCLES)) {
        cli();
        fail("%s: used idx stays %u (avail %u, interrupts %u)", what, USED_IDX, avail_idx, msix_hits);
    }
    if ((u16)(USED_IDX - used_seen) != 1) { cli(); fail("%s: used idx %u, expected %u", what, USED_IDX, (u16)(used_seen + 1)); }
    u32 slot = used_seen % qn, id = USED_ID(slot);
    *used_len = USED_LEN(slot);
    used_seen++;
    if (id != head) { cli(); fail("%s: used id %u, posted %u", what, id, head); }
    wait_hits_target = requests_done;
    if (!wait_for(hits_reached, TIMEOUT_CYCLES)) {
        cli();
        fail("%s: no MSI-X interrupt (%u for %u requests)", what, msix_hits, requests_done);
    }
    barrier();
    return status_byte;
}

static u8 pattern5(u32 i) { return (u8)((i * 7 + 3) & 0xff); }
static u8 pattern100(u32 i) { return (u8)((i * 13 + 0x5a + (i >> 9)) & 0xff); }

void kmain(void) {
    test_name = "virtioblk";
    if (!cmdline_has("sectors")) fail("sectors= missing from the command line");
    u64 sectors = cmdline_uint("sectors", 0);
    if (sectors < 102) fail("sectors=%llu: need at least 102", sectors);

    /* ---- find the device ---- */
    int found = pci_find(VENDOR, 0x1001);
    if (found < 0) found = pci_find(VENDOR, 0x1042);
    if (found < 0) fail("no virtio-blk (1af4:1001 or 1af4:1042) on bus 0");
    bdf = (u32)found;
    u16 devid = pci_read16(bdf, 2);
    printf("virtio-blk at 00:%02x.%x id 1af4:%04x\n", (bdf >> 3) & 31, bdf & 7, devid);

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
        if (c.bar > 5) continue;
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
    if (device.len < 8) fail("device configuration only %u bytes", device.len);
    u16 msgctl = pci_read16(bdf, msix + 2);
    u32 table = pci_read32(bdf, msix + 4);
    u32 tbir = table & 7, toff = table & ~7u;
    printf("caps common=%u+0x%x notify=%u+0x%x mult=%u isr=%u+0x%x device=%u+0x%x msix=%u+0x%x\n",
           common.bar, common.off, notify.bar, notify.off, mult, isr.bar, isr.off,
           device.bar, device.off, tbir, toff);

    /* ---- BARs, command register ---- */
    cmn = map_bar(common.bar) + common.off;
    u32 ntf = map_bar(notify.bar) + notify.off;
    map_bar(isr.bar);
    u32 dcfg = map_bar(device.bar) + device.off;
    u32 mtab = map_bar(tbir) + toff;
    pci_write16(bdf, 4, (u16)(pci_read16(bdf, 4) | 0x6));   /* memory decode, bus master */
    if ((pci_read16(bdf, 4) & 6) != 6) fail("command register %x", pci_read16(bdf, 4));

    /* ---- interrupts: IDT, 8259 remapped and masked, LAPIC, MSI-X entry 0 ---- */
    idt_init();
    pic_init(0x20);
    idt_set_handler(0xff, ignore);
    idt_set_handler(0x27, ignore);
    idt_set_handler(0x2f, ignore);
    idt_set_handler(MSI_VECTOR, msix_handler);
    idt_set_handler(TIMER_VECTOR, timer_handler);
    lapic_write(0xf0, 0x1ff);
    lapic_write(0x80, 0);
    mmio_write32(mtab + 0, 0xfee00000u);
    mmio_write32(mtab + 4, 0);
    mmio_write32(mtab + 8, MSI_VECTOR);
    mmio_write32(mtab + 12, 0);
    pci_write16(bdf, msix + 2, (u16)((msgctl | 0x8000) & ~0x4000));
    if ((pci_read16(bdf, msix + 2) & 0xc000) != 0x8000) fail("MSI-X control %x", pci_read16(bdf, msix + 2));

    lapic_write(0x3e0, 0xb);
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
    mmio_write32(cmn + C_DFSELECT, 0);
    u32 f_lo = mmio_read32(cmn + C_DF);
    mmio_write32(cmn + C_DFSELECT, 1);
    u32 f_hi = mmio_read32(cmn + C_DF);
    printf("features 0x%x\n", f_lo);
    if (!(f_hi & 1)) fail("device does not offer VIRTIO_F_VERSION_1 (features[63:32] %x)", f_hi);
    u32 drv_lo = f_lo & VIRTIO_BLK_F_FLUSH;
    mmio_write32(cmn + C_GFSELECT, 0);
    mmio_write32(cmn + C_GF, drv_lo);
    mmio_write32(cmn + C_GFSELECT, 1);
    mmio_write32(cmn + C_GF, 1);
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    u8 st = mmio_read8(cmn + C_STATUS);
    if (!(st & S_FEATURES_OK)) { mmio_write8(cmn + C_STATUS, st | S_FAILED); fail("FEATURES_OK not accepted (status %x)", st); }
    if (mmio_read16(cmn + C_NUMQ) < 1) fail("device has no queues");

    /* capacity: le64 at device config 0, read as two dwords under config_generation */
    u64 capacity = 0;
    for (int tries = 0;; tries++) {
        u8 g0 = mmio_read8(cmn + C_CFGGEN);
        u32 lo = mmio_read32(dcfg), hi = mmio_read32(dcfg + 4);
        u8 g1 = mmio_read8(cmn + C_CFGGEN);
        capacity = ((u64)hi << 32) | lo;
        if (g0 == g1) break;
        if (tries > 100) fail("config_generation keeps changing");
    }
    printf("capacity %llu sectors\n", capacity);
    if (capacity != sectors) fail("capacity %llu, sectors=%llu", capacity, sectors);

    mmio_write16(cmn + C_Q_SELECT, 0);
    u16 qsize = mmio_read16(cmn + C_Q_SIZE);
    if (qsize == 0) fail("queue 0 not available (size 0)");
    if (mmio_read16(cmn + C_Q_ENABLE)) fail("queue 0 already enabled after reset");
    qn = qsize < QMAX ? qsize : QMAX;
    if (qn & (qn - 1)) fail("queue size %u not a power of 2", qn);
    if (qn < 4) fail("queue size %u too small for 3-descriptor chains", qn);
    printf("queue size %u\n", qn);
    mmio_write16(cmn + C_Q_SIZE, qn);
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
    kick = ntf + (u32)noff * mult;
    if ((u32)noff * mult + 2 > notify.len) fail("notify offset %u * %u beyond the %u-byte notify region", noff, mult, notify.len);
    mmio_write16(cmn + C_Q_ENABLE, 1);
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    st = mmio_read8(cmn + C_STATUS);
    if (st & 0x40) fail("device needs reset (status %x)", st);
    if (msix_hits) fail("%u MSI-X interrupts before the first request", msix_hits);

    /* ---- requests ---- */
    u32 ul_r1, ul_rb, ul_w1, ul_r2, ul_w2, ul_fl = 0, ul_pe, ul_id;
    u8 s;

    memset(data, 0, sizeof data);
    s = blk_req("read 0", T_IN, 0, 512, 1, &ul_r1);
    if (s != S_OK) fail("read 0: status %u", s);
    if (memcmp(data, SIG, sizeof SIG - 1)) {
        char got[sizeof SIG];
        for (u32 i = 0; i < sizeof SIG - 1; i++) got[i] = data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : '.';
        got[sizeof SIG - 1] = 0;
        fail("read 0: sector starts \"%s\"", got);
    }
    printf("read 0 ok \"%s\"\n", SIG);

    for (u32 i = 0; i < 512; i++) data[i] = pattern5(i);
    s = blk_req("write 5", T_OUT, 5, 512, 0, &ul_w1);
    if (s != S_OK) fail("write 5: status %u", s);
    printf("write 5 ok\n");
    memset(data, 0, sizeof data);
    s = blk_req("readback 5", T_IN, 5, 512, 1, &ul_rb);
    if (s != S_OK) fail("readback 5: status %u", s);
    for (u32 i = 0; i < 512; i++)
        if (data[i] != pattern5(i)) fail("readback 5: byte %u is %02x, wrote %02x", i, data[i], pattern5(i));
    printf("readback 5 ok\n");

    for (u32 i = 0; i < 1024; i++) data[i] = pattern100(i);
    s = blk_req("write 100+2", T_OUT, 100, 1024, 0, &ul_w2);
    if (s != S_OK) fail("write 100+2: status %u", s);
    printf("write 100+2 ok\n");
    memset(data, 0, sizeof data);
    s = blk_req("readback 100+2", T_IN, 100, 1024, 1, &ul_r2);
    if (s != S_OK) fail("readback 100+2: status %u", s);
    for (u32 i = 0; i < 1024; i++)
        if (data[i] != pattern100(i)) fail("readback 100+2: byte %u is %02x, wrote %02x", i, data[i], pattern100(i));
    printf("readback 100+2 ok\n");

    if (drv_lo & VIRTIO_BLK_F_FLUSH) {
        s = blk_req("flush", T_FLUSH, 0, 0, 0, &ul_fl);
        if (s != S_OK) fail("flush: status %u", s);
        printf("flush ok\n");
    } else {
        printf("flush not offered\n");
    }

    s = blk_req("read past end", T_IN, sectors, 512, 1, &ul_pe);
    printf("read past end status %u\n", s);
    if (s != S_IOERR) fail("read of sector %llu (past the end): status %u, expected %u", sectors, s, S_IOERR);

    memset(data, 0, sizeof data);
    s = blk_req("get-id", T_GET_ID, 0, 20, 1, &ul_id);
    char idstr[21];
    for (u32 i = 0; i < 20; i++) idstr[i] = data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : (data[i] ? '.' : 0);
    idstr[20] = 0;
    printf("get-id status %u id \"%s\"\n", s, idstr);

    printf("used lengths: read %u write %u readback %u write2 %u readback2 %u flush %u past-end %u get-id %u\n",
           ul_r1, ul_w1, ul_rb, ul_w2, ul_r2, ul_fl, ul_pe, ul_id);

    /* Let a stray extra interrupt show up before counting. */
    for (u64 t = rdtsc(); rdtsc() - t < 10000000ull; ) cpu_relax();
    cli();
    lapic_write(0x320, 1u << 16);
    u32 hits = msix_hits;
    printf("requests %u interrupts %u\n", requests_done, hits);
    mmio_write8(cmn + C_STATUS, 0);
    if (hits != requests_done) fail("%u interrupts for %u requests", hits, requests_done);
    pass();
}
