/*
 * blkreq.c: well-formed rings carrying bad virtio-blk requests, and a full wrap of the 16-bit
 * ring indices.
 *
 * A bad request on a good ring is the request's problem, not the device's: it must complete
 * with IOERR (or UNSUPP) and the device must serve the next good request without a reset
 * (QEMU: virtio_blk_handle_request() → virtio_blk_req_complete(VIRTIO_BLK_S_IOERR)). Requests
 * without a usable header or status are broken framing; devices differ there (QEMU calls
 * virtio_error()), so those are lenient and followed by a reset.
 */
#include "hostile.h"

static struct blk_hdr hdr __attribute__((aligned(16)));
static u8 small[64] __attribute__((aligned(64)));
static u8 sector_buf[1024] __attribute__((aligned(512)));
static volatile u8 st __attribute__((aligned(16)));

struct seg { u64 addr; u32 len; u16 flags; };
#define MAXSEG 320
static struct seg segs[MAXSEG];

#define OK_ (1u << BLK_S_OK)
#define IOERR_ (1u << BLK_S_IOERR)
#define UNSUPP_ (1u << BLK_S_UNSUPP)

/* Builds the chain (direct for up to 8 segments, else one indirect descriptor whose table is
   in big[]), submits, waits. Returns 1 with *len when a used entry came back. */
static int submit(struct vdev *d, u32 n, u32 *len, u32 ms) {
    u16 head = 0;
    if (n <= 8) {
        for (u32 i = 0; i < n; i++)
            d->desc[i] = (struct vq_desc){ segs[i].addr, segs[i].len,
                                           (u16)(segs[i].flags | (i + 1 < n ? F_NEXT : 0)), (u16)(i + 1) };
    } else {
        volatile struct vq_desc *t = (volatile struct vq_desc *)big;
        for (u32 i = 0; i < n; i++)
            t[i] = (struct vq_desc){ segs[i].addr, segs[i].len, (u16)(segs[i].flags | (i + 1 < n ? F_NEXT : 0)), (u16)(i + 1) };
        d->desc[0] = (struct vq_desc){ (u32)big, n * 16, F_INDIRECT, 0 };
    }
    st = 0xee;
    vdev_submit(d, head);
    u64 t = deadline_ms(ms);
    while (used_idx(d) != d->avail_idx) {
        if (past(t) || (c_read8(d, C_STATUS) & S_NEEDS_RESET)) return 0;
        cpu_relax();
    }
    u32 slot = d->used_seen % d->qn;
    *len = used_len(d, slot);
    d->used_seen++;
    return 1;
}

static u32 hdr_seg(u32 type, u64 sector) {
    hdr = (struct blk_hdr){ type, 0, sector };
    segs[0] = (struct seg){ (u32)&hdr, sizeof hdr, 0 };
    return 1;
}
static u32 status_seg(u32 n) { segs[n] = (struct seg){ (u32)&st, 1, F_WRITE }; return n + 1; }

static const char *status_name(u32 s) {
    return s == BLK_S_OK ? "OK" : s == BLK_S_IOERR ? "IOERR" : s == BLK_S_UNSUPP ? "UNSUPP" : "other";
}

/* A request that must complete with a status in `allowed`; then, without a reset, a good one. */
static void expect(struct vdev *d, const char *name, u32 n, u32 allowed, const char *what) {
    if (!selected(name)) return;
    static char why[160];
    u32 len = 0;
    int used = submit(d, n, &len, 5000);
    u8 status = st, dev = c_read8(d, C_STATUS);
    int ok = used && status < 32 && (allowed & (1u << status)) && !(dev & S_NEEDS_RESET);
    verdict("blkreq", name, d->name, ok, "%s: %s, status %u (%s), used len %u, device status %x", what,
            used ? "completed" : "no used entry", status, status_name(status), len, dev);
    if (!ok) { recover(d, "blkreq", name); return; }
    int good = blk_good(d, 2 + d->used_seen % 32, d->used_seen, why, sizeof why);
    verdict("blkreq", name, d->name, good, "next good request without a reset: %s", good ? "served" : why);
    if (!good) recover(d, "blkreq", name);
}

/* Broken framing: anything may happen but the device must come back after a reset. */
static void lenient(struct vdev *d, const char *name, u32 n, const char *what) {
    if (!selected(name) || !lenient_too) return;
    u32 len = 0;
    int used = submit(d, n, &len, 2000);
    u8 dev = c_read8(d, C_STATUS);
    verdict("blkreq", name, d->name, 1, "%s: %s, status byte %u, used len %u, device status %x (lenient)", what,
            used ? "completed" : "no used entry", st, len, dev);
    char rname[48];
    snprint(rname, sizeof rname, "%s+reset", name);
    recover(d, "blkreq", rname);
}

void attack_blkreq(struct rnd *r) {
    struct vdev *d = &blk;
    if (!vdev_setup(d, FEAT_INDIRECT)) { verdict("blkreq", "setup", d->name, 0, "set-up failed"); return; }
    if (!d->capacity) {
        u32 lo = mmio_read32(d->devcfg), hi = mmio_read32(d->devcfg + 4);
        d->capacity = ((u64)hi << 32) | lo;
    }
    u64 cap = d->capacity;
    printf("hostile: virtio-blk capacity %llu sectors\n", cap);
    u32 n;

    n = hdr_seg(BLK_IN, cap);
    segs[n++] = (struct seg){ (u32)sector_buf, 512, F_WRITE };
    expect(d, "past-end", status_seg(n), IOERR_, "read of the sector after the last");

    n = hdr_seg(BLK_IN, 0xffffffffffffffffull - rnd_below(r, 8));
    segs[n++] = (struct seg){ (u32)sector_buf, 512, F_WRITE };
    expect(d, "sector-max", status_seg(n), IOERR_, "read of sector 2^64-1");

    n = hdr_seg(BLK_IN, 0x0080000000000000ull);          /* sector * 512 wraps to 0 */
    segs[n++] = (struct seg){ (u32)sector_buf, 512, F_WRITE };
    expect(d, "sector-wrap", status_seg(n), IOERR_, "read of sector 2^55 (byte offset wraps)");

    n = hdr_seg(BLK_IN, cap - 1);
    segs[n++] = (struct seg){ (u32)sector_buf, 1024, F_WRITE };
    expect(d, "straddle-end", status_seg(n), IOERR_, "two-sector read of the last sector");

    n = hdr_seg(BLK_OUT, cap - 1);
    segs[n++] = (struct seg){ (u32)sector_buf, 1024, 0 };
    expect(d, "write-straddle", status_seg(n), IOERR_, "two-sector write at the last sector");

    n = hdr_seg(BLK_IN, 0);
    segs[n++] = (struct seg){ (u32)sector_buf, 100 + rnd_below(r, 400), F_WRITE };
    expect(d, "partial-sector", status_seg(n), IOERR_, "read of part of a sector");

    n = hdr_seg(0x7777 + rnd_below(r, 100), 0);
    expect(d, "unknown-type", status_seg(n), UNSUPP_, "request type 0x77xx");

    n = hdr_seg(BLK_DISCARD, 0);
    {
        static struct { u64 sector; u32 num, flags; } seg_dz;
        seg_dz.sector = cap + 10; seg_dz.num = 8; seg_dz.flags = 0;
        segs[n++] = (struct seg){ (u32)&seg_dz, sizeof seg_dz, 0 };
    }
    expect(d, "discard-past-end", status_seg(n), IOERR_ | UNSUPP_, "discard past the end (feature not negotiated)");

    n = hdr_seg(BLK_GET_ID, 0);
    segs[n++] = (struct seg){ (u32)small, 1, F_WRITE };
    expect(d, "get-id-short", status_seg(n), OK_ | IOERR_ | UNSUPP_, "GET_ID into a 1-byte buffer");

    /* The header in three pieces and the status as the data buffer's last byte: legal framing. */
    hdr = (struct blk_hdr){ BLK_IN, 0, 0 };
    segs[0] = (struct seg){ (u32)&hdr, 8, 0 };
    segs[1] = (struct seg){ (u32)&hdr + 8, 4, 0 };
    segs[2] = (struct seg){ (u32)&hdr + 12, 4, 0 };
    segs[3] = (struct seg){ (u32)sector_buf, 513, F_WRITE };
    if (selected("split-framing")) {
        u32 len = 0;
        sector_buf[512] = 0xee;
        int used = submit(d, 4, &len, 5000);
        verdict("blkreq", "split-framing", d->name, used && sector_buf[512] == BLK_S_OK,
                "header in 3 pieces, status in the data buffer's last byte: %s, status %u, used len %u",
                used ? "completed" : "no used entry", sector_buf[512], len);
    }

    n = hdr_seg(BLK_IN, 0);
    for (u32 i = 0; i < 300; i++) segs[n++] = (struct seg){ (u32)(big + 0x10000 + 512 * i), 512, F_WRITE };
    expect(d, "many-segments", status_seg(n), OK_ | IOERR_ | UNSUPP_, "read in 300 segments (seg_max 254)");

    n = hdr_seg(BLK_IN, 0);
    for (u32 i = 0; i < 300; i++) segs[n++] = (struct seg){ (u32)page_buf, 65536, F_WRITE };
    expect(d, "oversized-read", status_seg(n), IOERR_, "19.7 MB read in 300 segments of 64 KiB");

    n = hdr_seg(BLK_OUT, 0);
    for (u32 i = 0; i < 300; i++) segs[n++] = (struct seg){ (u32)page_buf, 65536, 0 };
    expect(d, "oversized-write", status_seg(n), IOERR_, "19.7 MB write in 300 segments of 64 KiB");

    /* ---- broken framing ---- */
    hdr = (struct blk_hdr){ BLK_IN, 0, 0 };
    segs[0] = (struct seg){ (u32)&hdr, 8, 0 };
    lenient(d, "short-header", status_seg(1), "an 8-byte header");

    n = hdr_seg(BLK_IN, 0);
    segs[n++] = (struct seg){ (u32)sector_buf, 512, 0 };
    lenient(d, "no-status", n, "no device-writable buffer at all");

    n = hdr_seg(BLK_IN, 0);
    segs[n++] = (struct seg){ (u32)&st, 0, F_WRITE };
    lenient(d, "zero-status", n, "a zero-length status buffer");

    n = hdr_seg(BLK_IN, 0);
    segs[0].addr = 0xfffffffffffffff8ull - 8 * rnd_below(r, 4);
    segs[n++] = (struct seg){ (u32)sector_buf, 512, F_WRITE };
    lenient(d, "header-top", status_seg(n), "the header at 2^64-16");

    n = hdr_seg(BLK_IN, 0);
    segs[n++] = (struct seg){ 0xfffffffffffff000ull, 0x2000, F_WRITE };
    lenient(d, "data-wraps", status_seg(n), "a data buffer that wraps past 2^64");

    recover(d, "blkreq", "end");
}

/* ---- 65536+ requests: the avail and used indices wrap around (virtio-rng: one 1-byte
   buffer each; virtio-blk: GET_ID through one shared indirect table) ---- */
void attack_wrap(struct rnd *r, struct vdev *d) {
    if (!vdev_setup(d, FEAT_INDIRECT)) { verdict("wrap", "setup", d->name, 0, "set-up failed"); return; }
    volatile struct vq_desc *t = (volatile struct vq_desc *)big;
    static struct blk_hdr gid __attribute__((aligned(16)));
    gid = (struct blk_hdr){ BLK_GET_ID, 0, 0 };
    t[0] = (struct vq_desc){ (u32)&gid, sizeof gid, F_NEXT, 1 };
    t[1] = (struct vq_desc){ (u32)small, 20, F_NEXT | F_WRITE, 2 };
    t[2] = (struct vq_desc){ (u32)&small[32], 1, F_WRITE, 0 };
    u16 qn = d->qn, batch = (u16)(qn - 1 - rnd_below(r, qn / 2));
    for (u32 i = 0; i < qn; i++)
        d->desc[i] = d == &blk ? (struct vq_desc){ (u32)big, 48, F_INDIRECT, 0 } : (struct vq_desc){ (u32)small, 1, F_WRITE, 0 };
    d->avail[0] = AVAIL_F_NO_INTERRUPT;                 /* no interrupt per batch */
    u32 done = 0, wraps = 0, bad = 0;
    u32 irq0 = vector_hits[d->vq_vec];
    static char why[160];
    why[0] = 0;
    while (done < wrap_requests && !bad) {
        u16 k = (u16)(wrap_requests - done < batch ? wrap_requests - done : batch);
        u16 first = d->avail_idx;
        for (u16 i = 0; i < k; i++) d->avail[2 + (u16)(first + i) % qn] = (u16)((first + i) % qn);
        barrier();
        d->avail_idx = (u16)(first + k);
        d->avail[1] = d->avail_idx;
        vdev_kick(d);
        if (!vdev_wait_used(d, 5000)) {
            snprint(why, sizeof why, "batch at %u: used idx %u, avail %u, status %x", done, used_idx(d), d->avail_idx, c_read8(d, C_STATUS));
            bad = 1;
            break;
        }
        for (u16 i = 0; i < k; i++) {
            u16 idx = (u16)(first + i);
            u32 id = used_id(d, idx % qn), len = used_len(d, idx % qn);
            if (id != (u32)(idx % qn) || len > (d == &blk ? 21u : 1u)) {
                snprint(why, sizeof why, "request %u: used id %u len %u, want id %u", done + i, id, len, idx % qn);
                bad = 1;
                break;
            }
        }
        if ((u16)(first + k) < first) wraps++;
        d->used_seen = d->avail_idx;
        done += k;
    }
    u32 irqs = vector_hits[d->vq_vec] - irq0;
    verdict("wrap", "indices", d->name, !bad && wraps >= (wrap_requests >= 65536 ? 1u : 0u),
            "%u requests in batches of %u, indices wrapped %u times, %u interrupts with NO_INTERRUPT set%s%s",
            done, batch, wraps, irqs, bad ? ": " : "", why);
    if (bad) { recover(d, "wrap", "indices+reset"); return; }
    d->avail[0] = 0;
    int good = d == &blk ? blk_good(d, 3, wraps + done, why, sizeof why) : rng_good(d, why, sizeof why);
    verdict("wrap", "after-wrap", d->name, good, "a good request after the wrap, no reset: %s", good ? "served" : why);
    recover(d, "wrap", "end");
}
