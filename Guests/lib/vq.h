/* vq.h: any number of split virtqueues for the test kernels (virtio.h handles queue 0 only):
 * per-queue rings in caller-provided memory, publishing with or without VIRTIO_F_EVENT_IDX
 * (kicks only when the device's avail_event asks), reading the used ring, and DRIVER_OK once
 * every queue is set up. Transport discovery and MSI-X come from virtio.h. */
#ifndef VQ_H
#define VQ_H
#include "virtio.h"

struct vq {
    u16 index, size;
    volatile struct vq_desc *desc;
    volatile u16 *avail;          /* flags, idx, ring[size], used_event */
    volatile u8 *used;            /* flags, idx, {id, len}[size], avail_event */
    u16 avail_idx, used_seen, kicked_at;
    u32 kick;                     /* notify address */
    int event_idx;
    u32 kicks;                    /* doorbell writes made */
};

/* Bytes vq_setup needs for a queue of `size` entries (descriptors, avail, used, aligned). */
#define VQ_BYTES(size) (16u * (size) + 4096u + 8u * (size) + 4096u)

/* Programs queue `index` with min(device size, max) entries in `mem` (4 KiB aligned,
   VQ_BYTES(max) long), MSI-X vector `vector` (0xffff: none), and enables it. Fails if the device
   has no such queue. Returns the size used. */
u16 vq_setup(struct virtio_pci *v, struct vq *q, u16 index, void *mem, u16 max, u16 vector, int event_idx);
/* Sets DRIVER_OK and checks the device took it. */
void virtio_driver_ok(struct virtio_pci *v);
/* Writes descriptor `d`. */
void vq_desc(struct vq *q, u16 d, u64 addr, u32 len, u16 flags, u16 next);
/* Publishes chain `head`; no kick. */
void vq_publish(struct vq *q, u16 head);
/* Rings the doorbell unless EVENT_IDX says the device does not want it (vring_need_event). */
void vq_kick(struct vq *q);
/* Takes the next used entry: 1 with its id and length, or 0 when there is none. */
int vq_next_used(struct vq *q, u32 *id, u32 *len);
/* With EVENT_IDX: ask for an interrupt when the used index passes `idx`. */
void vq_set_used_event(struct vq *q, u16 idx);
/* Without EVENT_IDX: VIRTQ_AVAIL_F_NO_INTERRUPT on or off. */
void vq_set_no_interrupt(struct vq *q, int on);
#endif
