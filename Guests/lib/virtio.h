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

/* Queue 0: descriptor table at 0, avail ring at 256, used ring at 512 of one page: vq_page,
   or another page-aligned page the kernel points vq_ring at before virtio_queue0(). */
extern u8 vq_page[4096];
extern u8 *vq_ring;
#define DESC ((volatile struct vq_desc *)vq_ring)
#define AVAIL ((volatile u16 *)(vq_ring + 256))          /* flags, idx, ring[N], used_event */
#define USED ((volatile u8 *)(vq_ring + 512))            /* flags, idx, {id, len}[N], avail_event */
#define USED_IDX (*(volatile u16 *)(USED + 2))
#define USED_ID(i) (*(volatile u32 *)(USED + 4 + 8 * (i)))
#define USED_LEN(i) (*(volatile u32 *)(USED + 8 + 8 * (i)))

#define VIRTQ_DESC_F_INDIRECT 4
/* With VIRTIO_F_EVENT_IDX: the driver's used_event and the device's avail_event. */
#define USED_EVENT(v) (AVAIL[2 + (v)->qn])
#define AVAIL_EVENT(v) (*(volatile u16 *)(USED + 4 + 8 * (v)->qn))
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29

/* Completion interrupts taken so far: on VIO_MSI_VECTOR with MSI-X, or INTx deliveries whose
   ISR read had bit 0 (queue interrupt) set. */
extern volatile u32 msix_hits;
/* INTx deliveries whose ISR read was 0 (not this device's; a shared line, or a host's extra
   injection). */
extern volatile u32 intx_spurious;

struct virtio_pci {
    u32 bdf;
    u16 devid;
    u32 common, notify, isr, device;   /* 32-bit addresses of the structures */
    u32 notify_len, mult;
    u16 qn;                            /* queue 0's size */
    u16 avail_idx, used_seen;
    u32 kick;                          /* queue 0's notify address */
    /* Appended for INTx, MSI-X control and EVENT_IDX (zero after virtio_find): */
    u32 msix;                          /* MSI-X capability offset, 0 if there is none */
    u32 msix_table, msix_pba;          /* their 32-bit addresses (0 without MSI-X) */
    u8 intx;                           /* completions by INTx (no MSI-X, or not enabled) */
    u8 irq;                            /* INTx: the interrupt line firmware assigned */
    u8 event_idx;                      /* VIRTIO_F_EVENT_IDX negotiated */
    u32 kicks;                         /* notify writes made */
};

/* Finds transitional or modern `name` on bus 0, walks its capabilities, maps the BARs, enables
   memory decode and bus mastering; prints "NAME at ..." and the "caps" line. Fails if absent
   or if it has no MSI-X capability. */
void virtio_find(struct virtio_pci *v, u16 transitional_id, u16 modern_id, const char *name);
/* The same, but a device without MSI-X is accepted (v->msix == 0; "msix=none" printed) and
   will complete by INTx. */
void virtio_find_any(struct virtio_pci *v, u16 transitional_id, u16 modern_id, const char *name);
/* IDT, remapped and masked 8259, LAPIC, MSI-X entry 0 → VIO_MSI_VECTOR, and a periodic LAPIC
   timer as the hlt wake-up (polling when it never ticks, or with "poll" on the command line).
   With v->intx set (always when there is no MSI-X) MSI-X stays disabled and the device's
   INTx line (config 0x3c, as firmware routed it) goes through the IOAPIC, with the MADT's
   trigger mode and polarity, to VIO_MSI_VECTOR; the handler reads the ISR (which lowers the
   line) and counts a completion when its bit 0 is set. */
void virtio_interrupts(struct virtio_pci *v);
/* MSI-X table entry `n`: address 0xfee00000 (APIC ID 0), data `vector`, mask bit `masked`. */
void virtio_msix_entry(struct virtio_pci *v, u32 n, u8 vector, int masked);
/* The MSI-X message control register (enable bit 15, function mask bit 14). */
u16 virtio_msix_control(struct virtio_pci *v);
void virtio_set_msix_control(struct virtio_pci *v, u16 control);
/* Reset, ACKNOWLEDGE, DRIVER; checks VERSION_1 and returns the device's features[31:0]. */
u32 virtio_begin(struct virtio_pci *v);
/* Driver features = driver_lo + VERSION_1; FEATURES_OK, checked. */
void virtio_features_ok(struct virtio_pci *v, u32 driver_lo);
/* Queue 0 of min(size, VIO_QMAX) entries on MSI-X vector 0 (none with INTx), then DRIVER_OK;
   prints "queue size N"; fails below `min_size`. */
void virtio_queue0(struct virtio_pci *v, u16 min_size);
/* The same on MSI-X vector `vector` (0xffff: none). */
void virtio_queue0_vector(struct virtio_pci *v, u16 min_size, u16 vector);
/* Publishes chain `head` in the avail ring and rings the doorbell (with EVENT_IDX: sets
   used_event to ask for an interrupt at the next completion, and kicks only when the
   device's avail_event asks for it). */
void virtio_submit(struct virtio_pci *v, u16 head);
/* Waits (sti; hlt or polling) until the used idx reaches the avail idx / `n` interrupts
   arrived; 0 on timeout. */
int virtio_wait_used(struct virtio_pci *v);
int virtio_wait_interrupts(u32 n);
/* Lets a stray extra interrupt land, then interrupts off and the timer masked. */
void virtio_quiesce(void);
#endif
