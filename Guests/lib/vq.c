/* vq.c: see vq.h. */
#include "vq.h"

u16 vq_setup(struct virtio_pci *v, struct vq *q, u16 index, void *mem, u16 max, u16 vector, int event_idx) {
    u32 cmn = v->common;
    mmio_write16(cmn + C_Q_SELECT, index);
    u16 dev = mmio_read16(cmn + C_Q_SIZE);
    if (dev == 0) fail("queue %u not available", index);
    u16 n = dev < max ? dev : max;
    if (n & (n - 1)) fail("queue %u size %u not a power of 2", index, n);
    memset(q, 0, sizeof *q);
    memset(mem, 0, VQ_BYTES(n));
    uintptr_t base = (uintptr_t)mem;
    q->index = index;
    q->size = n;
    q->event_idx = event_idx;
    q->desc = (volatile struct vq_desc *)base;
    q->avail = (volatile u16 *)(base + 16u * n);
    q->used = (volatile u8 *)((base + 16u * n + 6u + 2u * n + 4095u) & ~(uintptr_t)4095u);
    mmio_write16(cmn + C_Q_SIZE, n);
    mmio_write32(cmn + C_Q_DESC, (u32)(uintptr_t)q->desc);
    mmio_write32(cmn + C_Q_DESC + 4, 0);
    mmio_write32(cmn + C_Q_AVAIL, (u32)(uintptr_t)q->avail);
    mmio_write32(cmn + C_Q_AVAIL + 4, 0);
    mmio_write32(cmn + C_Q_USED, (u32)(uintptr_t)q->used);
    mmio_write32(cmn + C_Q_USED + 4, 0);
    mmio_write16(cmn + C_Q_MSIX, vector);
    u16 noff = mmio_read16(cmn + C_Q_NOFF);
    if ((u32)noff * v->mult + 2 > v->notify_len)
        fail("queue %u: notify offset %u beyond the notify region", index, noff);
    q->kick = v->notify + (u32)noff * v->mult;
    mmio_write16(cmn + C_Q_ENABLE, 1);
    return n;
}

void virtio_driver_ok(struct virtio_pci *v) {
    u32 cmn = v->common;
    mmio_write16(cmn + C_MSIX, 0xffff);
    mmio_write8(cmn + C_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    u8 st = mmio_read8(cmn + C_STATUS);
    if (st & 0x40) fail("device needs reset (status %x)", st);
}

void vq_desc(struct vq *q, u16 d, u64 addr, u32 len, u16 flags, u16 next) {
    q->desc[d].addr = addr;
    q->desc[d].len = len;
    q->desc[d].flags = flags;
    q->desc[d].next = next;
}

void vq_publish(struct vq *q, u16 head) {
    q->avail[2 + q->avail_idx % q->size] = head;
    barrier();
    q->avail_idx++;
    q->avail[1] = q->avail_idx;                 /* x86 keeps stores in order */
}

void vq_kick(struct vq *q) {
    __asm__ volatile("mfence" ::: "memory");    /* idx visible before avail_event is read */
    u16 old = q->kicked_at, now = q->avail_idx;
    if (old == now) return;
    q->kicked_at = now;
    if (q->event_idx) {
        u16 event = *(volatile u16 *)(q->used + 4 + 8u * q->size);
        if ((u16)(now - event - 1) >= (u16)(now - old)) return;   /* vring_need_event() false */
    } else if (*(volatile u16 *)q->used & 1) {  /* VRING_USED_F_NO_NOTIFY */
        return;
    }
    q->kicks++;
    mmio_write16(q->kick, q->index);
}

int vq_next_used(struct vq *q, u32 *id, u32 *len) {
    u16 idx = *(volatile u16 *)(q->used + 2);
    if (idx == q->used_seen) return 0;
    barrier();
    u32 slot = q->used_seen % q->size;
    *id = *(volatile u32 *)(q->used + 4 + 8 * slot);
    *len = *(volatile u32 *)(q->used + 8 + 8 * slot);
    q->used_seen++;
    return 1;
}

void vq_set_used_event(struct vq *q, u16 idx) { q->avail[2 + q->size] = idx; }
void vq_set_no_interrupt(struct vq *q, int on) { q->avail[0] = on ? 1 : 0; }
