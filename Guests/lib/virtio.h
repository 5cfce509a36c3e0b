/* virtio.h: the virtio 1.x modern PCI transport for the test kernels — device discovery through
 * the vendor capabilities, BAR mapping (64-bit BARs above 4 GiB are moved below it, since these
 * kernels run without paging), MSI-X entry 0 on a LAPIC vector, feature negotiation, one split
 * virtqueue (queue 0) in a static page, and waits that time out instead of hanging. */
#ifndef VIRTIO_H
#define VIRTIO_H
#include "lib.h"
#include "idt.h"

#define VIO_MSI_VECTOR 0x41
#define VIO_TIMER_VECTOR 0x42
#define VIO_QMAX 16
#define VIO_TIMEOUT HANG_GUARD_CYCLES          /* a hang guard only (lib.h) */

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

/* Queue 0: descriptor table at 0, avail ring at 256, used ring at 512 of one page. */
extern u8 vq_page[4096];
#define DESC ((volatile struct vq_desc *)vq_page)
#define AVAIL ((volatile u16 *)(vq_page + 256))          /* flags, idx, ring[N], used_event */
#define USED ((volatile u8 *)(vq_page + 512))            /* flags, idx, {id, len}[N], avail_event */
#define USED_IDX (*(volatile u16 *)(USED + 2))
#define USED_ID(i) (*(volatile u32 *)(USED + 4 + 8 * (i)))
#define USED_LEN(i) (*(volatile u32 *)(USED + 8 + 8 * (i)))

/* Interrupts taken on VIO_MSI_VECTOR so far. */
extern volatile u32 msix_hits;

struct virtio_pci {
    u32 bdf;
    u16 devid;
    u32 common, notify, isr, device;   /* 32-bit addresses of the structures */
    u32 notify_len, mult;
    u16 qn;                            /* queue 0's size */
    u16 avail_idx, used_seen;
    u32 kick;                          /* queue 0's notify address */
};

/* Finds transitional or modern `name` on bus 0, walks its capabilities, maps the BARs, enables
   memory decode and bus mastering; prints "NAME at ..." and the "caps" line. Fails if absent. */
void virtio_find(struct virtio_pci *v, u16 transitional_id, u16 modern_id, const char *name);
/* IDT, remapped and masked 8259, LAPIC, MSI-X entry 0 → VIO_MSI_VECTOR, and a periodic LAPIC
   timer as the hlt wake-up (polling when it never ticks, or with "poll" on the command line). */
void virtio_interrupts(struct virtio_pci *v);
/* Reset, ACKNOWLEDGE, DRIVER; checks VERSION_1 and returns the device's features[31:0]. */
u32 virtio_begin(struct virtio_pci *v);
/* Driver features = driver_lo + VERSION_1; FEATURES_OK, checked. */
void virtio_features_ok(struct virtio_pci *v, u32 driver_lo);
/* Queue 0 of min(size, VIO_QMAX) entries on MSI-X vector 0, then DRIVER_OK; prints
   "queue size N"; fails below `min_size`. */
void virtio_queue0(struct virtio_pci *v, u16 min_size);
/* Publishes chain `head` in the avail ring and rings the doorbell. */
void virtio_submit(struct virtio_pci *v, u16 head);
/* Waits (sti; hlt or polling) until the used idx reaches the avail idx / `n` interrupts
   arrived; 0 on timeout. */
int virtio_wait_used(struct virtio_pci *v);
int virtio_wait_interrupts(u32 n);
/* Lets a stray extra interrupt land, then interrupts off and the timer masked. */
void virtio_quiesce(void);
#endif
