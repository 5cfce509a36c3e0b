/*
 * classes.c: the attack classes that pit both CPUs against the machine: an MSI-X storm on one
 * entry from both CPUs, BAR moves under a busy device, crafted fw_cfg DMA descriptors against
 * a second CPU's fw_cfg traffic, and random ports with targeted serial, PM and reset-port
 * sequences. Each ends with the machine put back and the devices serving good requests.
 */
#include "hostile.h"

u16 pm1a_evt, pm1a_cnt, pm_tmr;
static u8 bsp_buf[4096] __attribute__((aligned(4096)));
static u8 post_buf[64] __attribute__((aligned(64)));
static struct blk_hdr post_hdr __attribute__((aligned(16)));

static u32 seed_of(struct rnd *r) { return rnd32(r); }

/* Posts one cheap request (rng: 64 bytes; blk: GET_ID) when the last one was used. */
static u32 post_if_idle(struct vdev *d) {
    if (used_idx(d) != d->avail_idx) return 0;
    d->used_seen = d->avail_idx;
    u16 head = 0;
    if (d == &rng) {
        d->desc[0] = (struct vq_desc){ (u32)post_buf, sizeof post_buf, F_WRITE, 0 };
    } else {
        post_hdr = (struct blk_hdr){ BLK_GET_ID, 0, 0 };
        d->desc[0] = (struct vq_desc){ (u32)&post_hdr, sizeof post_hdr, F_NEXT, 1 };
        d->desc[1] = (struct vq_desc){ (u32)post_buf, 20, F_NEXT | F_WRITE, 2 };
        d->desc[2] = (struct vq_desc){ (u32)&post_buf[32], 1, F_WRITE, 0 };
    }
    vdev_submit(d, head);
    return 1;
}

/* The control word of MSI-X entry 1 (the queue's vector). */
static u32 ctl1(struct vdev *d) { return d->msix_table + 16 + 12; }

/* One request on `d` that must complete and interrupt on the queue vector. */
static int fires(struct vdev *d) {
    u32 before = vector_hits[d->vq_vec];
    post_if_idle(d);
    return vdev_wait_used(d, 5000) && wait_vector(d->vq_vec, before, 2000);
}

/* Both CPUs mask, then unmask, MSI-X entries at the same moment (a legal thing for an SMP guest
   to do: the message was written while masked), then the devices complete a request each: every
   completion must interrupt. `e` and `f` are the devices whose entry 1 the BSP and the AP
   write: the same device (two re-routings of one vector racing: a VMM that routes both keeps
   one and leaks the other) or two devices (two routes removed, then added, at once: a VMM that
   installs its routing table outside the lock that built it can install an older table last
   and lose the other CPU's route, and with it that device's interrupts). */
static void msix_lockstep(struct rnd *r, struct vdev *e, struct vdev *f, const char *name, u32 rounds) {
    u32 lost_e = 0, lost_f = 0;
    if (!ap_count) rounds = 0;
    if (!vdev_setup(e, 0) || (f != e && !vdev_setup(f, 0))) { verdict("msix", name, e->name, 0, "set-up failed"); return; }
    for (u32 k = 0; k < rounds; k++) {
        sync_ready = sync_go = 0;
        struct ap_cmd c = { AP_LOCKSTEP, f, 0, 1, 2, seed_of(r), ctl1(f), 1 };
        ap_run(&c);
        if (!lockstep_go(1, ctl1(e), 1) || !lockstep_go(2, ctl1(e), 0))
            give_up("the AP never reached the lock-step MSI-X write");
        if (!ap_wait(30000)) give_up("the AP did not finish its lock-step MSI-X writes in 30 s");
        if (!fires(e)) lost_e++;
        if (f != e && !fires(f)) lost_f++;
    }
    if (f == e)
        verdict("msix", name, e->name, !lost_e, "%u times both CPUs masked and unmasked entry 1 at once: %u completions without their interrupt",
                rounds, lost_e);
    else
        verdict("msix", name, "rng+blk", !lost_e && !lost_f,
                "%u times the CPUs masked and unmasked %s's and %s's entry 1 at once: %u + %u completions without their interrupt",
                rounds, e->name, f->name, lost_e, lost_f);
    vdev_restore_pci(e);
    if (f != e) vdev_restore_pci(f);
}

void msix_leakprobe(struct vdev *d, u32 n) {
    if (!vdev_setup(d, 0) || !ap_count) return;
    sync_ready = sync_go = 0;
    struct ap_cmd c = { AP_LOCKSTEP, d, 0, 1, 2 * n, 0, ctl1(d), 0 };
    ap_run(&c);
    for (u32 k = 1; k <= 2 * n; k++)
        if (!lockstep_go(k, ctl1(d), (k - 1) & 1)) give_up("lock-step lost");
    if (!ap_wait(30000)) give_up("leakprobe: AP stuck");
    vdev_restore_pci(d);
    int ok = fires(d);
    verdict("msix", "leakprobe", d->name, ok, "%u lock-step unmask/mask pairs on entry 1, then a request %s", n,
            ok ? "interrupted" : "did not interrupt");
}

/* ---- msix: both CPUs write the same entry while the device completes requests ---- */
void attack_msix(struct rnd *r, struct vdev *d) {
    u32 entry = rnd_below(r, 2), count = msix_storm_count();
    vdev_restore_pci(d);
    if (!vdev_setup(d, 0)) { verdict("msix", "storm", d->name, 0, "set-up failed (status %x)", c_read8(d, C_STATUS)); return; }
    printf("hostile: MSI-X storm on %s entry %u\n", d->name, entry);
    struct ap_cmd c = { AP_MSIX, d, 0, entry, count, seed_of(r) };
    ap_run(&c);
    u32 ops = 0, posted = 0;
    while (ops < count) {
        ops += storm_msix(r, d, entry, 8, ap_count == 0);
        posted += post_if_idle(d);
    }
    if (!ap_wait(60000)) give_up("the AP did not finish its MSI-X storm in 60 s");
    u32 served = used_idx(d);
    vdev_restore_pci(d);
    verdict("msix", "storm", d->name, 1, "entry %u: %u BSP + %u AP writes, %u requests posted, %u served meanwhile",
            entry, ops, ap_ops, posted, served);
    if (recover(d, "msix", "storm+reset")) {
        msix_lockstep(r, d, d, "lockstep-same-entry", 16);
        recover(d, "msix", "lockstep+reset");
    }
    if (d == &blk && rng.present) {
        msix_lockstep(r, &blk, &rng, "lockstep-two-devices", (u32)cmdline_uint("lockstep", 64));
        recover(&rng, "msix", "lockstep+reset");
        recover(&blk, "msix", "lockstep+reset");
    }
}

/* ---- bars: the AP moves one device's BARs while the BSP keeps the other one busy ---- */
void attack_bars(struct rnd *r, struct vdev *d) {
    struct vdev *o = d == &rng ? &blk : &rng;
    vdev_restore_pci(d);
    vdev_restore_pci(o);
    if (!vdev_setup(d, 0) || !vdev_setup(o, 0)) { verdict("bars", "moves", d->name, 0, "set-up failed"); return; }
    post_if_idle(d);                                   /* something in flight while it moves */
    printf("hostile: BAR moves on %s, requests on %s\n", d->name, o->name);
    struct ap_cmd c = { AP_BARS, d, o, 0, 600, seed_of(r) };
    ap_run(&c);
    static char why[160];
    u32 served = 0;
    int ok = 1;
    u64 t = deadline_ms(60000);
    while (ok && !ap_finished() && !past(t)) {
        ok = o == &blk ? blk_good(o, 1 + served % 64, served, why, sizeof why) : rng_good(o, why, sizeof why);
        served += ok;
    }
    if (!ap_wait(60000)) give_up("the AP did not finish its BAR moves in 60 s");
    if (!ap_count) storm_bars(r, d, o, 300);
    verdict("bars", "busy-neighbour", o->name, ok, "%u good requests while the AP moved %s's BARs %u times%s%s",
            served, d->name, ap_ops, ok ? "" : ": ", ok ? "" : why);
    vdev_restore_pci(d);
    recover(d, "bars", "moves+reset");
}

/* ---- fwcfg: crafted DMA descriptors ---- */
#define DMA_ERROR 1
#define DMA_READ 2
#define DMA_SKIP 4
#define DMA_SELECT 8
#define DMA_WRITE 0x10

struct dma_access { u32 control, length; u32 addr_hi, addr_lo; } __attribute__((packed));
static struct dma_access dma __attribute__((aligned(16)));

/* The transfer runs during the second write; the barriers keep the compiler from moving our
   own loads and stores of the descriptor and buffers across it. */
static void dma_go(u64 desc) {
    barrier();
    outl(0x514, __builtin_bswap32((u32)(desc >> 32)));
    outl(0x518, __builtin_bswap32((u32)desc));
    barrier();
}

/* Runs one descriptor at `where` (our own `dma` when 0) and returns its control word. */
static u32 dma_run(u32 control, u32 length, u64 address) {
    dma.control = __builtin_bswap32(control);
    dma.length = __builtin_bswap32(length);
    dma.addr_hi = __builtin_bswap32((u32)(address >> 32));
    dma.addr_lo = __builtin_bswap32((u32)address);
    dma_go((u32)&dma);
    return __builtin_bswap32(*(volatile u32 *)&dma.control);
}

static void fw_expect(const char *name, u32 got, u32 want, const char *what) {
    verdict("fwcfg", name, "fw_cfg", got == want, "%s: control %x (want %x)", what, got, want);
}

void attack_fwcfg(struct rnd *r) {
    printf("hostile: fw_cfg DMA\n");
    struct ap_cmd c = { AP_FWCFG, 0, 0, 0, 0, seed_of(r) };
    ap_run(&c);
    /* Descriptors the device cannot even read: nothing to write back, nothing may break. */
    dma_go(0xfffffffffffffff8ull);
    dma_go(0xfffffffffffffff0ull - 16 * rnd_below(r, 4));
    dma_go(0xe0000000u + 16 * rnd_below(r, 0x10000));
    verdict("fwcfg", "descriptor-top", "fw_cfg", 1, "descriptors at 2^64-8, 2^64-16.. and in the PCI hole");
    /* Transfers that must fail: the error bit comes back. */
    fw_expect("read-to-top", dma_run(DMA_SELECT | DMA_READ, 16, 0xfffffffffffffff0ull), DMA_ERROR,
              "16 bytes of the signature to 2^64-16");
    fw_expect("read-wraps", dma_run(DMA_SELECT | DMA_READ, 0xffffffffu, 0xffffffffffff0000ull), DMA_ERROR,
              "4 GiB to 2^64-64 KiB");
    fw_expect("read-to-hole", dma_run(DMA_SELECT | DMA_READ, 64, 0xe0000000u), DMA_ERROR, "64 bytes to the PCI hole");
    u32 w = dma_run((0x19u << 16) | DMA_SELECT | DMA_WRITE, 4, (u32)big);
    verdict("fwcfg", "write", "fw_cfg", w == DMA_ERROR || w == 0, "write to the file directory: control %x", w);
    /* Transfers that must succeed however long they claim to be. */
    fw_expect("skip-4g", dma_run((0x19u << 16) | DMA_SELECT | DMA_SKIP, 0xffffffffu, 0), 0, "skip 4 GiB of the file directory");
    fw_expect("read-1m", dma_run(DMA_SELECT | DMA_READ, sizeof big, (u32)big), 0, "1 MiB of a 4-byte item into RAM");
    fw_expect("read-zero", dma_run(DMA_SELECT | DMA_READ, 0, (u32)big), 0, "zero bytes");
    fw_expect("read-self", dma_run(DMA_SELECT | DMA_READ, 16, (u32)&dma), 0, "the signature over the descriptor itself");
    /* An odd, unaligned descriptor address. */
    {
        u8 *odd = big + 0x1001;
        u32 d0 = __builtin_bswap32(DMA_SELECT | DMA_READ), d1 = __builtin_bswap32(4), d2 = 0, d3 = __builtin_bswap32((u32)big + 0x2000);
        memcpy(odd, &d0, 4); memcpy(odd + 4, &d1, 4); memcpy(odd + 8, &d2, 4); memcpy(odd + 12, &d3, 4);
        dma_go((u32)odd);
    }
    /* Random control words, lengths and selectors into our 1 MiB buffer. */
    for (u32 i = 0; i < 200; i++) {
        u32 ctl = (rnd32(r) & 0xffff001e) | (rnd32(r) & 1);
        u32 len = rnd_below(r, 0x10000);
        u32 at = (u32)big + rnd_below(r, sizeof big - 0x10000);
        (void)dma_run(ctl, len, at);
    }
    /* Wrong widths on the DMA ports. */
    outw(0x514, 0xffff); outb(0x518, 0x12); outw(0x51a, 0x3456); (void)inw(0x516); (void)inb(0x51b);
    verdict("fwcfg", "junk", "fw_cfg", 1, "200 random descriptors and wrong-width DMA port accesses");
    if (!ap_wait(30000)) give_up("the AP did not finish its fw_cfg storm in 30 s");
    /* Alone again: the interface must still work, both ways. */
    memset(big, 0xee, 16);
    u32 ctl = dma_run(DMA_SELECT | DMA_READ, 4, (u32)big);
    int ok = ctl == 0 && !memcmp(big, "QEMU", 4);
    outw(0x510, 0);
    char sig[5] = { (char)inb(0x511), (char)inb(0x511), (char)inb(0x511), (char)inb(0x511), 0 };
    ok = ok && !memcmp(sig, "QEMU", 4);
    u32 count_be = 0;
    ctl |= dma_run((0x19u << 16) | DMA_SELECT | DMA_READ, 4, (u32)&count_be);
    outw(0x510, 0x19);
    u32 legacy = 0;
    for (u32 i = 0; i < 4; i++) legacy = legacy << 8 | inb(0x511);
    ok = ok && ctl == 0 && __builtin_bswap32(count_be) == legacy && legacy > 0 && legacy < 1000;
    verdict("fwcfg", "still-works", "fw_cfg", ok, "signature by DMA \"%c%c%c%c\" and by port \"%s\", %u files both ways (AP: %u accesses)",
            big[0], big[1], big[2], big[3], sig, legacy, ap_ops);
}

/* ---- ports: both CPUs at random, then targeted serial, PM and reset-port sequences ---- */

/* COM1's other registers: interrupt enable, FIFO, line control with the divisor latch, modem
   control with loopback, scratch; then it is programmed back so the console works again. */
static void ports_serial(struct rnd *r) {
    for (u32 i = 0; i < 300; i++) {
        u16 p = (u16)(0x3f9 + rnd_below(r, 7));
        if (rnd32(r) & 1) outb(p, (u8)rnd32(r)); else (void)inb(p);
    }
    outb(0x3fc, 0x10);                                     /* loopback */
    outb(0x3fb, 0x03);
    for (u32 i = 0; i < 32; i++) { outb(0x3f8, (u8)('a' + i % 26)); (void)inb(0x3f8); (void)inb(0x3fd); }
    serial_init();
    putchar('\n');
}

/* PM1a: status (write 1 to clear), enable, control without SLP_EN (S5 ends the run, S3 would
   suspend QEMU), the timer (read only). */
static void ports_pm(struct rnd *r) {
    if (!pm1a_evt || !pm1a_cnt) return;
    for (u32 i = 0; i < 300; i++) {
        switch (rnd_below(r, 6)) {
        case 0: outw(pm1a_evt, (u16)rnd32(r)); break;
        case 1: outw((u16)(pm1a_evt + 2), (u16)rnd32(r)); break;
        case 2: outw(pm1a_cnt, (u16)(rnd32(r) & ~(1u << 13))); break;
        case 3: outb((u16)(pm1a_cnt + 1), (u8)(rnd32(r) & ~(1u << 5))); break;
        case 4: outl(pm1a_evt, rnd32(r)); (void)inl(pm1a_evt); break;
        default: if (pm_tmr) { outl(pm_tmr, rnd32(r)); (void)inl(pm_tmr); } (void)inw(pm1a_cnt); break;
        }
    }
    outw(pm1a_cnt, 1);                                     /* SCI_EN, as before */
}

/* The reset paths with every value that does not reset: 0xcf9 without bit 2, port 0x92 with
   A20 on and no reset, i8042 commands other than the output-port write, pulses and A20 off. */
static void ports_reset(struct rnd *r) {
    static const u8 cmds[] = { 0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xc0, 0xd2, 0xd3, 0xd4, 0xe0 };
    for (u32 i = 0; i < 200; i++) {
        switch (rnd_below(r, 4)) {
        case 0: outb(0xcf9, (u8)(rnd32(r) & ~4u)); (void)inb(0xcf9); break;
        case 1: outb(0x92, (u8)((rnd32(r) & ~1u) | 2)); (void)inb(0x92); break;
        case 2: {
            u8 cmd = cmds[rnd_below(r, ARRAY_SIZE(cmds))];
            outb(0x64, cmd);
            if (cmd == 0x60 || cmd == 0xd2 || cmd == 0xd3 || cmd == 0xd4) outb(0x60, (u8)rnd32(r));
            break;
        }
        default: (void)inb(0x64); (void)inb(0x60); break;
        }
    }
    outb(0xcf9, 0);
}

void attack_ports(struct rnd *r, u32 count) {
    /* Quiet devices: reset and MSI-X off, so random table writes cannot fire anything. */
    if (rng.present) { vdev_reset(&rng); vdev_msix_off(&rng); }
    if (blk.present) { vdev_reset(&blk); vdev_msix_off(&blk); }
    printf("hostile: ports storm, %u accesses per CPU\n", count);
    struct ap_cmd c = { AP_PORTS, 0, 0, 0, count, seed_of(r) };
    ap_run(&c);
    u32 ops = storm_ports(r, count, bsp_buf);
    cli();
    ports_serial(r);
    ports_pm(r);
    ports_reset(r);
    if (!ap_wait(120000)) give_up("the AP did not finish its port storm in 120 s");
    pic_init(0x20);
    sti();
    verdict("ports", "storm", "-", 1, "%u BSP + %u AP random port, PCI, MMIO and string accesses; serial, PM and reset ports",
            ops, ap_ops);
    if (rng.present) { vdev_restore_pci(&rng); recover(&rng, "ports", "storm+reset"); }
    if (blk.present) { vdev_restore_pci(&blk); recover(&blk, "ports", "storm+reset"); }
}
