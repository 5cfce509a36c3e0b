/*
 * rings.c: malicious virtqueues on virtio-rng and virtio-blk.
 *
 * Each attack resets the device, negotiates features, points queue 0 at rings (its own pages
 * or hostile addresses), sets DRIVER_OK (read-modify-write, as Linux), publishes, kicks and
 * watches. Clear-cut attacks ("strict") must put the device in its error state, as QEMU's
 * virtio_error() does: status gains DEVICE_NEEDS_RESET (0x40) and nothing is served; when the
 * error comes after DRIVER_OK the device must also send a configuration-change interrupt (here
 * MSI-X entry 0) and bump config_generation (virtio 1.x 2.1.2, QEMU virtio_notify_config()).
 * Attacks where devices may differ ("lenient": unmapped but valid addresses, huge lengths,
 * nested indirect tables, reset races) only print what happened. After every attack the
 * device is reset and must serve a good request.
 */
#include "hostile.h"

#define TOP(x) (0xffffffffffffffffull - (x))

struct plan {
    u64 desc, avail, used;
    u32 features;
    u16 qsize;
    u16 publish;                  /* avail idx to publish in our own avail page */
    int kick;
};

static struct blk_hdr atk_hdr __attribute__((aligned(16)));
static u8 atk_small[64] __attribute__((aligned(64)));

/* A valid chain at desc[head...] in `table`: rng one writable buffer, blk GET_ID. Returns the
   number of descriptors. */
static u16 good_chain(struct vdev *d, volatile struct vq_desc *table, u16 head) {
    if (d == &rng) {
        table[head] = (struct vq_desc){ (u32)atk_small, sizeof atk_small, F_WRITE, 0 };
        return 1;
    }
    atk_hdr = (struct blk_hdr){ BLK_GET_ID, 0, 0 };
    table[head] = (struct vq_desc){ (u32)&atk_hdr, sizeof atk_hdr, F_NEXT, (u16)(head + 1) };
    table[head + 1] = (struct vq_desc){ (u32)atk_small, 20, F_NEXT | F_WRITE, (u16)(head + 2) };
    table[head + 2] = (struct vq_desc){ (u32)&atk_small[32], 1, F_WRITE, 0 };
    return 3;
}

/* The flags of a buffer descriptor of this device's kind (rng writes, blk's header is read). */
static u16 buf_flags(struct vdev *d) { return d == &rng ? F_WRITE : 0; }

typedef void prepare_fn(struct vdev *d, struct rnd *r, struct plan *p);

static void p_avail_top(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)r;
    good_chain(d, d->desc, 0);
    p->avail = TOP(1);                                   /* 0xffff_ffff_ffff_fffe */
}
static void p_desc_top(struct vdev *d, struct rnd *r, struct plan *p) {
    static const u64 tops[] = { TOP(15), TOP(7), TOP(0x1f), TOP(0xfff) };
    p->desc = tops[rnd_below(r, ARRAY_SIZE(tops))];
    d->avail[2] = (u16)rnd_below(r, d->qn);
}
static void p_used_top(struct vdev *d, struct rnd *r, struct plan *p) {
    static const u64 tops[] = { TOP(7), TOP(3), TOP(0xf) };
    good_chain(d, d->desc, 0);
    p->used = tops[rnd_below(r, ARRAY_SIZE(tops))];
}
static void p_event_idx_top(struct vdev *d, struct rnd *r, struct plan *p) {
    p_used_top(d, r, p);
    p->features = FEAT_EVENT_IDX;
}
static void p_head_range(struct vdev *d, struct rnd *r, struct plan *p) {
    good_chain(d, d->desc, 0);
    d->avail[2] = rnd32(r) & 1 ? 0xffff : (u16)(d->qn + rnd_below(r, 1000));
}
static void p_next_range(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)p;
    d->desc[0] = (struct vq_desc){ (u32)atk_small, 16, (u16)(F_NEXT | buf_flags(d)), (u16)(d->qn + rnd_below(r, 0xff00)) };
}
static void p_loop(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)p;
    u16 a = (u16)rnd_below(r, d->qn), b = (u16)((a + 1 + rnd_below(r, d->qn - 1)) % d->qn);
    d->desc[a] = (struct vq_desc){ (u32)atk_small, 16, (u16)(F_NEXT | buf_flags(d)), b };
    d->desc[b] = (struct vq_desc){ (u32)atk_small, 16, (u16)(F_NEXT | buf_flags(d)), a };
    d->avail[2] = a;
}
static void p_self_loop(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)r; (void)p;
    d->desc[0] = (struct vq_desc){ (u32)atk_small, 16, (u16)(F_NEXT | buf_flags(d)), 0 };
}
static void p_avail_jump(struct vdev *d, struct rnd *r, struct plan *p) {
    good_chain(d, d->desc, 0);
    p->publish = (u16)(d->qn + 1 + rnd_below(r, 30000));
}
static void p_avail_back(struct vdev *d, struct rnd *r, struct plan *p) {
    good_chain(d, d->desc, 0);
    p->publish = (u16)(0xffff - rnd_below(r, 4));        /* "behind" the device: a wrap backwards */
}
/* Head 0 is an indirect descriptor with this table address and length. */
static void indirect_head(struct vdev *d, u64 addr, u32 len) {
    d->desc[0] = (struct vq_desc){ addr, len, F_INDIRECT, 0 };
}
static void p_ind_len(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)p;
    good_chain(d, (volatile struct vq_desc *)big, 0);
    indirect_head(d, (u32)big, 16 + 1 + rnd_below(r, 15));
    p->features = FEAT_INDIRECT;
}
static void p_ind_zero(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)r;
    good_chain(d, (volatile struct vq_desc *)big, 0);
    indirect_head(d, (u32)big, 0);
    p->features = FEAT_INDIRECT;
}
static void p_ind_top(struct vdev *d, struct rnd *r, struct plan *p) {
    static const u64 tops[] = { TOP(7), TOP(15), TOP(0x3f) };
    indirect_head(d, tops[rnd_below(r, ARRAY_SIZE(tops))], 64);
    p->features = FEAT_INDIRECT;
}
/* 40000 entries: more than a split queue may have (32768) and than QEMU maps (1024). */
static void p_ind_huge(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)r;
    volatile struct vq_desc *t = (volatile struct vq_desc *)big;
    u32 n = 40000;
    for (u32 i = 0; i < n; i++)
        t[i] = (struct vq_desc){ (u32)atk_small, 8, (u16)((i + 1 < n ? F_NEXT : 0) | F_WRITE), (u16)(i + 1) };
    if (d == &blk) t[0].flags = F_NEXT;                  /* blk: a readable "header" first */
    indirect_head(d, (u32)big, n * 16);
    p->features = FEAT_INDIRECT;
}
static void p_ind_loop(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)r;
    volatile struct vq_desc *t = (volatile struct vq_desc *)big;
    t[0] = (struct vq_desc){ (u32)atk_small, 8, (u16)(F_NEXT | buf_flags(d)), 1 };
    t[1] = (struct vq_desc){ (u32)atk_small, 8, (u16)(F_NEXT | buf_flags(d)), 0 };
    indirect_head(d, (u32)big, 32);
    p->features = FEAT_INDIRECT;
}
static void p_ind_next_range(struct vdev *d, struct rnd *r, struct plan *p) {
    volatile struct vq_desc *t = (volatile struct vq_desc *)big;
    t[0] = (struct vq_desc){ (u32)atk_small, 8, (u16)(F_NEXT | buf_flags(d)), (u16)(2 + rnd_below(r, 100)) };
    t[1] = (struct vq_desc){ (u32)atk_small, 8, buf_flags(d), 0 };
    indirect_head(d, (u32)big, 32);
    p->features = FEAT_INDIRECT;
}

/* ---- lenient: devices may serve, ignore or fail these ---- */
static void p_nested_ind(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)r;
    volatile struct vq_desc *t = (volatile struct vq_desc *)big;
    good_chain(d, t + 64, 0);
    t[0] = (struct vq_desc){ (u32)(t + 64), 48, F_INDIRECT, 0 };
    indirect_head(d, (u32)big, 16);
    p->features = FEAT_INDIRECT;
}
static void p_ind_and_next(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)r;
    good_chain(d, (volatile struct vq_desc *)big, 0);
    d->desc[0] = (struct vq_desc){ (u32)big, 48, F_INDIRECT | F_NEXT, 1 };
    good_chain(d, d->desc, 1);
    p->features = FEAT_INDIRECT;
}
static void p_ring_hole(struct vdev *d, struct rnd *r, struct plan *p) {
    good_chain(d, d->desc, 0);
    u64 where[] = { 0xe0000000u, (u64)ram_top + 0x100000, 0x100000000ull, 0xfffff000ull << 20 };
    u64 a = where[rnd_below(r, ARRAY_SIZE(where))];
    switch (rnd_below(r, 3)) {
    case 0: p->desc = a; break;
    case 1: p->avail = a; break;
    default: p->used = a; break;
    }
}
static void p_ring_scratch(struct vdev *d, struct rnd *r, struct plan *p) {
    /* pc-testdev's 64 KiB MMIO scratch (QEMU) or nothing: a ring in device memory */
    good_chain(d, d->desc, 0);
    if (rnd32(r) & 1) p->used = 0xff000000u; else p->avail = 0xff000000u;
}
static void p_buf_top(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)p;
    u16 n = good_chain(d, d->desc, 0);
    d->desc[rnd_below(r, n)].addr = TOP(rnd_below(r, 64));
}
static void p_buf_huge(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)p;
    u16 n = good_chain(d, d->desc, 0);
    volatile struct vq_desc *x = &d->desc[rnd_below(r, n)];
    x->addr = (u32)page_buf;
    x->len = rnd32(r) & 1 ? 0xffffffffu : 0x80000000u + rnd32(r);
}
static void p_buf_zero(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)p;
    u16 n = good_chain(d, d->desc, 0);
    d->desc[rnd_below(r, n)].len = 0;
}
static void p_qsize(struct vdev *d, struct rnd *r, struct plan *p) {
    static const u16 sizes[] = { 0, 3, 0xffff, 0x8000, 6 };
    good_chain(d, d->desc, 0);
    p->qsize = sizes[rnd_below(r, ARRAY_SIZE(sizes))];
}
static void p_used_chaos(struct vdev *d, struct rnd *r, struct plan *p) {
    (void)p;
    good_chain(d, d->desc, 0);
    *(volatile u16 *)(d->used + 2) = (u16)rnd32(r);       /* the device's own index, scribbled */
    *(volatile u16 *)(d->used) = 0xffff;
}

struct ring_attack { const char *name; int strict; prepare_fn *prepare; };
static const struct ring_attack ring_attacks[] = {
    { "avail-top", 1, p_avail_top },
    { "desc-top", 1, p_desc_top },
    { "used-top", 1, p_used_top },
    { "event-idx-top", 1, p_event_idx_top },
    { "head-range", 1, p_head_range },
    { "next-range", 1, p_next_range },
    { "loop", 1, p_loop },
    { "self-loop", 1, p_self_loop },
    { "avail-jump", 1, p_avail_jump },
    { "avail-back", 1, p_avail_back },
    { "indirect-len", 1, p_ind_len },
    { "indirect-zero", 1, p_ind_zero },
    { "indirect-top", 1, p_ind_top },
    { "indirect-huge", 1, p_ind_huge },
    { "indirect-loop", 1, p_ind_loop },
    { "indirect-next-range", 1, p_ind_next_range },
    { "nested-indirect", 0, p_nested_ind },
    { "indirect-and-next", 0, p_ind_and_next },
    { "ring-in-hole", 0, p_ring_hole },
    { "ring-in-mmio", 0, p_ring_scratch },
    { "buffer-top", 0, p_buf_top },
    { "buffer-huge", 0, p_buf_huge },
    { "buffer-zero", 0, p_buf_zero },
    { "queue-size", 0, p_qsize },
    { "used-scribble", 0, p_used_chaos },
};

/* Runs one planned attack; prints the observation verdict (strict ones judged). */
static void run_ring_attack(struct vdev *d, struct rnd *r, const struct ring_attack *a) {
    if (!selected(a->name) || (!a->strict && !lenient_too)) return;
    struct plan p = { (u32)d->desc, (u32)d->avail, (u32)d->used, 0, d->qn, 1, 1 };
    if (!vdev_reset(d)) { verdict("rings", a->name, d->name, 0, "device never finished a reset"); return; }
    memset((void *)d->desc, 0, 4096);
    memset((void *)d->avail, 0, 4096);
    memset((void *)d->used, 0, 4096);
    a->prepare(d, r, &p);
    if (!vdev_features(d, p.features)) {
        verdict("rings", a->name, d->name, 0, "FEATURES_OK refused (status %x)", c_read8(d, C_STATUS));
        return;
    }
    vdev_queue(d, p.qsize, p.desc, p.avail, p.used);
    u8 pre = c_read8(d, C_STATUS);
    u8 gen0 = c_read8(d, C_CFGGEN);
    u32 cfg0 = vector_hits[d->cfg_vec];
    vdev_add_status(d, S_DRIVER_OK);
    if (p.avail == (u32)d->avail) d->avail[1] = p.publish;
    if (p.kick) vdev_kick(d);
    /* Poll generously: an error state or a used entry ends the wait. */
    u64 t = deadline_ms(a->strict ? 3000 : 500);
    u8 st;
    for (;;) {
        st = c_read8(d, C_STATUS);
        if ((st & S_NEEDS_RESET) || used_idx(d) != 0 || past(t)) break;
        cpu_relax();
    }
    int needs = (st & S_NEEDS_RESET) != 0, early = (pre & S_NEEDS_RESET) != 0;
    int cfgirq = needs && !early ? wait_vector(d->cfg_vec, cfg0, 2000) : vector_hits[d->cfg_vec] != cfg0;
    u8 gen1 = c_read8(d, C_CFGGEN);
    u16 used = used_idx(d);
    int ok = 1;
    if (a->strict) ok = needs && used == 0 && (early || (cfgirq && gen1 != gen0));
    verdict("rings", a->name, d->name, ok, "status %x%s, used idx %u, config irq %s, generation %u->%u%s",
            st, needs ? (early ? " (needs reset at queue enable)" : " (needs reset after kick)") : "", used,
            cfgirq ? "yes" : "no", gen0, gen1, a->strict ? "" : " (lenient)");
    char name[48];
    snprint(name, sizeof name, "%s+reset", a->name);
    recover(d, "rings", name);
}

/* A reset while the device serves a full queue; then the device must come back. */
static void reset_race(struct vdev *d, struct rnd *r) {
    if (!selected("reset-race") || !lenient_too) return;
    if (!vdev_setup(d, 0)) { verdict("rings", "reset-race", d->name, 0, "set-up failed"); return; }
    u16 n = d == &rng ? d->qn : (u16)(d->qn / 3);
    for (u16 i = 0; i < n; i++) {
        u16 h = d == &rng ? i : (u16)(3 * i);
        good_chain(d, d->desc, h);
        d->avail[2 + i] = h;
    }
    d->avail_idx = n;
    d->avail[1] = n;
    vdev_kick(d);
    for (u32 spin = rnd_below(r, 50); spin; spin--) cpu_relax();
    c_write8(d, C_STATUS, 0);
    verdict("rings", "reset-race", d->name, 1, "reset with %u chains posted, %u used at the reset (lenient)", n, used_idx(d));
    recover(d, "rings", "reset-race+reset");
}

/* Doorbells for queues that do not exist, and at odd offsets of the notify area. */
static void notify_chaos(struct vdev *d, struct rnd *r) {
    if (!selected("notify-chaos") || !lenient_too) return;
    if (!vdev_setup(d, 0)) { verdict("rings", "notify-chaos", d->name, 0, "set-up failed"); return; }
    for (u32 i = 0; i < 200; i++) {
        u32 off = rnd_below(r, d->notify_cap.len ? d->notify_cap.len : 4) & ~1u;
        switch (rnd_below(r, 4)) {
        case 0: mmio_write16(d->notify + off, (u16)rnd32(r)); break;
        case 1: mmio_write8(d->notify + off, (u8)rnd32(r)); break;
        case 2: mmio_write32(d->notify + (off & ~3u), rnd32(r)); break;
        default: (void)mmio_read16(d->notify + off); break;
        }
        c_write16(d, C_Q_SELECT, (u16)rnd32(r));         /* selects past the last queue */
        (void)c_read16(d, C_Q_SIZE);
        c_write16(d, C_Q_ENABLE, (u16)rnd32(r));
        c_write64(d, C_Q_DESC, ((u64)rnd32(r) << 32) | rnd32(r));
    }
    c_write16(d, C_Q_SELECT, 0);
    verdict("rings", "notify-chaos", d->name, 1, "200 doorbells and selects of absent queues (lenient)");
    recover(d, "rings", "notify-chaos+reset");
}

void attack_rings(struct rnd *r, struct vdev *d) {
    for (u32 i = 0; i < ARRAY_SIZE(ring_attacks); i++) run_ring_attack(d, r, &ring_attacks[i]);
    reset_race(d, r);
    notify_chaos(d, r);
}
