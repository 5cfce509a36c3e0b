/*
 * virtioblk: drive a virtio-blk PCI device through the modern (virtio 1.x) PCI interface, with
 * completion interrupts by MSI-X. Transport code (capability walk, BAR mapping, MSI-X, LAPIC
 * timer wake-up, waits with timeouts) is the same as tests/virtiorng.c.
 *
 * Command line: "sectors=N [basic] [poll]" - N is the disk size in 512-byte sectors (required,
 * at least 320).
 *
 * Finds 1af4:1001 (transitional) or 1af4:1042 (modern) on bus 0 and negotiates, of what the
 * device offers, VIRTIO_F_VERSION_1, VIRTIO_BLK_F_FLUSH (9), VIRTIO_BLK_F_DISCARD (13),
 * VIRTIO_BLK_F_WRITE_ZEROES (14), VIRTIO_F_INDIRECT_DESC (28) and VIRTIO_F_EVENT_IDX (29)
 * ("basic": VERSION_1 and FLUSH only). Prints the device configuration (capacity, checked
 * against sectors=, and the other fields), then submits requests one at a time, each
 * completed by used ring + MSI-X interrupt (vector 0x41): a chain header (16 bytes, readable)
 * [-> data] -> status (1 byte, writable); with INDIRECT_DESC the read-backs go through an
 * indirect table instead; with EVENT_IDX the driver sets used_event for every completion and
 * kicks only when avail_event asks (lib/virtio.c). Sequence: read sector 0 (must start
 * "SWIFTVMM-DISK-SECTOR0"), write + read back sector 5, write + read back sectors 100-101,
 * flush (if negotiated), read sector N (must give VIRTIO_BLK_S_IOERR), GET_ID (status printed
 * only); with WRITE_ZEROES: pattern on 200-203, write-zeroes 201-202, read back (200 and 203
 * kept, 201-202 zero), write-zeroes past the end (IOERR); with DISCARD: pattern on 300-307,
 * discard them, read back (what remains is printed, not checked: it is the backend's choice),
 * discard with the unmap flag (UNSUPP). Passes when interrupts == requests.
 */
#include "../lib/virtio.h"

#define VIRTIO_BLK_F_FLUSH (1u << 9)
#define VIRTIO_BLK_F_DISCARD (1u << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1u << 14)
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define SIG "SWIFTVMM-DISK-SECTOR0"

struct blk_hdr { u32 type, reserved; u64 sector; };

static struct blk_hdr hdr __attribute__((aligned(16)));
static u8 data[4096] __attribute__((aligned(512)));
/* One virtio_blk_discard_write_zeroes segment: le64 sector, le32 num_sectors, le32 flags. */
struct dwz { u64 sector; u32 num_sectors, flags; };
static struct dwz seg __attribute__((aligned(16)));
static struct vq_desc indirect[3] __attribute__((aligned(16)));
static int use_indirect;
static volatile u8 status_byte __attribute__((aligned(16)));
static struct virtio_pci v;
static u32 requests_done;

/* Submits one request and waits for its used entry and its interrupt. The chain starts at a
   different descriptor each time (slots of 3) so the used id is a real check. Returns the
   status byte; *used_len gets the used-ring length. */
static u8 blk_req_data(const char *what, u32 type, u64 sector, void *buf, u32 len, int writable, u32 *used_len) {
    u16 slots = (u16)(v.qn / 3);
    u16 head = (u16)((requests_done % slots) * 3), d = head;
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status_byte = 0xff;
    if (use_indirect) {
        /* The whole chain in an indirect table; the ring holds one descriptor. */
        u16 n = 0;
        indirect[n] = (struct vq_desc){ (u32)(uintptr_t)&hdr, sizeof hdr, VIRTQ_DESC_F_NEXT, 1 };
        n++;
        if (len) {
            indirect[n] = (struct vq_desc){ (u32)(uintptr_t)buf, len,
                                            (u16)(VIRTQ_DESC_F_NEXT | (writable ? VIRTQ_DESC_F_WRITE : 0)), (u16)(n + 1) };
            n++;
        }
        indirect[n] = (struct vq_desc){ (u32)(uintptr_t)&status_byte, 1, VIRTQ_DESC_F_WRITE, 0 };
        n++;
        DESC[d].addr = (u32)(uintptr_t)indirect;
        DESC[d].len = 16u * n;
        DESC[d].flags = VIRTQ_DESC_F_INDIRECT;
        DESC[d].next = 0;
        goto submit;
    }
    DESC[d].addr = (u32)(uintptr_t)&hdr;
    DESC[d].len = sizeof hdr;
    DESC[d].flags = VIRTQ_DESC_F_NEXT;
    DESC[d].next = (u16)(d + 1);
    d++;
    if (len) {
        DESC[d].addr = (u32)(uintptr_t)buf;
        DESC[d].len = len;
        DESC[d].flags = (u16)(VIRTQ_DESC_F_NEXT | (writable ? VIRTQ_DESC_F_WRITE : 0));
        DESC[d].next = (u16)(d + 1);
        d++;
    }
    DESC[d].addr = (u32)(uintptr_t)&status_byte;
    DESC[d].len = 1;
    DESC[d].flags = VIRTQ_DESC_F_WRITE;
    DESC[d].next = 0;
submit:
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

static u8 blk_req(const char *what, u32 type, u64 sector, u32 len, int writable, u32 *used_len) {
    return blk_req_data(what, type, sector, data, len, writable, used_len);
}

/* A DISCARD or WRITE_ZEROES request of one segment. */
static u8 blk_dwz(const char *what, u32 type, u64 sector, u32 count, u32 flags) {
    u32 ul;
    seg.sector = sector;
    seg.num_sectors = count;
    seg.flags = flags;
    return blk_req_data(what, type, 0, &seg, sizeof seg, 0, &ul);
}

static u32 cfg32(u32 off) { return mmio_read32(v.device + off); }
static u32 cfg8(u32 off) { return mmio_read8(v.device + off); }
static u32 cfg16(u32 off) { return mmio_read16(v.device + off); }

static u8 pattern200(u32 i) { return (u8)((i * 5 + 0x11 + (i >> 9)) | 1); }    /* never zero */

static u8 pattern5(u32 i) { return (u8)((i * 7 + 3) & 0xff); }
static u8 pattern100(u32 i) { return (u8)((i * 13 + 0x5a + (i >> 9)) & 0xff); }

void kmain(void) {
    test_name = "virtioblk";
    u64 sectors = cmdline_uint("sectors", 0);
    if (sectors < 320) fail("sectors=%llu: give the disk size in sectors (at least 320)", sectors);

    virtio_find(&v, 0x1001, 0x1042, "virtio-blk");
    virtio_interrupts(&v);
    u32 f_lo = virtio_begin(&v);
    printf("features 0x%x\n", f_lo);
    u32 want = VIRTIO_BLK_F_FLUSH;
    if (!cmdline_has("basic"))
        want |= VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES | (1u << VIRTIO_F_INDIRECT_DESC) | (1u << VIRTIO_F_EVENT_IDX);
    u32 drv_lo = f_lo & want;
    printf("driver features 0x%x\n", drv_lo);
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
    printf("config: size_max %u seg_max %u geometry %u/%u/%u blk_size %u\n", cfg32(8), cfg32(12), cfg16(16), cfg8(18), cfg8(19), cfg32(20));
    printf("config: physical_block_exp %u alignment_offset %u min_io_size %u opt_io_size %u writeback %u num_queues %u\n",
           cfg8(24), cfg8(25), cfg16(26), cfg32(28), cfg8(32), cfg16(34));
    if (drv_lo & VIRTIO_BLK_F_DISCARD)
        printf("config: max_discard_sectors %u max_discard_seg %u discard_sector_alignment %u\n", cfg32(36), cfg32(40), cfg32(44));
    if (drv_lo & VIRTIO_BLK_F_WRITE_ZEROES)
        printf("config: max_write_zeroes_sectors %u max_write_zeroes_seg %u write_zeroes_may_unmap %u\n", cfg32(48), cfg32(52), cfg8(56));
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
    use_indirect = (drv_lo >> VIRTIO_F_INDIRECT_DESC) & 1;
    s = blk_req("readback 5", T_IN, 5, 512, 1, &ul_rb);
    use_indirect = 0;
    if (s != S_OK) fail("readback 5: status %u", s);
    for (u32 i = 0; i < 512; i++)
        if (data[i] != pattern5(i)) fail("readback 5: byte %u is %02x, wrote %02x", i, data[i], pattern5(i));
    printf("readback 5 ok%s\n", (drv_lo >> VIRTIO_F_INDIRECT_DESC) & 1 ? " (indirect)" : "");

    for (u32 i = 0; i < 1024; i++) data[i] = pattern100(i);
    s = blk_req("write 100+2", T_OUT, 100, 1024, 0, &ul_w2);
    if (s != S_OK) fail("write 100+2: status %u", s);
    printf("write 100+2 ok\n");
    memset(data, 0, sizeof data);
    use_indirect = (drv_lo >> VIRTIO_F_INDIRECT_DESC) & 1;
    s = blk_req("readback 100+2", T_IN, 100, 1024, 1, &ul_r2);
    use_indirect = 0;
    if (s != S_OK) fail("readback 100+2: status %u", s);
    for (u32 i = 0; i < 1024; i++)
        if (data[i] != pattern100(i)) fail("readback 100+2: byte %u is %02x, wrote %02x", i, data[i], pattern100(i));
    printf("readback 100+2 ok%s\n", (drv_lo >> VIRTIO_F_INDIRECT_DESC) & 1 ? " (indirect)" : "");

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

    u32 ul;
    if (drv_lo & VIRTIO_BLK_F_WRITE_ZEROES) {
        for (u32 i = 0; i < 2048; i++) data[i] = pattern200(i);
        s = blk_req("write 200+4", T_OUT, 200, 2048, 0, &ul);
        if (s != S_OK) fail("write 200+4: status %u", s);
        s = blk_dwz("write-zeroes 201+2", T_WRITE_ZEROES, 201, 2, 0);
        printf("write-zeroes 201+2 status %u\n", s);
        if (s != S_OK) fail("write-zeroes 201+2: status %u", s);
        memset(data, 0xee, 2048);
        s = blk_req("readback 200+4", T_IN, 200, 2048, 1, &ul);
        if (s != S_OK) fail("readback 200+4: status %u", s);
        for (u32 i = 0; i < 2048; i++) {
            u8 want_b = i >= 512 && i < 1536 ? 0 : pattern200(i);
            if (data[i] != want_b) fail("after write-zeroes 201+2: byte %u of 200+4 is %02x, want %02x", i, data[i], want_b);
        }
        printf("readback 200+4 ok: 201-202 zero, 200 and 203 kept\n");
        s = blk_dwz("write-zeroes past end", T_WRITE_ZEROES, sectors - 1, 2, 0);
        printf("write-zeroes past the end status %u\n", s);
        if (s != S_IOERR) fail("write-zeroes past the end: status %u, expected %u", s, S_IOERR);
    }
    if (drv_lo & VIRTIO_BLK_F_DISCARD) {
        for (u32 i = 0; i < 4096; i++) data[i] = pattern200(i);
        s = blk_req("write 300+8", T_OUT, 300, 4096, 0, &ul);
        if (s != S_OK) fail("write 300+8: status %u", s);
        s = blk_dwz("discard 300+8", T_DISCARD, 300, 8, 0);
        printf("discard 300+8 status %u\n", s);
        if (s != S_OK) fail("discard 300+8: status %u", s);
        memset(data, 0xee, 4096);
        s = blk_req("readback 300+8", T_IN, 300, 4096, 1, &ul);
        if (s != S_OK) fail("readback 300+8: status %u", s);
        u32 kept = 0, zero = 0;
        for (u32 i = 0; i < 4096; i++) { kept += data[i] == pattern200(i); zero += data[i] == 0; }
        printf("after discard 300+8: %u bytes kept, %u zero\n", kept, zero);
        s = blk_dwz("discard with unmap", T_DISCARD, 300, 8, 1);
        printf("discard with the unmap flag status %u\n", s);
        if (s != S_UNSUPP) fail("discard with the unmap flag: status %u, expected %u", s, S_UNSUPP);
    }
    if (v.event_idx) printf("event_idx: kicks %u for %u requests, avail_event %u, used_event %u\n",
                            v.kicks, requests_done, AVAIL_EVENT(&v), USED_EVENT(&v));

    virtio_quiesce();
    u32 hits = msix_hits;
    printf("requests %u interrupts %u\n", requests_done, hits);
    mmio_write8(v.common + C_STATUS, 0);
    if (hits != requests_done) fail("%u interrupts for %u requests", hits, requests_done);
    pass();
}
