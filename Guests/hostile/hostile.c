/*
 * hostile: a Multiboot guest that attacks its VMM, on two or more vCPUs.
 *
 * The BSP sets up virtio-rng and virtio-blk for real and feeds them malicious rings, bad block
 * requests, index wraps and a flood of huge indirect chains; it storms MSI-X entries, moves
 * BARs, crafts fw_cfg DMA descriptors and pokes ports (serial, PM, reset, string I/O). One AP
 * storms other hardware at the same time (the other device's MSI-X table and BARs, fw_cfg,
 * random ports), and both CPUs storm the same MSI-X entry together. After every attack a reset
 * device must serve a good request. Each check prints one line:
 *     hostile: verdict CLASS/NAME dev=DEV ok|FAIL details
 * and the run ends with "hostile: survived R rounds: N verdicts, F failed" and isa-debug-exit
 * value 0x21 (process status 67). If the VMM stops serving (three devices fail to recover, or a
 * device starves) it prints "hostile: gave up: why" and exits with 0x23 (status 71).
 *
 * Command line (all optional):
 *   seed=S          seeds every random choice (default 1)
 *   rounds=R        how many times every enabled attack class runs (default 1)
 *   attacks=LIST    comma-separated classes: rings,blkreq,wrap,flood,msix,bars,fwcfg,ports
 *                   (default all)
 *   ports=N         random accesses per CPU in the ports storm (default 4000)
 *   storm=N         MSI-X writes per CPU in the MSI-X storm (default 3000)
 *   lockstep=N      rounds of the two-device lock-step mask/unmask check (default 64)
 *   wrap=N          requests in the index-wrap attack (default 65536 + 300), on virtio-rng
 *                   (its requests cost the VMM least), or on virtio-blk with wrap_blk
 *   flood_descs=N   entries of the flood's indirect table, each a 64 KiB buffer (default 32768)
 *   flood_ms=N      how long the virtio-blk request during the flood may take (default 5000)
 *   ap=0            leave the APs alone: every storm runs on the BSP
 *   only=NAMES      run only these ring or block-request attacks (e.g. only=avail-top,loop)
 *   skip=NAMES      leave these ring or block-request attacks out
 *   lenient=0       only the ring and block-request attacks with a judged outcome
 *   spare_irq=1     spare pc-testdev's IRQ ports 0x2010-0x2017 (QEMU 7.2 asserts on them)
 *   spare_msix_enable=1  MSI-X storms toggle the function mask but never the enable bit (QEMU
 *                   7.2 aborts in msix_fire_vector_notifier() when a live vector's function is
 *                   disabled and re-enabled during a storm)
 */
#include "hostile.h"

u32 attacks = A_ALL;
u32 spare_irq;
u32 spare_msix_enable;
u32 ram_top = 0x8000000;
u64 tsc_per_ms = 1000000;
volatile u32 vector_hits[256];
u32 verdicts_ok, verdicts_failed;
u8 big[0x100000] __attribute__((aligned(4096)));
u8 page_buf[65536] __attribute__((aligned(4096)));

static u32 storm_ports_n, storm_msix_n;
static char only[48], skip[160];

/* Whether `name` is in the comma-separated list. */
static int listed(const char *list, const char *name) {
    u32 n = (u32)strlen(name);
    for (const char *p = list; *p;) {
        const char *e = p;
        while (*e && *e != ',') e++;
        if ((u32)(e - p) == n && !strncmp(p, name, n)) return 1;
        p = *e ? e + 1 : e;
    }
    return 0;
}

int selected(const char *name) {
    if (skip[0] && listed(skip, name)) return 0;
    return !only[0] || listed(only, name);
}

u32 lenient_too = 1;

/* Copies the value of "key=" (up to the next space) into out. */
static void word(const char *key, char *out, u32 size) {
    u32 k = (u32)strlen(key);
    const char *c = cmdline();
    for (const char *v = c; *v; v++)
        if (!strncmp(v, key, k) && v[k] == '=' && (v == c || v[-1] == ' ')) {
            u32 i = 0;
            for (v += k + 1; *v && *v != ' ' && i + 1 < size; v++) out[i++] = *v;
            out[i] = 0;
            return;
        }
}
u32 wrap_requests, flood_descs, flood_ms;

void rnd_seed(struct rnd *r, u32 seed, u32 stream) {
    r->s = 88172645463325252ull ^ ((u64)seed * 0x9E3779B97F4A7C15ull) ^ ((u64)stream << 32 | stream);
    if (!r->s) r->s = 1;
    for (int i = 0; i < 8; i++) (void)rnd32(r);
}

/* ---- a small formatter into a buffer: %s %c %u %d %x with l/ll and zero-padded widths ---- */
struct sink { char *p; u32 left; };
static void sput(struct sink *s, char c) { if (s->left > 1) { *s->p++ = c; s->left--; } }
void snprint(char *out, u32 n, const char *fmt, ...) {
    struct sink s = { out, n };
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') { sput(&s, *fmt); continue; }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') { longs++; fmt++; }
        if (*fmt == 's') { const char *t = va_arg(ap, const char *); while (t && *t) sput(&s, *t++); continue; }
        if (*fmt == 'c') { sput(&s, (char)va_arg(ap, int)); continue; }
        if (*fmt != 'u' && *fmt != 'x' && *fmt != 'd') { sput(&s, '%'); sput(&s, *fmt); if (!*fmt) break; continue; }
        u64 v;
        int neg = 0;
        if (*fmt == 'd') {
            i64 x = longs >= 2 ? va_arg(ap, i64) : va_arg(ap, int);
            neg = x < 0;
            v = neg ? (u64)-x : (u64)x;
        } else {
            v = longs >= 2 ? va_arg(ap, u64) : va_arg(ap, unsigned);
        }
        u32 base = *fmt == 'x' ? 16 : 10;
        char b[24];
        int i = 0;
        do { u32 d = (u32)(v % base); b[i++] = (char)(d < 10 ? '0' + d : 'a' + d - 10); v /= base; } while (v);
        if (neg) b[i++] = '-';
        while (i < width) b[i++] = pad;
        while (i) sput(&s, b[--i]);
    }
    va_end(ap);
    *s.p = 0;
}

/* Each verdict line ends with the milliseconds since the previous one: where a run spends its
   time, and which check a slow VMM holds up. */
void verdict(const char *cls, const char *name, const char *dev, int ok, const char *fmt, ...) {
    static u64 last;
    u64 now = rdtsc();
    if (ok) verdicts_ok++; else verdicts_failed++;
    printf("hostile: verdict %s/%s dev=%s %s ", cls, name, dev, ok ? "ok" : "FAIL");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" [%llu ms]\n", last ? (now - last) / tsc_per_ms : 0);
    last = now;
}

void give_up(const char *why) {
    printf("hostile: gave up: %s (%u verdicts, %u failed)\n", why, verdicts_ok + verdicts_failed, verdicts_failed);
    outl(0xf4, 0x23);
    for (;;) __asm__ volatile("cli; hlt");
}

/* ---- time ---- */
void time_init(void) {
    u16 port = acpi_pm_timer_port();
    if (!port) { printf("hostile: no ACPI PM timer: assuming a 1 GHz TSC\n"); return; }
    u32 start = pm_timer_read(port), ticks = 0, last = start;
    u64 t0 = rdtsc_ordered();
    while (ticks < PM_TIMER_HZ / 50) {                 /* 20 ms */
        u32 now = pm_timer_read(port);
        ticks += (now - last) & 0xffffff;
        last = now;
    }
    u64 t1 = rdtsc_ordered();
    tsc_per_ms = (t1 - t0) * (PM_TIMER_HZ / 1000) / ticks;
    if (tsc_per_ms < 100000) tsc_per_ms = 100000;
}

/* ---- interrupts ---- */
static void count_and_eoi(struct irq_frame *f) {
    __atomic_fetch_add(&vector_hits[f->vector], 1, __ATOMIC_RELAXED);
    if (f->vector != 0xff) lapic_write(0xb0, 0);
}
static void count_nmi(struct irq_frame *f) { __atomic_fetch_add(&vector_hits[f->vector], 1, __ATOMIC_RELAXED); }

void interrupts_init(void) {
    idt_init();
    for (u32 v = 0x20; v < 256; v++) idt_set_handler((u8)v, count_and_eoi);
    idt_set_handler(2, count_nmi);
    pic_init(0x20);                                    /* remapped and masked */
    lapic_write(0xf0, 0x1ff);                          /* SVR: enabled, spurious 0xff */
    lapic_write(0x80, 0);                              /* TPR */
    lapic_write(0x320, 1u << 16);                      /* timer masked */
    lapic_write(0x370, 1u << 16);                      /* error LVT masked */
    sti();
}

void interrupts_ap(void) {
    idt_init();                                        /* same entries again, then lidt here */
    lapic_write(0xf0, 0x1ff);
    lapic_write(0x80, 0);
    lapic_write(0x320, 1u << 16);
    lapic_write(0x370, 1u << 16);
}

/* ---- command line ---- */
static u32 parse_attacks(const char *v) {
    static const char *names[] = { "rings", "blkreq", "wrap", "flood", "msix", "bars", "fwcfg", "ports" };
    u32 mask = 0;
    while (*v && *v != ' ') {
        const char *e = v;
        while (*e && *e != ' ' && *e != ',') e++;
        u32 n = (u32)(e - v), hit = 0;
        for (u32 i = 0; i < ARRAY_SIZE(names); i++)
            if (strlen(names[i]) == n && !strncmp(v, names[i], n)) { mask |= 1u << i; hit = 1; }
        if (n == 3 && !strncmp(v, "all", 3)) { mask = A_ALL; hit = 1; }
        if (!hit) fail("attacks=: unknown class in \"%s\"", v);
        v = *e == ',' ? e + 1 : e;
    }
    return mask;
}

static void print_attacks(void) {
    static const char *names[] = { "rings", "blkreq", "wrap", "flood", "msix", "bars", "fwcfg", "ports" };
    const char *sep = "";
    for (u32 i = 0; i < ARRAY_SIZE(names); i++)
        if (attacks & (1u << i)) { printf("%s%s", sep, names[i]); sep = ","; }
}

/* ---- one round of every enabled class ---- */
static struct vdev *other(struct vdev *d) { return d == &rng ? &blk : &rng; }

/* The AP's background while the BSP attacks `d`: storms on the other device. */
static void background(struct rnd *r, struct vdev *d, u32 round, u32 seed) {
    struct ap_cmd c = { AP_IDLE, 0, 0, 0, 0, seed ^ round ^ rnd32(r) };
    struct vdev *o = d ? other(d) : 0;
    if (!ap_count) return;
    if (o && o->present && (attacks & A_BARS) && (attacks & A_MSIX)) c.job = rnd32(r) & 1 ? AP_BARS : AP_MSIX;
    else if (o && o->present && (attacks & A_BARS)) c.job = AP_BARS;
    else if (o && o->present && (attacks & A_MSIX)) c.job = AP_MSIX;
    else if (attacks & A_FWCFG) c.job = AP_FWCFG;
    if (c.job == AP_IDLE) return;
    c.dev = o;
    c.spare = d;
    c.entry = rnd_below(r, 2);
    c.count = 0;                                     /* until stopped */
    ap_run(&c);
}

static void end_background(void) {
    if (!ap_wait(30000)) give_up("the AP did not finish its storm in 30 s");
    /* The storms left the devices' PCI state anywhere: put it back (the AP is idle now). */
    if (rng.present) vdev_restore_pci(&rng);
    if (blk.present) vdev_restore_pci(&blk);
}

static void round_once(u32 round, u32 seed) {
    struct rnd r;
    rnd_seed(&r, seed, round);
    struct vdev *devs[2] = { &rng, &blk };
    if (rnd32(&r) & 1) { devs[0] = &blk; devs[1] = &rng; }
    printf("hostile: round %u\n", round);
    if (attacks & A_RINGS)
        for (u32 i = 0; i < 2; i++) {
            if (!devs[i]->present) continue;
            printf("hostile: rings on %s\n", devs[i]->name);
            background(&r, devs[i], round, seed);
            attack_rings(&r, devs[i]);
            end_background();
        }
    if ((attacks & A_BLKREQ) && blk.present) {
        printf("hostile: bad block requests\n");
        background(&r, &blk, round, seed);
        attack_blkreq(&r);
        end_background();
    }
    if (attacks & A_WRAP) {
        struct vdev *w = cmdline_has("wrap_blk") ? &blk : &rng;
        if (w->present) {
            printf("hostile: index wrap on %s\n", w->name);
            background(&r, w, round, seed);
            attack_wrap(&r, w);
            end_background();
        }
    }
    if ((attacks & A_FLOOD) && rng.present && blk.present) {
        printf("hostile: flood\n");
        attack_flood(&r);
    }
    if (attacks & A_MSIX)
        for (u32 i = 0; i < 2; i++)
            if (devs[i]->present) attack_msix(&r, devs[i]);
    if (attacks & A_BARS)
        for (u32 i = 0; i < 2; i++)
            if (devs[i]->present && other(devs[i])->present) attack_bars(&r, devs[i]);
    if (attacks & A_FWCFG) attack_fwcfg(&r);
    if (attacks & A_PORTS) attack_ports(&r, storm_ports_n);
}

u32 msix_storm_count(void) { return storm_msix_n; }

void kmain(void) {
    test_name = "hostile";
    struct mb_info *mbi = mb_info();
    if (mbi && (mbi->flags & 1)) ram_top = (mbi->mem_upper + 1024) * 1024;
    u32 seed = (u32)cmdline_uint("seed", 1), rounds = (u32)cmdline_uint("rounds", 1);
    spare_irq = (u32)cmdline_uint("spare_irq", 0);
    spare_msix_enable = (u32)cmdline_uint("spare_msix_enable", 0);
    storm_ports_n = (u32)cmdline_uint("ports", 4000);
    storm_msix_n = (u32)cmdline_uint("storm", 3000);
    wrap_requests = (u32)cmdline_uint("wrap", 65536 + 300);
    flood_descs = (u32)cmdline_uint("flood_descs", 32768);
    flood_ms = (u32)cmdline_uint("flood_ms", 5000);
    if (flood_descs > sizeof big / 16) flood_descs = sizeof big / 16;
    lenient_too = (u32)cmdline_uint("lenient", 1);
    word("only", only, sizeof only);
    word("skip", skip, sizeof skip);
    char list[96] = "";
    word("attacks", list, sizeof list);
    if (list[0]) attacks = parse_attacks(list);
    printf("hostile: seed=%u rounds=%u attacks=", seed, rounds);
    print_attacks();
    printf(" ram %u MiB\n", ram_top >> 20);

    time_init();
    struct acpi_sdt *fadt = acpi_find_table("FACP");
    if (fadt && fadt->length >= 80) {
        pm1a_evt = (u16)*(u32 *)((u8 *)fadt + 56);
        pm1a_cnt = (u16)*(u32 *)((u8 *)fadt + 64);
        pm_tmr = (u16)*(u32 *)((u8 *)fadt + 76);
    }
    interrupts_init();
    vdev_find(&rng, 0x1005, 0x1044);
    vdev_find(&blk, 0x1001, 0x1042);
    if (cmdline_uint("ap", 1)) ap_start_all();
    printf("hostile: %u application processor%s running, TSC %llu kHz\n", ap_count, ap_count == 1 ? "" : "s", tsc_per_ms);
    if (!ap_count) printf("hostile: no AP: storms run on the BSP alone\n");

    u32 probe = (u32)cmdline_uint("leakprobe", 0);
    if (probe && rng.present) msix_leakprobe(&rng, probe);
    for (u32 round = 0; round < rounds; round++) round_once(round, seed);

    printf("hostile: survived %u rounds: %u verdicts, %u failed\n", rounds, verdicts_ok + verdicts_failed, verdicts_failed);
    outl(0xf4, 0x21);
    for (;;) __asm__ volatile("cli; hlt");
}
