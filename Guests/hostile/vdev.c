/*
 * vdev.c: the virtio 1.x modern PCI transport for several devices at once (the shared
 * lib/virtio.c drives one device with global state), plus the good requests every attack ends
 * with: a reset device must serve them.
 */
#include "hostile.h"

#define VENDOR 0x1af4

struct vdev rng = { .name = "rng", .cfg_vec = V_RNG_CFG, .vq_vec = V_RNG_VQ };
struct vdev blk = { .name = "blk", .cfg_vec = V_BLK_CFG, .vq_vec = V_BLK_VQ };

static u8 rng_pages[3][4096] __attribute__((aligned(4096)));
static u8 blk_pages[3][4096] __attribute__((aligned(4096)));
static u8 rng_buf[64] __attribute__((aligned(64)));
static struct blk_hdr blk_hdr __attribute__((aligned(16)));
static u8 blk_data[512] __attribute__((aligned(512)));
static volatile u8 blk_status __attribute__((aligned(16)));

u32 request_ms = 5000;

static u32 bar_addr(struct vdev *d, u32 n) { return d->bar[n] & ~0xfu; }

void vdev_find(struct vdev *d, u16 transitional, u16 modern) {
    int found = pci_find(VENDOR, transitional);
    if (found < 0) found = pci_find(VENDOR, modern);
    if (found < 0) { d->present = 0; printf("hostile: no virtio-%s\n", d->name); return; }
    u32 bdf = d->bdf = (u32)found;
    d->present = 1;
    d->devid = pci_read16(bdf, 2);
    d->command = (u16)(pci_read16(bdf, 4) | 0x6);        /* memory decode, bus master */
    pci_write16(bdf, 4, (u16)(d->command & ~7u));          /* decoding off while sizing */
    for (u32 i = 0; i < 6; i++) {
        u32 reg = 0x10 + 4 * i;
        u32 lo = pci_read32(bdf, reg);
        d->bar[i] = lo;
        d->bar_is64[i] = !(lo & 1) && ((lo >> 1) & 3) == 2;
        u32 hi = d->bar_is64[i] ? pci_read32(bdf, reg + 4) : 0;
        pci_write32(bdf, reg, 0xffffffffu);
        u32 mask = pci_read32(bdf, reg) & (lo & 1 ? ~3u : ~0xfu);
        pci_write32(bdf, reg, lo);
        d->bar_size[i] = mask ? ~mask + 1 : 0;
        if (d->bar_is64[i]) {
            if (hi) fail("virtio-%s BAR%u above 4 GiB (%x%08x): run with -m 128M", d->name, i, hi, lo);
            i++;                                          /* the upper half is not a BAR */
            d->bar[i] = 0;
            d->bar_size[i] = 0;
        }
    }
    pci_write16(bdf, 4, d->command);

    u8 ptr = pci_read8(bdf, 0x34) & 0xfc;
    for (int guard = 0; ptr && guard < 48; guard++, ptr = pci_read8(bdf, ptr + 1) & 0xfc) {
        u8 id = pci_read8(bdf, ptr);
        if (id == 0x11) { if (!d->msix_cap) d->msix_cap = ptr; continue; }
        if (id != 0x09) continue;
        u8 type = pci_read8(bdf, ptr + 3);
        struct vcap c = { 1, pci_read8(bdf, ptr + 4), pci_read32(bdf, ptr + 8), pci_read32(bdf, ptr + 12) };
        if (c.bar > 5) continue;
        if (type == 1 && !d->common_cap.found) d->common_cap = c;
        else if (type == 2 && !d->notify_cap.found) { d->notify_cap = c; d->mult = pci_read32(bdf, ptr + 16); }
        else if (type == 3 && !d->isr_cap.found) d->isr_cap = c;
        else if (type == 4 && !d->device_cap.found) d->device_cap = c;
    }
    if (!d->common_cap.found || !d->notify_cap.found || !d->isr_cap.found || !d->device_cap.found || !d->msix_cap)
        fail("virtio-%s: missing capabilities", d->name);
    u32 table = pci_read32(bdf, d->msix_cap + 4), pba = pci_read32(bdf, d->msix_cap + 8);
    d->table_bir = table & 7; d->table_off = table & ~7u;
    d->pba_bir = pba & 7; d->pba_off = pba & ~7u;
    d->msix_entries = (u16)((pci_read16(bdf, d->msix_cap + 2) & 0x7ff) + 1);
    if (d->msix_entries < 2) fail("virtio-%s: %u MSI-X entries", d->name, d->msix_entries);
    u32 bars[] = { d->common_cap.bar, d->notify_cap.bar, d->isr_cap.bar, d->device_cap.bar, d->table_bir, d->pba_bir };
    for (u32 i = 0; i < ARRAY_SIZE(bars); i++)
        if (bars[i] > 5 || !bar_addr(d, bars[i]) || (d->bar[bars[i]] & 1))
            fail("virtio-%s: BAR%u unassigned or not memory (%x)", d->name, bars[i], d->bar[bars[i]]);
    u8 (*pages)[4096] = d == &rng ? rng_pages : blk_pages;
    d->desc = (volatile struct vq_desc *)pages[0];
    d->avail = (volatile u16 *)pages[1];
    d->used = (volatile u8 *)pages[2];
    vdev_restore_pci(d);
    c_write16(d, C_Q_SELECT, 0);
    d->qmax = c_read16(d, C_Q_SIZE);
    d->qn = d->qmax < QMAX ? d->qmax : QMAX;
    if (!d->qn || (d->qn & (d->qn - 1))) fail("virtio-%s: queue 0 size %u", d->name, d->qmax);
    printf("hostile: virtio-%s at 00:%02x.%x id 1af4:%04x queue %u msix %u BAR%u %x BAR%u %x\n", d->name,
           (bdf >> 3) & 31, bdf & 7, d->devid, d->qmax, d->msix_entries,
           d->table_bir, bar_addr(d, d->table_bir), d->common_cap.bar, bar_addr(d, d->common_cap.bar));
}

static void msix_entry(struct vdev *d, u32 i, u32 vector, int masked) {
    u32 e = d->msix_table + 16 * i;
    mmio_write32(e + 12, 1);
    mmio_write32(e + 0, 0xfee00000u);                /* physical, APIC ID 0 (the BSP) */
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vector);                     /* fixed, edge */
    mmio_write32(e + 12, masked ? 1 : 0);
}

void vdev_restore_pci(struct vdev *d) {
    u32 bdf = d->bdf;
    pci_write16(bdf, 4, 0);
    for (u32 i = 0; i < 6; i++) {
        pci_write32(bdf, 0x10 + 4 * i, d->bar[i]);
        if (d->bar_is64[i]) { pci_write32(bdf, 0x14 + 4 * i, 0); i++; }
    }
    pci_write16(bdf, 4, d->command);
    d->common = bar_addr(d, d->common_cap.bar) + d->common_cap.off;
    d->notify = bar_addr(d, d->notify_cap.bar) + d->notify_cap.off;
    d->isr = bar_addr(d, d->isr_cap.bar) + d->isr_cap.off;
    d->devcfg = bar_addr(d, d->device_cap.bar) + d->device_cap.off;
    d->msix_table = bar_addr(d, d->table_bir) + d->table_off;
    d->msix_pba = bar_addr(d, d->pba_bir) + d->pba_off;
    /* Enable with the function masked, program the entries, then unmask the function. */
    pci_write16(bdf, d->msix_cap + 2, 0xc000);
    for (u32 i = 0; i < d->msix_entries && i < 64; i++)
        msix_entry(d, i, i == 0 ? d->cfg_vec : i == 1 ? d->vq_vec : 0x30, i > 1);
    pci_write16(bdf, d->msix_cap + 2, 0x8000);
}

void vdev_msix_off(struct vdev *d) { pci_write16(d->bdf, d->msix_cap + 2, 0); }

int vdev_reset(struct vdev *d) {
    c_write8(d, C_STATUS, 0);
    for (u64 t = deadline_ms(1000); c_read8(d, C_STATUS) != 0;)
        if (past(t)) return 0;
    d->avail_idx = d->used_seen = 0;
    return 1;
}

void vdev_add_status(struct vdev *d, u8 bits) { c_write8(d, C_STATUS, (u8)(c_read8(d, C_STATUS) | bits)); }

int vdev_features(struct vdev *d, u32 want_lo) {
    vdev_add_status(d, S_ACK);
    vdev_add_status(d, S_DRIVER);
    c_write32(d, C_DFSELECT, 0);
    u32 lo = c_read32(d, C_DF);
    c_write32(d, C_DFSELECT, 1);
    u32 hi = c_read32(d, C_DF);
    if (!(hi & 1)) return 0;
    c_write32(d, C_GFSELECT, 0);
    c_write32(d, C_GF, lo & want_lo);
    c_write32(d, C_GFSELECT, 1);
    c_write32(d, C_GF, 1);                            /* VERSION_1 */
    vdev_add_status(d, S_FEATURES_OK);
    return (c_read8(d, C_STATUS) & S_FEATURES_OK) != 0;
}

void vdev_queue(struct vdev *d, u16 qn, u64 desc, u64 avail, u64 used) {
    c_write16(d, C_Q_SELECT, 0);
    c_write16(d, C_Q_SIZE, qn);
    c_write64(d, C_Q_DESC, desc);
    c_write64(d, C_Q_AVAIL, avail);
    c_write64(d, C_Q_USED, used);
    c_write16(d, C_MSIX, 0);                          /* config changes: entry 0 */
    c_write16(d, C_Q_MSIX, 1);                        /* queue 0: entry 1 */
    d->kick = d->notify + (u32)c_read16(d, C_Q_NOFF) * d->mult;
    d->avail_idx = d->used_seen = 0;
    c_write16(d, C_Q_ENABLE, 1);
}

int vdev_setup(struct vdev *d, u32 want_lo) {
    if (!vdev_reset(d)) return 0;
    if (!vdev_features(d, want_lo)) return 0;
    memset((void *)d->desc, 0, 4096);
    memset((void *)d->avail, 0, 4096);
    memset((void *)d->used, 0, 4096);
    vdev_queue(d, d->qn, (u32)d->desc, (u32)d->avail, (u32)d->used);
    vdev_add_status(d, S_DRIVER_OK);
    return (c_read8(d, C_STATUS) & (S_NEEDS_RESET | S_DRIVER_OK)) == S_DRIVER_OK;
}

void vdev_kick(struct vdev *d) {
    __asm__ volatile("mfence" ::: "memory");
    mmio_write16(d->kick, 0);
}

void vdev_submit(struct vdev *d, u16 head) {
    d->avail[2 + d->avail_idx % d->qn] = head;
    barrier();
    d->avail_idx++;
    d->avail[1] = d->avail_idx;
    vdev_kick(d);
}

int vdev_wait_used(struct vdev *d, u32 ms) {
    for (u64 t = deadline_ms(ms); used_idx(d) != d->avail_idx;)
        if (past(t)) return 0;
        else cpu_relax();
    return 1;
}

int wait_vector(u8 vec, u32 before, u32 ms) {
    for (u64 t = deadline_ms(ms); vector_hits[vec] == before;)
        if (past(t)) return 0;
        else cpu_relax();
    return 1;
}

/* Checks the next used entry: id, and the length within [min, max]. */
static int take_used(struct vdev *d, u16 head, u32 min, u32 max, u32 *len, char *why, u32 n) {
    u32 slot = d->used_seen % d->qn, id = used_id(d, slot);
    *len = used_len(d, slot);
    d->used_seen++;
    if (id != head) { snprint(why, n, "used id %u, posted %u", id, head); return 0; }
    if (*len < min || *len > max) { snprint(why, n, "used len %u not in %u..%u", *len, min, max); return 0; }
    return 1;
}

int rng_good(struct vdev *d, char *why, u32 n) {
    u16 head = (u16)(d->avail_idx % d->qn);
    memset(rng_buf, 0, sizeof rng_buf);
    d->desc[head].addr = (u32)rng_buf;
    d->desc[head].len = sizeof rng_buf;
    d->desc[head].flags = F_WRITE;
    d->desc[head].next = 0;
    u32 before = vector_hits[d->vq_vec];
    vdev_submit(d, head);
    if (!vdev_wait_used(d, request_ms)) { snprint(why, n, "no used entry in %u ms (used idx %u, status %x)", request_ms, used_idx(d), c_read8(d, C_STATUS)); return 0; }
    u32 len;
    if (!take_used(d, head, 1, sizeof rng_buf, &len, why, n)) return 0;
    if (!wait_vector(d->vq_vec, before, 2000)) { snprint(why, n, "served but no interrupt on vector %x", d->vq_vec); return 0; }
    u32 nonzero = 0;
    for (u32 i = 0; i < len; i++) nonzero |= rng_buf[i];
    if (len >= 8 && !nonzero) { snprint(why, n, "%u random bytes all zero", len); return 0; }
    return 1;
}

/* One request hdr -> [data] -> status, at descriptors head..head+2. */
static int blk_req(struct vdev *d, u32 type, u64 sector, int with_data, int writable, u8 *status, u32 *len,
                   char *why, u32 n) {
    u16 slots = (u16)(d->qn / 3);
    u16 head = (u16)((d->avail_idx % slots) * 3), i = head;
    blk_hdr.type = type;
    blk_hdr.reserved = 0;
    blk_hdr.sector = sector;
    blk_status = 0xff;
    d->desc[i] = (struct vq_desc){ (u32)&blk_hdr, sizeof blk_hdr, F_NEXT, (u16)(i + 1) };
    i++;
    if (with_data) {
        d->desc[i] = (struct vq_desc){ (u32)blk_data, sizeof blk_data, (u16)(F_NEXT | (writable ? F_WRITE : 0)), (u16)(i + 1) };
        i++;
    }
    d->desc[i] = (struct vq_desc){ (u32)&blk_status, 1, F_WRITE, 0 };
    u32 before = vector_hits[d->vq_vec];
    vdev_submit(d, head);
    if (!vdev_wait_used(d, request_ms)) { snprint(why, n, "no used entry in %u ms (used idx %u, status %x)", request_ms, used_idx(d), c_read8(d, C_STATUS)); return 0; }
    if (!take_used(d, head, 0, 0xffffffffu, len, why, n)) return 0;
    if (!wait_vector(d->vq_vec, before, 2000)) { snprint(why, n, "served but no interrupt on vector %x", d->vq_vec); return 0; }
    *status = blk_status;
    return 1;
}

static u8 pattern(u32 seed, u32 i) { return (u8)((i * 131 + seed * 7 + (i >> 8)) ^ (seed >> 3)); }

int blk_good(struct vdev *d, u64 sector, u32 seed, char *why, u32 n) {
    u8 st;
    u32 len;
    for (u32 i = 0; i < 512; i++) blk_data[i] = pattern(seed, i);
    if (!blk_req(d, BLK_OUT, sector, 1, 0, &st, &len, why, n)) return 0;
    if (st != BLK_S_OK) { snprint(why, n, "write of sector %llu: status %u", sector, st); return 0; }
    memset(blk_data, 0, sizeof blk_data);
    if (!blk_req(d, BLK_IN, sector, 1, 1, &st, &len, why, n)) return 0;
    if (st != BLK_S_OK) { snprint(why, n, "read of sector %llu: status %u", sector, st); return 0; }
    if (len != 513) { snprint(why, n, "read of sector %llu: used len %u, want 513", sector, len); return 0; }
    for (u32 i = 0; i < 512; i++)
        if (blk_data[i] != pattern(seed, i)) {
            snprint(why, n, "sector %llu byte %u reads %02x, wrote %02x", sector, i, blk_data[i], pattern(seed, i));
            return 0;
        }
    return 1;
}

/* Capacity (le64 at device config 0) read consistently under config_generation. */
static u64 blk_capacity(struct vdev *d) {
    for (int tries = 0; tries < 100; tries++) {
        u8 g0 = c_read8(d, C_CFGGEN);
        u32 lo = mmio_read32(d->devcfg), hi = mmio_read32(d->devcfg + 4);
        if (c_read8(d, C_CFGGEN) == g0) return ((u64)hi << 32) | lo;
    }
    return 0;
}

static u32 recover_timeouts, recoveries;

int recover(struct vdev *d, const char *cls, const char *name) {
    static char why[160];
    why[0] = 0;
    recoveries++;
    int ok = vdev_setup(d, 0);
    if (!ok) snprint(why, sizeof why, "reset and set-up failed (status %x)", c_read8(d, C_STATUS));
    else if (d == &blk) {
        if (!d->capacity) d->capacity = blk_capacity(d);
        u64 sector = d->capacity > 16 ? 1 + (u64)recoveries * 7919 % (d->capacity - 1) : 0;
        ok = blk_good(d, sector, recoveries, why, sizeof why);
    } else {
        ok = rng_good(d, why, sizeof why);
    }
    verdict(cls, name, d->name, ok, "after reset: %s", ok ? "a good request was served" : why);
    if (!ok && ++recover_timeouts >= 3) give_up("three devices did not recover");
    return ok;
}
