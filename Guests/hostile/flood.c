/*
 * flood.c: a few virtio-rng chains, each an indirect table of thousands of 64 KiB device-
 * writable buffers (2 GiB per chain with the default 32768 entries), then at once a virtio-blk
 * request. The block device must not starve: a device's work per doorbell has to be bounded
 * (virtio-rng may return fewer bytes than offered; the used length says how many), or the
 * device may refuse the chain (QEMU maps at most 1024 buffers: virtio_error()). Either way the
 * rng chains must end (served or device error) and a reset rng must serve a good request.
 */
#include "hostile.h"

void attack_flood(struct rnd *r) {
    static char why[160];
    struct vdev *d = &rng;
    if (!vdev_setup(&blk, 0)) { verdict("flood", "setup", "blk", 0, "set-up failed"); return; }
    if (!vdev_setup(d, FEAT_INDIRECT)) { verdict("flood", "setup", d->name, 0, "set-up failed"); return; }
    volatile struct vq_desc *t = (volatile struct vq_desc *)big;
    u32 n = flood_descs;
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
    verdict("flood", "blk-not-starved", "blk", fed, "a virtio-blk write and read-back while virtio-rng floods: %s (%u ms)",
            fed ? "served" : why, waited);
    if (!fed) give_up("virtio-blk starved behind the virtio-rng flood");
    /* The flood itself must end: chains used (perhaps short) or the device in its error state. */
    u64 deadline = deadline_ms(20000);
    u8 st;
    while ((st = c_read8(d, C_STATUS), !(st & S_NEEDS_RESET)) && used_idx(d) != chains && !past(deadline)) cpu_relax();
    u16 used = used_idx(d);
    u64 bytes = 0;
    for (u16 i = 0; i < used && i < d->qn; i++) bytes += used_len(d, i);
    int ended = (st & S_NEEDS_RESET) || used == chains;
    verdict("flood", "rng-ends", d->name, ended, "%u of %u chains used, %llu bytes reported, status %x", used, chains, bytes, st);
    if (!ended) give_up("virtio-rng still busy with the flood after 20 s");
    recover(d, "flood", "end");
}
