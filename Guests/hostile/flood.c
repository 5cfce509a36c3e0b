/*
 * flood.c: a few virtio-rng chains, each an indirect table of thousands of 64 KiB device-
 * writable buffers (64 MiB per chain with 1024 entries, then 2 GiB with the default 32768),
 * then at once a virtio-blk request. The block device must not starve: a device's work per
 * doorbell has to be bounded
 * (virtio-rng may return fewer bytes than offered; the used length says how many), or the
 * device may refuse the chain (QEMU maps at most 1024 buffers: virtio_error()). Either way the
 * rng chains must end (served or device error) and a reset rng must serve a good request.
 */
#include "hostile.h"

/* One flood of 2-8 chains of n-entry tables; 0 when the run must stop. */
static int flood_round(struct rnd *r, u32 n, const char *tag) {
    static char why[160], name[40];
    struct vdev *d = &rng;
    if (!vdev_setup(&blk, 0)) { verdict("flood", "setup", "blk", 0, "set-up failed"); return 0; }
    if (!vdev_setup(d, FEAT_INDIRECT)) { verdict("flood", "setup", d->name, 0, "set-up failed"); return 0; }
    volatile struct vq_desc *t = (volatile struct vq_desc *)big;
    for (u32 i = 0; i < n; i++)
        t[i] = (struct vq_desc){ (u32)page_buf, 65536, (u16)(F_WRITE | (i + 1 < n ? F_NEXT : 0)), (u16)(i + 1) };
    u16 chains = (u16)(2 + rnd_below(r, d->qn - 1));
    for (u16 i = 0; i < chains; i++) {
        d->desc[i] = (struct vq_desc){ (u32)big, n * 16, F_INDIRECT, 0 };
        d->avail[2 + i] = i;
    }
    printf("hostile: %u rng chains of %u x 64 KiB\n", chains, n);
    d->avail_idx = chains;
    d->avail[1] = chains;
    vdev_kick(d);
    /* The other device, right now. */
    request_ms = flood_ms;
    u64 t0 = rdtsc();
    int fed = blk_good(&blk, 7, chains, why, sizeof why);
    u32 waited = (u32)((rdtsc() - t0) / tsc_per_ms);
    request_ms = 5000;
    snprint(name, sizeof name, "blk-not-starved-%s", tag);
    verdict("flood", name, "blk", fed, "a virtio-blk write and read-back while virtio-rng floods: %s (%u ms)",
            fed ? "served" : why, waited);
    if (!fed) give_up("virtio-blk starved behind the virtio-rng flood");
    /* The flood itself must end: chains used (perhaps short) or the device in its error state. */
    u64 deadline = deadline_ms(20000);
    u8 st;
    while ((st = c_read8(d, C_STATUS), !(st & S_NEEDS_RESET)) && used_idx(d) != chains && !past(deadline)) cpu_relax();
    u16 used = used_idx(d);
    u64 bytes = 0;
    int sane = 1;
    for (u16 i = 0; i < used && i < d->qn; i++) {
        bytes += used_len(d, i);
        sane &= used_len(d, i) <= n * 65536u && used_id(d, i) < chains;
    }
    int ended = (st & S_NEEDS_RESET) || used == chains;
    snprint(name, sizeof name, "rng-ends-%s", tag);
    verdict("flood", name, d->name, ended && sane, "%u of %u chains used, %llu bytes reported, status %x%s", used, chains,
            bytes, st, sane ? "" : ", a used entry out of range");
    if (!ended) give_up("virtio-rng still busy with the flood after 20 s");
    snprint(name, sizeof name, "end-%s", tag);
    return recover(d, "flood", name);
}

void attack_flood(struct rnd *r) {
    /* 1024 buffers: a chain QEMU accepts (64 MiB); then flood_descs= (default 32768, 2 GiB). */
    if (flood_round(r, 1024, "1k")) flood_round(r, flood_descs, "big");
}
