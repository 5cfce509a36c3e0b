// CVirtIO: the kernel's virtio uapi headers and <linux/pci_regs.h>, and nothing else — feature
// bits, status bits, ring flags, PCI capability types and field offsets, request types and
// status codes, device IDs — plus the byte layouts of the spec's structures as constants.
//
// A module of its own (declared next to CKVM in this directory's module.modulemap) so that the
// VirtIO module, which holds no unsafe code, sees these definitions without CKVM's ioctl and
// pointer-taking wrappers. Integer macros import into Swift as constants (`Int32`, `UInt32`
// for values above INT32_MAX); struct layouts do not, so the offsets and sizes the devices
// need are spelled here with offsetof/sizeof, as CKVM does for kvm_run. No functions.
#ifndef CVIRTIO_H
#define CVIRTIO_H

#include <stddef.h>
// vring_init() and vring_size() (pointer-taking, legacy layout) stay out.
#define VIRTIO_RING_NO_LEGACY
// The legacy (virtio 0.9) I/O-port register offsets stay out; modern devices only here.
#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_net.h>
#include <linux/virtio_console.h>
#include <linux/pci_regs.h>

// Split virtqueue (virtio 1.x §2.7): struct vring_desc, vring_avail, vring_used(_elem).
static const size_t CVIRTIO_DESC_SIZE = sizeof(struct vring_desc);
static const size_t CVIRTIO_DESC_LEN = offsetof(struct vring_desc, len);
static const size_t CVIRTIO_DESC_FLAGS = offsetof(struct vring_desc, flags);
static const size_t CVIRTIO_DESC_NEXT = offsetof(struct vring_desc, next);
static const size_t CVIRTIO_AVAIL_FLAGS = offsetof(struct vring_avail, flags);
static const size_t CVIRTIO_AVAIL_IDX = offsetof(struct vring_avail, idx);
static const size_t CVIRTIO_AVAIL_RING = offsetof(struct vring_avail, ring);
static const size_t CVIRTIO_AVAIL_ELEM_SIZE = sizeof(__virtio16);
static const size_t CVIRTIO_USED_FLAGS = offsetof(struct vring_used, flags);
static const size_t CVIRTIO_USED_IDX = offsetof(struct vring_used, idx);
static const size_t CVIRTIO_USED_RING = offsetof(struct vring_used, ring);
static const size_t CVIRTIO_USED_ELEM_SIZE = sizeof(struct vring_used_elem);
static const size_t CVIRTIO_USED_ELEM_LEN = offsetof(struct vring_used_elem, len);
/// used_event (after the avail ring) and avail_event (after the used ring) are one __virtio16.
static const size_t CVIRTIO_EVENT_SIZE = sizeof(__virtio16);

// Virtio PCI capabilities (virtio 1.x §4.1.4): struct virtio_pci_cap and its variants.
static const size_t CVIRTIO_PCI_CAP_SIZE = sizeof(struct virtio_pci_cap);
static const size_t CVIRTIO_PCI_NOTIFY_CAP_SIZE = sizeof(struct virtio_pci_notify_cap);
static const size_t CVIRTIO_PCI_CFG_CAP_SIZE = sizeof(struct virtio_pci_cfg_cap);
static const size_t CVIRTIO_PCI_CFG_CAP_DATA = offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);

// virtio-blk (virtio 1.x §5.2): the configuration space, the request header, a discard or
// write-zeroes segment.
static const size_t CVIRTIO_BLK_CFG_CAPACITY = offsetof(struct virtio_blk_config, capacity);
static const size_t CVIRTIO_BLK_CFG_SEG_MAX = offsetof(struct virtio_blk_config, seg_max);
static const size_t CVIRTIO_BLK_CFG_CYLINDERS = offsetof(struct virtio_blk_config, geometry.cylinders);
static const size_t CVIRTIO_BLK_CFG_HEADS = offsetof(struct virtio_blk_config, geometry.heads);
static const size_t CVIRTIO_BLK_CFG_SECTORS = offsetof(struct virtio_blk_config, geometry.sectors);
static const size_t CVIRTIO_BLK_CFG_BLK_SIZE = offsetof(struct virtio_blk_config, blk_size);
static const size_t CVIRTIO_BLK_CFG_WCE = offsetof(struct virtio_blk_config, wce);
static const size_t CVIRTIO_BLK_CFG_NUM_QUEUES = offsetof(struct virtio_blk_config, num_queues);
static const size_t CVIRTIO_BLK_CFG_MAX_DISCARD_SECTORS = offsetof(struct virtio_blk_config, max_discard_sectors);
static const size_t CVIRTIO_BLK_CFG_MAX_DISCARD_SEG = offsetof(struct virtio_blk_config, max_discard_seg);
static const size_t CVIRTIO_BLK_CFG_DISCARD_ALIGNMENT = offsetof(struct virtio_blk_config, discard_sector_alignment);
static const size_t CVIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS = offsetof(struct virtio_blk_config, max_write_zeroes_sectors);
static const size_t CVIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG = offsetof(struct virtio_blk_config, max_write_zeroes_seg);
static const size_t CVIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP = offsetof(struct virtio_blk_config, write_zeroes_may_unmap);
/// The configuration through the padding after write_zeroes_may_unmap: the fields the
/// features offered here use (later kernels append secure-erase and zoned fields).
static const size_t CVIRTIO_BLK_CFG_SIZE_THROUGH_WRITE_ZEROES =
    offsetof(struct virtio_blk_config, unused1) + sizeof(((struct virtio_blk_config *)0)->unused1);
static const size_t CVIRTIO_BLK_OUTHDR_SIZE = sizeof(struct virtio_blk_outhdr);
static const size_t CVIRTIO_BLK_OUTHDR_TYPE = offsetof(struct virtio_blk_outhdr, type);
static const size_t CVIRTIO_BLK_OUTHDR_SECTOR = offsetof(struct virtio_blk_outhdr, sector);
static const size_t CVIRTIO_BLK_SEGMENT_SIZE = sizeof(struct virtio_blk_discard_write_zeroes);
static const size_t CVIRTIO_BLK_SEGMENT_SECTOR = offsetof(struct virtio_blk_discard_write_zeroes, sector);
static const size_t CVIRTIO_BLK_SEGMENT_NUM_SECTORS = offsetof(struct virtio_blk_discard_write_zeroes, num_sectors);
static const size_t CVIRTIO_BLK_SEGMENT_FLAGS = offsetof(struct virtio_blk_discard_write_zeroes, flags);

// virtio-net (virtio 1.x §5.1): the configuration space and the per-packet headers.
static const size_t CVIRTIO_NET_CFG_MAC = offsetof(struct virtio_net_config, mac);
static const size_t CVIRTIO_NET_CFG_STATUS = offsetof(struct virtio_net_config, status);
static const size_t CVIRTIO_NET_CFG_MAX_VQ_PAIRS = offsetof(struct virtio_net_config, max_virtqueue_pairs);
static const size_t CVIRTIO_NET_CFG_MTU = offsetof(struct virtio_net_config, mtu);
/// struct virtio_net_hdr: what a tap with IFF_VNET_HDR exchanges (no num_buffers).
static const size_t CVIRTIO_NET_HDR_SIZE = sizeof(struct virtio_net_hdr);
/// struct virtio_net_hdr_mrg_rxbuf: the header a virtio 1.x driver always uses.
static const size_t CVIRTIO_NET_HDR_MRG_RXBUF_SIZE = sizeof(struct virtio_net_hdr_mrg_rxbuf);
static const size_t CVIRTIO_NET_HDR_NUM_BUFFERS = offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers);
static const size_t CVIRTIO_NET_CTRL_HDR_SIZE = sizeof(struct virtio_net_ctrl_hdr);

// virtio-console (virtio 1.x §5.3): the configuration space and the control message.
static const size_t CVIRTIO_CONSOLE_CFG_COLS = offsetof(struct virtio_console_config, cols);
static const size_t CVIRTIO_CONSOLE_CFG_ROWS = offsetof(struct virtio_console_config, rows);
static const size_t CVIRTIO_CONSOLE_CFG_MAX_NR_PORTS = offsetof(struct virtio_console_config, max_nr_ports);
static const size_t CVIRTIO_CONSOLE_CFG_EMERG_WR = offsetof(struct virtio_console_config, emerg_wr);
static const size_t CVIRTIO_CONSOLE_CFG_SIZE = sizeof(struct virtio_console_config);
static const size_t CVIRTIO_CONSOLE_CONTROL_SIZE = sizeof(struct virtio_console_control);
static const size_t CVIRTIO_CONSOLE_CONTROL_ID = offsetof(struct virtio_console_control, id);
static const size_t CVIRTIO_CONSOLE_CONTROL_EVENT = offsetof(struct virtio_console_control, event);
static const size_t CVIRTIO_CONSOLE_CONTROL_VALUE = offsetof(struct virtio_console_control, value);

#endif
