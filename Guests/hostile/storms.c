/*
 * storms.c: seeded random accesses, run by the AP (and by the BSP in the ports and MSI-X
 * classes): ports and string I/O, PCI configuration space, MMIO holes, one device's MSI-X
 * table, one device's BARs, fw_cfg. Each returns the operations done. They never write where
 * the guest itself would stop (debug-exit, reset, S5, its console, the LAPIC), nor QEMU's
 * hotplug registers (a random write there unplugs a device or a CPU under QEMU).
 */
#include "hostile.h"

#define FWCFG_SEL 0x510
#define FWCFG_DATA 0x511
#define FWCFG_DMA_HI 0x514
#define FWCFG_DMA_LO 0x518

int forbidden_port(u16 p, u32 width) {
    for (u32 i = 0; i < width; i++) {
        u16 q = (u16)(p + i);
        if (spare_irq && q >= 0x2010 && q <= 0x2017) return 1;
        if (q >= 0xf4 && q <= 0xf7) return 1;              /* isa-debug-exit: ends the run */
        if (q == 0xcf9 || q == 0x64 || q == 0x92) return 1; /* reset paths (see ports_reset) */
        if (q == 0x604 || q == 0x605) return 1;            /* PM1a control: S5 (see ports_pm) */
        if (q >= 0x3f8 && q <= 0x3ff) return 1;            /* our console (see ports_serial) */
        if (q >= 0x514 && q <= 0x51b) return 1;            /* fw_cfg DMA: crafted in fwcfg instead */
        if (q >= 0xae00 && q <= 0xae1f) return 1;          /* QEMU: ACPI PCI hotplug (eject) */
        if (q >= 0xaf00 && q <= 0xaf1f) return 1;          /* QEMU: ACPI CPU hotplug */
        if (q >= 0x0cd8 && q <= 0x0ce7) return 1;          /* QEMU: modern CPU hotplug */
        if (q >= 0x0a00 && q <= 0x0a17) return 1;          /* QEMU: memory hotplug */
    }
    return 0;
}

static void port_op(struct rnd *r) {
    u16 p = (u16)rnd32(r);
    if (rnd32(r) & 1) p &= 0x0fff;                      /* favour the crowded low ports */
    u32 op = rnd_below(r, 6), v = rnd32(r);
    u32 w = op % 3 == 0 ? 1 : op % 3 == 1 ? 2 : 4;
    if (forbidden_port(p, w)) return;
    switch (op) {
    case 0: outb(p, (u8)v); break;
    case 1: outw(p, (u16)v); break;
    case 2: outl(p, v); break;
    case 3: (void)inb(p); break;
    case 4: (void)inw(p); break;
    default: (void)inl(p); break;
    }
}

static void pci_op(struct rnd *r) {
    outl(0xcf8, rnd32(r) | (rnd32(r) & 1 ? 0x80000000u : 0));
    u16 port = (u16)(0xcfc + rnd_below(r, 4));
    switch (rnd_below(r, 6)) {
    case 0: outb(port, (u8)rnd32(r)); break;
    case 1: outw(port, (u16)rnd32(r)); break;
    case 2: outl(port, rnd32(r)); break;
    case 3: (void)inb(port); break;
    case 4: (void)inw(port); break;
    default: (void)inl(port); break;
    }
}

/* A random address in the holes: PCI window, pc-testdev scratch, IOAPIC/HPET (read only), VGA
   hole, just past RAM. Never RAM, never the LAPIC (it could stop this CPU). */
static u32 mmio_addr(struct rnd *r, int *read_only) {
    static const u32 windows[][2] = {
        { 0xfe000000u, 0xc00000 }, { 0xff000000u, 0x10000 }, { 0xe0000000u, 0x1000000 },
        { 0xa0000u, 0x20000 }, { 0xfec00000u, 0x1000 }, { 0xfed00000u, 0x1000 }, { 0, 0x100000 },
    };
    u32 wi = rnd_below(r, ARRAY_SIZE(windows));
    u32 base = windows[wi][0] ? windows[wi][0] : ram_top + 0x200000;   /* past RAM's real end */
    *read_only = wi == 4 || wi == 5;                    /* an IOAPIC entry could INIT this CPU */
    return base + rnd_below(r, windows[wi][1]);
}

static void mmio_op(struct rnd *r) {
    int ro;
    u32 a = mmio_addr(r, &ro);
    switch (rnd_below(r, 6) + (ro ? 3 : 0)) {
    case 0: mmio_write8(a, (u8)rnd32(r)); break;
    case 1: mmio_write16(a, (u16)rnd32(r)); break;
    case 2: mmio_write32(a, rnd32(r)); break;
    case 3: (void)mmio_read8(a); break;
    case 4: (void)mmio_read16(a); break;
    default: (void)mmio_read32(a); break;
    }
}

/* String I/O on a random port, or string moves to/from a random MMIO address, counts up to
   1024 bytes, sometimes backwards (DF=1). `buf` holds 4 KiB. */
static void string_op(struct rnd *r, u8 *buf) {
    u32 kind = rnd_below(r, 8), width = 1u << rnd_below(r, 3);
    u32 n = 1 + rnd_below(r, 1024 / width);
    int back = rnd_below(r, 4) == 0;
    u32 lo = (u32)buf + (back ? 4096 - width : 0);
    if (kind < 5) {
        u16 p = (u16)rnd32(r);
        if (rnd32(r) & 1) p &= 0x0fff;
        if (forbidden_port(p, width)) return;
        if (back) __asm__ volatile("std" ::: "memory");
        if (kind & 1) {
            if (width == 1) __asm__ volatile("rep insb" : "+D"(lo), "+c"(n) : "d"(p) : "memory");
            else if (width == 2) __asm__ volatile("rep insw" : "+D"(lo), "+c"(n) : "d"(p) : "memory");
            else __asm__ volatile("rep insl" : "+D"(lo), "+c"(n) : "d"(p) : "memory");
        } else {
            if (width == 1) __asm__ volatile("rep outsb" : "+S"(lo), "+c"(n) : "d"(p) : "memory");
            else if (width == 2) __asm__ volatile("rep outsw" : "+S"(lo), "+c"(n) : "d"(p) : "memory");
            else __asm__ volatile("rep outsl" : "+S"(lo), "+c"(n) : "d"(p) : "memory");
        }
        __asm__ volatile("cld" ::: "memory");
        return;
    }
    int ro;
    u32 a = mmio_addr(r, &ro) & ~(width - 1);
    if (n > 64) n = 64;
    if (back) { a += (n - 1) * width; __asm__ volatile("std" ::: "memory"); }
    if (ro || (kind & 1)) {                              /* MMIO -> RAM */
        if (width == 4) __asm__ volatile("rep movsl" : "+S"(a), "+D"(lo), "+c"(n) :: "memory");
        else __asm__ volatile("rep movsb" : "+S"(a), "+D"(lo), "+c"(n) :: "memory");
    } else {                                             /* RAM -> MMIO */
        if (width == 4) __asm__ volatile("rep movsl" : "+S"(lo), "+D"(a), "+c"(n) :: "memory");
        else __asm__ volatile("rep movsb" : "+S"(lo), "+D"(a), "+c"(n) :: "memory");
    }
    __asm__ volatile("cld" ::: "memory");
}

u32 storm_ports(struct rnd *r, u32 count, u8 *buf) {
    u32 flags;
    __asm__ volatile("pushf; pop %0; cli" : "=r"(flags) :: "memory");
    for (u32 i = 0; i < 4096; i++) buf[i] = (u8)rnd32(r);
    u32 i;
    for (i = 0; storm_more(i, count); i++) {
        switch (rnd_below(r, 8)) {
        case 0: case 1: case 2: port_op(r); break;
        case 3: case 4: pci_op(r); break;
        case 5: case 6: mmio_op(r); break;
        default: string_op(r, buf); break;
        }
    }
    if (flags & 0x200) sti();
    return i;
}

/* ---- MSI-X: one entry of one device, safe messages only ---- */

/* Fixed or lowest-priority delivery of a storm vector to the BSP, the AP or everyone: never
   NMI, INIT, SMI or ExtINT, never a vector the checks count. */
static u32 safe_data(struct rnd *r) {
    u32 v = V_STORM_LO + rnd_below(r, V_STORM_HI - V_STORM_LO + 1);
    return v | (rnd32(r) & 1 ? 0x100 : 0) | (rnd32(r) & 0xc000);
}
static u32 safe_address(struct rnd *r) {
    static const u32 dest[] = { 0, 1, 0xff };
    return 0xfee00000u | dest[rnd_below(r, 3)] << 12 | (rnd32(r) & 0xc);
}

u32 storm_msix(struct rnd *r, struct vdev *d, u32 entry, u32 count, int config_too) {
    u32 i;
    for (i = 0; storm_more(i, count); i++) {
        u32 e = rnd_below(r, 8) ? entry : rnd_below(r, d->msix_entries + 2u);
        u32 at = d->msix_table + 16 * e;
        if (e >= d->msix_entries) {                       /* past the table: reads and ignored writes */
            if (e * 16 + 16 <= 0x800 && d->table_off == 0) mmio_write32(at + 8, safe_data(r));
            (void)mmio_read32(d->msix_pba);
            continue;
        }
        switch (rnd_below(r, config_too ? 9 : 8)) {
        case 0: mmio_write32(at + 0, safe_address(r)); break;
        case 1: mmio_write32(at + 4, rnd_below(r, 4) ? 0 : rnd32(r) & 0xff); break;
        case 2: mmio_write32(at + 8, safe_data(r)); break;
        case 3: case 4: mmio_write32(at + 12, rnd32(r) & 1); break;
        case 5: (void)mmio_read32(d->msix_pba); (void)mmio_read32(at + (rnd32(r) & 12)); break;
        case 6: mmio_write32(d->msix_pba + (rnd32(r) & 4), rnd32(r)); break;   /* read-only */
        case 7: mmio_write32(at + 12, 0); mmio_write32(at + 12, 1); mmio_write32(at + 12, 0); break;
        default:                                          /* enable / function mask */
            pci_write16(d->bdf, d->msix_cap + 2, (u16)((spare_msix_enable ? 0x8000 : rnd32(r) & 0x8000) | (rnd32(r) & 0x4000)));
            break;
        }
    }
    return i;
}

/* Only the message data of `entry`: a fixed-delivery storm vector for the BSP, the entry left
   unmasked. Whatever write lands last is what the entry holds, and what must fire. */
volatile u32 sync_ready, sync_go;

u32 storm_msix_data(struct rnd *r, struct vdev *d, u32 entry, u32 count) {
    u32 at = d->msix_table + 16 * entry, i;
    for (i = 0; storm_more(i, count); i++)
        mmio_write32(at + 8, V_STORM_LO + rnd_below(r, V_STORM_HI - V_STORM_LO + 1));
    return i;
}

/* The AP's half of lock-step writes: for each round, announce readiness, wait for the BSP's
   go, then write to `addr` (an MSI-X table word) at the same moment as the BSP writes its own:
   `value` in even rounds, `value ^ 1` in odd ones (unmask, mask, unmask...). */
u32 lockstep_write(u32 addr, u32 value, u32 count) {
    u32 i;
    for (i = 0; i < count; i++) {
        __atomic_store_n(&sync_ready, i + 1, __ATOMIC_SEQ_CST);
        for (u32 spin = 0; __atomic_load_n(&sync_go, __ATOMIC_SEQ_CST) != i + 1; spin++)
            if (ap_stop && spin > 100000000) return i;
        mmio_write32(addr, value ^ (i & 1));
    }
    return i;
}

/* The BSP's half: releases round k and writes its own word; 0 when the AP never got there. */
int lockstep_go(u32 k, u32 addr, u32 value) {
    for (u64 t = deadline_ms(5000); __atomic_load_n(&sync_ready, __ATOMIC_SEQ_CST) != k;)
        if (past(t)) return 0;
    __atomic_store_n(&sync_go, k, __ATOMIC_SEQ_CST);
    mmio_write32(addr, value);
    return 1;
}

/* ---- BARs of one device; `spare` (the device the BSP is using) is never overlapped ---- */

static int hits_device(u32 a, u32 size, const struct vdev *s) {
    if (!s) return 0;
    for (u32 i = 0; i < 6; i++) {
        if (!s->bar_size[i] || (s->bar[i] & 1)) continue;
        u32 b = s->bar[i] & ~0xfu;
        if (a < b + s->bar_size[i] && b < a + size) return 1;
    }
    return 0;
}

#define HOLE_LO 0xe0000000u
#define HOLE_HI 0xfec00000u

u32 storm_bars(struct rnd *r, struct vdev *d, const struct vdev *spare, u32 count) {
    u32 bars[2] = { d->table_bir, d->common_cap.bar };
    u32 i;
    for (i = 0; storm_more(i, count); i++) {
        u32 n = bars[rnd_below(r, 2)], reg = 0x10 + 4 * n, size = d->bar_size[n];
        if (!size) continue;
        switch (rnd_below(r, 9)) {
        case 0: case 1: case 2: {                           /* somewhere else in the hole */
            u32 a = HOLE_LO + rnd_below(r, (HOLE_HI - HOLE_LO) / size) * size;
            if (hits_device(a, size, spare)) break;
            pci_write32(d->bdf, reg, a | (d->bar[n] & 0xf));
            if (d->bar_is64[n]) pci_write32(d->bdf, reg + 4, 0);
            break;
        }
        case 3: {                                           /* on top of its other BAR */
            u32 o = bars[0] == n ? bars[1] : bars[0];
            u32 a = pci_read32(d->bdf, 0x10 + 4 * o) & ~0xfu;
            if (a >= HOLE_LO && a < HOLE_HI && !hits_device(a, size, spare)) pci_write32(d->bdf, reg, a);
            break;
        }
        case 4: pci_write32(d->bdf, reg, 0xffffffffu); break;   /* sizing with decoding on */
        case 5: {                                           /* junk in the low, ignored bits */
            u32 a = HOLE_LO + rnd_below(r, (HOLE_HI - HOLE_LO) / size) * size;
            if (!hits_device(a, size, spare)) pci_write32(d->bdf, reg, a | (rnd32(r) & (size - 1)));
            break;
        }
        case 6: pci_write16(d->bdf, 4, (u16)(rnd32(r) & 1 ? d->command : d->command & ~2u)); break;
        case 7:
            if (d->bar_is64[n]) { pci_write32(d->bdf, reg + 4, 1 + rnd_below(r, 0xff)); pci_write32(d->bdf, reg + 4, 0); }
            else pci_write32(d->bdf, reg, 0);
            break;
        default: {                                          /* use it where it is now */
            u32 common = pci_read32(d->bdf, 0x10 + 4 * d->common_cap.bar) & ~0xfu;
            u32 table = pci_read32(d->bdf, 0x10 + 4 * d->table_bir) & ~0xfu;
            if (!(pci_read16(d->bdf, 4) & 2)) break;
            if (common >= HOLE_LO && common < HOLE_HI && !hits_device(common, d->bar_size[d->common_cap.bar], spare)) {
                (void)mmio_read32(common + d->common_cap.off + C_DF);
                mmio_write16(common + d->notify_cap.off, 0);      /* a doorbell at the new place */
                (void)mmio_read8(common + d->isr_cap.off);
            }
            if (table >= HOLE_LO && table < HOLE_HI && !hits_device(table, d->bar_size[d->table_bir], spare))
                mmio_write32(table + d->table_off + 8, safe_data(r));
            break;
        }
        }
    }
    return i;
}

/* ---- fw_cfg from a second CPU: selects, data reads and DMA into its own buffer ---- */

static void dma_start(u32 desc) {
    barrier();
    outl(FWCFG_DMA_HI, 0);
    outl(FWCFG_DMA_LO, __builtin_bswap32(desc));
    barrier();
}

u32 storm_fwcfg(struct rnd *r, u32 count, u8 *buf) {
    static const u16 keys[] = { 0, 1, 3, 5, 0xf, 0x19, 0x20, 0x21, 0x22, 0x4000, 0xffff };
    u32 i;
    for (i = 0; storm_more(i, count); i++) {
        u16 key = rnd_below(r, 4) ? keys[rnd_below(r, ARRAY_SIZE(keys))] : (u16)rnd32(r);
        switch (rnd_below(r, 4)) {
        case 0: outw(FWCFG_SEL, key); break;
        case 1: for (u32 k = rnd_below(r, 64); k; k--) (void)inb(FWCFG_DATA); break;
        case 2: (void)inl(FWCFG_DMA_HI); (void)inl(FWCFG_DMA_LO); break;
        default: {
            volatile u32 *desc = (volatile u32 *)buf;
            static const u32 ctl[] = { 0x0a, 0x0c, 0x02, 0x08, 0x10, 0x04, 0 };
            desc[0] = __builtin_bswap32((u32)key << 16 | ctl[rnd_below(r, ARRAY_SIZE(ctl))]);
            desc[1] = __builtin_bswap32(rnd_below(r, 257));
            desc[2] = 0;
            desc[3] = __builtin_bswap32((u32)buf + 64);
            dma_start((u32)buf);
            break;
        }
        }
    }
    return i;
}
