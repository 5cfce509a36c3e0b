/*
 * hostile.h: what the parts of the hostile guest share.
 *
 * The guest is a 32-bit Multiboot kernel linked with the shared Guests/lib objects (start.S,
 * isr.S, trampoline.S, console, cmdline, pci, acpi, idt, string); everything hostile lives in
 * this directory. The bootstrap processor (BSP) drives the attacks and prints; one application
 * processor (AP) storms other hardware at the same time and never prints.
 */
#ifndef HOSTILE_H
#define HOSTILE_H
#include "../lib/lib.h"
#include "../lib/idt.h"

/* ---- seeded randomness: xorshift64, one state per CPU ---- */
struct rnd { u64 s; };
static inline u32 rnd32(struct rnd *r) {
    r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17;
    return (u32)(r->s >> 16);
}
static inline u32 rnd_below(struct rnd *r, u32 n) { return n ? rnd32(r) % n : 0; }
void rnd_seed(struct rnd *r, u32 seed, u32 stream);

/* ---- time: TSC calibrated against the ACPI PM timer at start-up ---- */
extern u64 tsc_per_ms;
static inline u64 deadline_ms(u32 ms) { return rdtsc() + tsc_per_ms * ms; }
static inline int past(u64 deadline) { return (i64)(rdtsc() - deadline) > 0; }
void time_init(void);

/* ---- interrupts: every vector >= 0x20 is counted and acknowledged ---- */
#define V_IPI 0x4f          /* wakes the AP */
#define V_RNG_CFG 0x50      /* virtio-rng: MSI-X entry 0 (config changes) */
#define V_RNG_VQ 0x51       /*             MSI-X entry 1 (queue 0) */
#define V_BLK_CFG 0x52      /* virtio-blk: the same */
#define V_BLK_VQ 0x53
#define V_STORM_LO 0x60     /* vectors the MSI-X storms may program: 0x60..0xef */
#define V_STORM_HI 0xef
extern volatile u32 vector_hits[256];
void interrupts_init(void);   /* BSP: IDT, 8259 remapped and masked, LAPIC enabled */
void interrupts_ap(void);     /* AP: the same IDT, its LAPIC enabled */

/* ---- command line ---- */
#define A_RINGS (1u << 0)
#define A_BLKREQ (1u << 1)
#define A_WRAP (1u << 2)
#define A_FLOOD (1u << 3)
#define A_MSIX (1u << 4)
#define A_BARS (1u << 5)
#define A_FWCFG (1u << 6)
#define A_PORTS (1u << 7)
#define A_ALL 0xffu
extern u32 attacks;           /* attacks=rings,blkreq,... (default: all) */
extern u32 spare_irq;         /* spare pc-testdev's IRQ ports 0x2010-0x2017 (QEMU asserts) */
extern u32 spare_msix_enable; /* storms leave MSI-X enabled (QEMU asserts when it toggles) */
extern u32 ram_top;           /* end of RAM below 4 GiB, from Multiboot */
extern u32 wrap_requests;     /* wrap=: requests in the index-wrap attack */
extern u32 flood_descs;       /* flood_descs=: entries of the flood's indirect table */
extern u32 flood_ms;          /* flood_ms=: how long virtio-blk may wait behind the flood */

/* only=/skip=: comma-separated ring or block-request attack names to run / leave out. */
int selected(const char *name);
/* lenient=0: leave out the attacks whose outcome is only printed (comparing with QEMU). */
extern u32 lenient_too;

/* ---- verdicts ---- */
extern u32 verdicts_ok, verdicts_failed;
/* One line "hostile: verdict CLASS/NAME dev=DEV ok|FAIL DETAILS"; ok is nonzero for ok. */
void verdict(const char *cls, const char *name, const char *dev, int ok, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Ends the run early when the VMM stops answering: further attacks could only time out. */
void __attribute__((noreturn)) give_up(const char *why);

/* ---- virtio over PCI (modern interface), several devices at once ---- */
struct vq_desc { u64 addr; u32 len; u16 flags, next; };
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define AVAIL_F_NO_INTERRUPT 1

/* common configuration registers */
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

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED 0x80

#define FEAT_INDIRECT (1u << 28)
#define FEAT_EVENT_IDX (1u << 29)
#define QMAX 256

struct vcap { int found; u32 bar, off, len; };

struct vdev {
    const char *name;
    int present;
    u32 bdf;
    u16 devid;
    u8 cfg_vec, vq_vec;
    /* PCI state saved at start-up and restored after every storm */
    u32 bar[6];
    u32 bar_size[6];
    u8 bar_is64[6];
    u16 command;
    u8 msix_cap;
    u16 msix_entries;
    struct vcap common_cap, notify_cap, isr_cap, device_cap;
    u32 table_bir, table_off, pba_bir, pba_off;
    u32 mult;
    /* addresses derived from the BARs */
    u32 common, notify, isr, devcfg, msix_table, msix_pba;
    /* queue 0 */
    u16 qmax, qn;
    volatile struct vq_desc *desc;
    volatile u16 *avail;          /* flags, idx, ring[qn], used_event */
    volatile u8 *used;            /* flags, idx, {id, len}[qn], avail_event */
    u16 avail_idx, used_seen;
    u32 kick;
    u64 capacity;                 /* virtio-blk: sectors */
};
extern struct vdev rng, blk;

static inline u8 c_read8(struct vdev *d, u32 r) { return mmio_read8(d->common + r); }
static inline u16 c_read16(struct vdev *d, u32 r) { return mmio_read16(d->common + r); }
static inline u32 c_read32(struct vdev *d, u32 r) { return mmio_read32(d->common + r); }
static inline void c_write8(struct vdev *d, u32 r, u8 v) { mmio_write8(d->common + r, v); }
static inline void c_write16(struct vdev *d, u32 r, u16 v) { mmio_write16(d->common + r, v); }
static inline void c_write32(struct vdev *d, u32 r, u32 v) { mmio_write32(d->common + r, v); }
static inline void c_write64(struct vdev *d, u32 r, u64 v) {
    c_write32(d, r, (u32)v);
    c_write32(d, r + 4, (u32)(v >> 32));
}
static inline u16 used_idx(struct vdev *d) { return *(volatile u16 *)(d->used + 2); }
static inline u32 used_id(struct vdev *d, u32 slot) { return *(volatile u32 *)(d->used + 4 + 8 * slot); }
static inline u32 used_len(struct vdev *d, u32 slot) { return *(volatile u32 *)(d->used + 8 + 8 * slot); }

/* Finds the device, records its capabilities and PCI state (BARs moved below 4 GiB if needed). */
void vdev_find(struct vdev *d, u16 transitional, u16 modern);
/* Writes back the saved BARs and command register, MSI-X on with entries 0/1 on the device's
   vectors; PCI config space: only while the AP is idle. */
void vdev_restore_pci(struct vdev *d);
/* MSI-X off (before random storms, so random table writes fire nothing). */
void vdev_msix_off(struct vdev *d);
/* Writes status 0 and polls it back to 0; 0 when the device never finishes the reset. */
int vdev_reset(struct vdev *d);
/* Status with driver semantics: read-modify-write, as Linux's virtio_add_status(). */
void vdev_add_status(struct vdev *d, u8 bits);
/* ACKNOWLEDGE, DRIVER, features (VERSION_1 plus `want_lo` where offered); 0 when FEATURES_OK
   is refused. */
int vdev_features(struct vdev *d, u32 want_lo);
/* Queue 0 with these rings (size qn), vectors 0 (config) and 1 (queue), enabled. */
void vdev_queue(struct vdev *d, u16 qn, u64 desc, u64 avail, u64 used);
/* The whole good path: reset, features, queue 0 on the device's own pages, DRIVER_OK. */
int vdev_setup(struct vdev *d, u32 want_lo);
/* Publishes head in the avail ring and kicks. */
void vdev_submit(struct vdev *d, u16 head);
void vdev_kick(struct vdev *d);
/* Waits for the used index to reach the avail index; 0 on timeout. */
int vdev_wait_used(struct vdev *d, u32 ms);
/* Waits until vector_hits[vec] exceeds `before`. */
int wait_vector(u8 vec, u32 before, u32 ms);

/* How long a good request may take (5 s; flood_ms= for the one during the flood). */
extern u32 request_ms;
/* Good requests: 1 when served correctly (checked data, used id and length, the interrupt). */
int rng_good(struct vdev *d, char *why, u32 whylen);
int blk_good(struct vdev *d, u64 sector, u32 pattern, char *why, u32 whylen);
/* One virtio-blk request from the caller's descriptors (already in the table at head);
   returns the used length and sets *status; -1 on timeout. */
#define BLK_IN 0
#define BLK_OUT 1
#define BLK_FLUSH 4
#define BLK_GET_ID 8
#define BLK_DISCARD 11
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
struct blk_hdr { u32 type, reserved; u64 sector; };
/* Recovery after an attack: reset, set up again, serve a good request. Prints the verdict. */
int recover(struct vdev *d, const char *cls, const char *name);

/* Static memory the attacks point the devices at. */
extern u8 big[0x100000];          /* 1 MiB: indirect tables, flood buffers, DMA targets */
extern u8 page_buf[65536];        /* one 64 KiB data buffer */
void snprint(char *out, u32 n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- the attack classes (BSP side) ---- */
void attack_rings(struct rnd *r, struct vdev *d);
void attack_blkreq(struct rnd *r);
void attack_wrap(struct rnd *r, struct vdev *d);
void attack_flood(struct rnd *r);
void attack_msix(struct rnd *r, struct vdev *d);
void attack_bars(struct rnd *r, struct vdev *d);
void attack_fwcfg(struct rnd *r);
void attack_ports(struct rnd *r, u32 count);
u32 msix_storm_count(void);                      /* storm=: MSI-X writes per CPU */
/* leakprobe=N: N lock-step unmask/mask pairs on one entry and nothing else, for measuring a
   route leak from outside (gdb on KVM_SET_GSI_ROUTING). */
void msix_leakprobe(struct vdev *d, u32 n);

/* ---- storms the AP (and sometimes the BSP) run; each returns the operations done ---- */
u32 storm_ports(struct rnd *r, u32 count, u8 *buf);     /* buf: 4 KiB for string I/O */
u32 storm_msix(struct rnd *r, struct vdev *d, u32 entry, u32 count, int config_too);
u32 storm_msix_data(struct rnd *r, struct vdev *d, u32 entry, u32 count);
u32 lockstep_write(u32 addr, u32 value, u32 count);
int lockstep_go(u32 k, u32 addr, u32 value);
extern volatile u32 sync_ready, sync_go;
u32 storm_bars(struct rnd *r, struct vdev *d, const struct vdev *spare, u32 count);
u32 storm_fwcfg(struct rnd *r, u32 count, u8 *buf);
int forbidden_port(u16 p, u32 width);
/* ACPI PM1a event/control ports from the FADT, read before any storm. */
extern u16 pm1a_evt, pm1a_cnt, pm_tmr;

/* ---- the AP ---- */
enum ap_job { AP_IDLE, AP_PORTS, AP_MSIX, AP_MSIX_DATA, AP_LOCKSTEP, AP_BARS, AP_FWCFG };
struct ap_cmd {
    enum ap_job job;
    struct vdev *dev;             /* the device the job attacks */
    const struct vdev *spare;     /* the device the BSP is using: left alone */
    u32 entry, count, seed;
    u32 addr, value;              /* AP_LOCKSTEP: the word the AP writes in step with the BSP */
};
extern u32 ap_count;              /* application processors started */
void ap_start_all(void);
/* Starts a job on the AP; ap_wait() waits for it (0 when the AP never finishes). */
void ap_run(const struct ap_cmd *c);
int ap_wait(u32 ms);
/* Whether the AP finished its job (without asking it to stop). */
int ap_finished(void);
/* Operations the AP did in its last job. */
extern volatile u32 ap_ops;
/* Set by ap_wait(): a job started with count 0 runs until it sees this. */
extern volatile u32 ap_stop;
/* Loop condition of the storms: `count` operations, or until stopped when count is 0. */
static inline int storm_more(u32 i, u32 count) { return count ? i < count : !ap_stop && i < 10000000; }
#endif
