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
#include "../lib/virtio.h"

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
static struct virtio_pci v;
static u32 requests_done;

/* Submits one request and waits for its used entry and its interrupt. The chain starts at a
   different descriptor each time (slots of 3) so the used id is a real check. Returns the
   status byte; *used_len gets the used-ring length. */
static u8 blk_req(const char *what, u32 type, u64 sector, u32 len, int writable, u32 *used_len) {
    u16 slots = (u16)(v.qn / 3);
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
    virtio_submit(&v, head);
    requests_done++;
    if (!virtio_wait_used(&v)) {
        cli();
        fail("%s: used idx stays %u (avail %u, interrupts %u)", what, USED_IDX, v.avail_idx, msix_hits);
    }
    if ((u16)(USED_IDX - v.used_seen) != 1) { cli(); fail("%s: used idx %u, expected %u", what, USED_IDX, (u16)(v.used_seen + 1)); }
    u32 slot = v.used_seen % v.qn, id = USED_ID(slot);
    *used_len = USED_LEN(slot);
    v.used_seen++;
    if (id != head) { cli(); fail("%s: used id %u, posted %u", what, id, head); }
    if (!virtio_wait_interrupts(requests_done)) {
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
    u64 sectors = cmdline_uint("sectors", 0);
    if (sectors < 102) fail("sectors=%llu: give the disk size in sectors (at least 102)", sectors);

    virtio_find(&v, 0x1001, 0x1042, "virtio-blk");
    virtio_interrupts(&v);
    u32 f_lo = virtio_begin(&v);
    printf("features 0x%x\n", f_lo);
    u32 drv_lo = f_lo & VIRTIO_BLK_F_FLUSH;
    virtio_features_ok(&v, drv_lo);

    /* capacity: le64 at device config 0, read as two dwords under config_generation */
    u64 capacity = 0;
    for (int tries = 0;; tries++) {
        u8 g0 = mmio_read8(v.common + C_CFGGEN);
        u32 lo = mmio_read32(v.device), hi = mmio_read32(v.device + 4);
        u8 g1 = mmio_read8(v.common + C_CFGGEN);
        capacity = ((u64)hi << 32) | lo;
        if (g0 == g1) break;
        if (tries > 100) fail("config_generation keeps changing");
    }
    printf("capacity %llu sectors\n", capacity);
    if (capacity != sectors) fail("capacity %llu, sectors=%llu", capacity, sectors);
    virtio_queue0(&v, 4);

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

    virtio_quiesce();
    u32 hits = msix_hits;
    printf("requests %u interrupts %u\n", requests_done, hits);
    mmio_write8(v.common + C_STATUS, 0);
    if (hits != requests_done) fail("%u interrupts for %u requests", hits, requests_done);
    pass();
}
