/*
 * virtionet: a minimal polling virtio-net driver and just enough IPv4 to talk to the host's
 * network stack on the other side of a tap: ARP, ICMP echo, UDP echo, large frames.
 *
 * Command line (defaults in brackets):
 *   ip=A.B.C.D [10.0.2.15]  host=A.B.C.D [10.0.2.2]  port=N [7777] (the host's UDP echo server)
 *   pings=N [4]  udp=N [8] (UDP echo round trips)  large=N [2] (round trips of `largesize`
 *   bytes [8000]: needs an MTU of 9000 on the tap)  mrg=0|1 [1] (negotiate MRG_RXBUF)
 *   csum=0|1 [1] (negotiate CSUM/GUEST_CSUM and send UDP with a partial checksum)
 *   evidx=0|1 [1] (negotiate VIRTIO_F_EVENT_IDX)  mq=N [0] (negotiate MQ, ask for N pairs)
 *   phases (bracket the ping/UDP runs with "phase-start"/"phase-end" datagrams the host echoes,
 *   so it can count exits in between)  bench=1 (the benchmark: rtt=N stream=N size=N)
 *
 * Finds 1af4:1000 (transitional) or 1af4:1041 (modern), prints the features offered, accepts
 * VERSION_1, MAC, STATUS, CTRL_VQ, CTRL_RX and the optional ones, reads the MAC and status
 * from the device configuration, sets up receive queue 0, transmit queue 1 and the control
 * queue (2, or 2 * max_virtqueue_pairs with MQ), all on MSI-X vector 0, and turns promiscuous
 * mode off through the control queue (so the device's MAC filter drops the host's multicast
 * chatter). Receive buffers are 2 KiB with MRG_RXBUF (a large frame spans several; num_buffers
 * says how many) and 12 KiB chains of three descriptors without. Transmit chains are the
 * 12-byte header in one descriptor and the frame in 4 KiB pieces. Everything polls; transmit
 * completions ask for no interrupt, receive ones do (counted by the MSI-X handler).
 *
 * Prints only what is the same from run to run and under QEMU, and passes when every reply
 * came back intact.
 */
#include "../lib/vq.h"

#define F_CSUM (1u << 0)
#define F_GUEST_CSUM (1u << 1)
#define F_MAC (1u << 5)
#define F_MRG_RXBUF (1u << 15)
#define F_STATUS (1u << 16)
#define F_CTRL_VQ (1u << 17)
#define F_CTRL_RX (1u << 18)
#define F_MQ (1u << 22)
#define F_EVENT_IDX (1u << 29)

#define RXQ_MAX 64
#define TXQ_MAX 64
#define RXBUF 2048
#define RXCHAIN 12288
#define TXSLOTS 16              /* chains in flight; each uses up to 4 descriptors */
#define TXDATA 12288

static struct virtio_pci v;
#define PAIRS 2                 /* receive queues polled (with MQ); transmit uses pair 0 */
static struct vq rxqs[PAIRS], txq, ctlq, txq1;
static u8 rx_ring_mem[PAIRS][VQ_BYTES(RXQ_MAX)] __attribute__((aligned(4096)));
static u8 tx_ring_mem[VQ_BYTES(TXQ_MAX)] __attribute__((aligned(4096)));
static u8 tx1_ring_mem[VQ_BYTES(16)] __attribute__((aligned(4096)));
static u8 ctl_ring_mem[VQ_BYTES(16)] __attribute__((aligned(4096)));
static u8 rxbuf_mem[PAIRS][RXQ_MAX][RXCHAIN] __attribute__((aligned(4096)));
static int npairs = 1;
static u8 txhdr[TXSLOTS][16] __attribute__((aligned(16)));
static u8 txdata[TXSLOTS][TXDATA] __attribute__((aligned(4096)));
static u8 txbusy[TXSLOTS];
static u8 ctlbuf[256] __attribute__((aligned(64)));
static u8 frame[16384];          /* one received frame, reassembled */

static int mergeable, csum_tx, nrx;
static u8 mac[6], host_mac[6];
static u32 my_ip, host_ip;
static u16 port;
static u32 rx_frames, tx_frames, max_num_buffers;

/* ---- small helpers ---- */
static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static void put16(u8 *p, u16 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }
static void put32(u8 *p, u32 v) { p[0] = (u8)(v >> 24); p[1] = (u8)(v >> 16); p[2] = (u8)(v >> 8); p[3] = (u8)v; }
static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }

static u32 sum16(const u8 *p, u32 n, u32 s) {
    for (u32 i = 0; i + 1 < n; i += 2) s += be16(p + i);
    if (n & 1) s += (u32)p[n - 1] << 8;
    return s;
}
static u16 fold(u32 s) { while (s >> 16) s = (s & 0xffff) + (s >> 16); return (u16)s; }

static u32 parse_ip(const char *key, u32 dflt) {
    const char *p = cmdline();
    u32 n = (u32)strlen(key);
    while (*p) {
        while (*p == ' ') p++;
        if (!strncmp(p, key, n) && p[n] == '=') {
            p += n + 1;
            u32 ip = 0;
            for (int part = 0; part < 4; part++) {
                u32 x = 0;
                if (*p < '0' || *p > '9') fail("%s: not an IPv4 address", key);
                while (*p >= '0' && *p <= '9') x = x * 10 + (u32)(*p++ - '0');
                if (x > 255 || (part < 3 && *p++ != '.')) fail("%s: not an IPv4 address", key);
                ip = ip << 8 | x;
            }
            return ip;
        }
        while (*p && *p != ' ') p++;
    }
    return dflt;
}

/* ---- transmit ---- */
static void tx_reclaim(void) {
    u32 id, len;
    while (vq_next_used(&txq, &id, &len)) {
        if (id % 4 || id / 4 >= TXSLOTS) fail("tx used id %u was never posted", id);
        txbusy[id / 4] = 0;
    }
}

/* Sends `len` bytes of `f` (an Ethernet frame). `csum_start` > 0: NEEDS_CSUM at that offset. */
static void send_frame(const u8 *f, u32 len, u16 csum_start, u16 csum_offset) {
    if (len > TXDATA) fail("frame of %u bytes", len);
    int slot = -1;
    for (u64 t0 = rdtsc(); slot < 0; ) {
        tx_reclaim();
        for (int i = 0; i < TXSLOTS && slot < 0; i++) if (!txbusy[i]) slot = i;
        if (slot < 0 && rdtsc() - t0 > VIO_TIMEOUT) fail("transmit queue stuck (used %u)", txq.used_seen);
    }
    txbusy[slot] = 1;
    u8 *h = txhdr[slot];
    memset(h, 0, 12);
    if (csum_start) {
        h[0] = 1;                                 /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
        h[6] = (u8)csum_start; h[7] = (u8)(csum_start >> 8);
        h[8] = (u8)csum_offset; h[9] = (u8)(csum_offset >> 8);
    }
    memcpy(txdata[slot], f, len);
    u16 d = (u16)(slot * 4), head = d;
    vq_desc(&txq, d, (u32)(uintptr_t)h, 12, VIRTQ_DESC_F_NEXT, (u16)(d + 1));
    for (u32 off = 0; off < len; off += 4096) {
        d++;
        u32 n = len - off < 4096 ? len - off : 4096;
        int last = off + n >= len;
        vq_desc(&txq, d, (u32)(uintptr_t)(txdata[slot] + off), n, last ? 0 : VIRTQ_DESC_F_NEXT, (u16)(d + 1));
    }
    vq_publish(&txq, head);
    vq_kick(&txq);
    tx_frames++;
}

/* ---- receive ---- */
static void rx_post(struct vq *rxq, u8 (*rxbufs)[RXCHAIN], u16 i) {
    if (mergeable) {
        vq_desc(rxq, i, (u32)(uintptr_t)rxbufs[i], RXBUF, VIRTQ_DESC_F_WRITE, 0);
        vq_publish(rxq, i);
    } else {
        u16 d = (u16)(i * 3);
        for (int k = 0; k < 3; k++)
            vq_desc(rxq, (u16)(d + k), (u32)(uintptr_t)(rxbufs[i] + 4096 * k), 4096,
                    (u16)(VIRTQ_DESC_F_WRITE | (k < 2 ? VIRTQ_DESC_F_NEXT : 0)), (u16)(d + k + 1));
        vq_publish(rxq, d);
    }
}

static void handle_frame(const u8 *f, u32 len);

/* Takes every frame the device placed on one receive queue, hands each to handle_frame,
   re-posts the buffers. */
static void poll_rxq(struct vq *rxq, u8 (*rxbufs)[RXCHAIN]) {
    u32 id, len;
    int posted = 0;
    while (vq_next_used(rxq, &id, &len)) {
        u16 buf = mergeable ? (u16)id : (u16)(id / 3);
        if (buf >= nrx || (!mergeable && id % 3)) fail("rx used id %u was never posted", id);
        if (len < 12 || len > (mergeable ? RXBUF : RXCHAIN)) fail("rx used length %u", len);
        u32 total = len - 12;
        memcpy(frame, rxbufs[buf] + 12, total);
        if (mergeable) {
            u16 n = (u16)(rxbufs[buf][10] | rxbufs[buf][11] << 8);
            if (n == 0) fail("num_buffers 0");
            if (n > max_num_buffers) max_num_buffers = n;
            rx_post(rxq, rxbufs, buf);
            for (u16 k = 1; k < n; k++) {
                u64 t0 = rdtsc();
                while (!vq_next_used(rxq, &id, &len))
                    if (rdtsc() - t0 > VIO_TIMEOUT) fail("num_buffers %u but only %u arrived", n, k);
                if (id >= nrx || len > RXBUF || total + len > sizeof frame) fail("merged buffer id %u length %u", id, len);
                memcpy(frame + total, rxbufs[id], len);
                total += len;
                rx_post(rxq, rxbufs, (u16)id);
            }
        } else {
            /* num_buffers is not looked at: QEMU leaves it as the guest wrote it, vmm writes 1. */
            rx_post(rxq, rxbufs, buf);
        }
        posted = 1;
        rx_frames++;
        handle_frame(frame, total);
    }
    if (posted) vq_kick(rxq);
    if (rxq->event_idx) vq_set_used_event(rxq, rxq->used_seen);
}

static void poll_rx(void) {
    for (int p = 0; p < npairs; p++) poll_rxq(&rxqs[p], rxbuf_mem[p]);
}

/* ---- protocols ---- */
static int have_host_mac, arp_replies_sent;
static u16 ping_id = 0x5678;
static u32 pong_seq_seen = 0xffffffff;
static u8 udp_reply[9000];
static u32 udp_reply_len, udp_replies;

static void eth_header(u8 *f, const u8 *dst, u16 type) {
    memcpy(f, dst, 6);
    memcpy(f + 6, mac, 6);
    put16(f + 12, type);
}

static void ip_header(u8 *f, u8 proto, u32 payload, u16 ident) {
    u8 *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (u16)(20 + payload));
    put16(ip + 4, ident);
    ip[8] = 64;
    ip[9] = proto;
    put32(ip + 12, my_ip);
    put32(ip + 16, host_ip);
    put16(ip + 10, (u16)~fold(sum16(ip, 20, 0)));
}

static void send_arp(u16 op, const u8 *tha, u32 tpa) {
    u8 f[60];
    memset(f, 0, sizeof f);
    static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    eth_header(f, op == 1 ? bcast : tha, 0x0806);
    u8 *a = f + 14;
    put16(a, 1); put16(a + 2, 0x0800); a[4] = 6; a[5] = 4; put16(a + 6, op);
    memcpy(a + 8, mac, 6); put32(a + 14, my_ip);
    if (op == 2) memcpy(a + 18, tha, 6);
    put32(a + 24, tpa);
    send_frame(f, 60, 0, 0);
}

static void handle_frame(const u8 *f, u32 len) {
    if (len < 14) return;
    u16 type = be16(f + 12);
    if (type == 0x0806 && len >= 42) {
        const u8 *a = f + 14;
        u16 op = be16(a + 6);
        u32 spa = be32(a + 14), tpa = be32(a + 24);
        if (op == 2 && spa == host_ip && tpa == my_ip) { memcpy(host_mac, a + 8, 6); have_host_mac = 1; }
        if (op == 1 && tpa == my_ip) { send_arp(2, a + 8, spa); arp_replies_sent++; }
        return;
    }
    if (type != 0x0800 || len < 34) return;
    const u8 *ip = f + 14;
    u32 ihl = (u32)(ip[0] & 0xf) * 4, total = be16(ip + 2);
    if (ihl < 20 || total < ihl || 14 + total > len || be32(ip + 16) != my_ip) return;
    const u8 *l4 = ip + ihl;
    u32 l4len = total - ihl;
    if (ip[9] == 1 && l4len >= 8 && l4[0] == 0 && be16(l4 + 4) == ping_id) {
        pong_seq_seen = be16(l4 + 6);
        if (fold(sum16(l4, l4len, 0)) != 0xffff) fail("echo reply %u: bad ICMP checksum", pong_seq_seen);
        if (l4len != 8 + 56) fail("echo reply of %u bytes", l4len);
        for (u32 i = 0; i < 56; i++) if (l4[8 + i] != (u8)(i + pong_seq_seen)) fail("echo reply %u: payload byte %u", pong_seq_seen, i);
    } else if (ip[9] == 17 && l4len >= 8 && be16(l4) == port) {
        u32 n = be16(l4 + 4);
        if (n < 8 || n > l4len || n - 8 > sizeof udp_reply) return;
        memcpy(udp_reply, l4 + 8, n - 8);
        udp_reply_len = n - 8;
        udp_replies++;
    }
}

/* Polls until cond() or about `timeout` TSC cycles pass. */
static int wait_until(int (*cond)(void), u64 timeout) {
    for (u64 t0 = rdtsc();;) {
        poll_rx();
        if (cond()) return 1;
        if (rdtsc() - t0 > timeout) return 0;
        cpu_relax();
    }
}

static int host_mac_known(void) { return have_host_mac; }
static u16 want_seq;
static int pong_arrived(void) { return pong_seq_seen == want_seq; }
static u32 want_replies;
static int udp_arrived(void) { return udp_replies >= want_replies; }

static void send_ping(u16 seq) {
    u8 f[14 + 20 + 64];
    eth_header(f, host_mac, 0x0800);
    ip_header(f, 1, 64, seq);
    u8 *icmp = f + 34;
    memset(icmp, 0, 8);
    icmp[0] = 8;
    put16(icmp + 4, ping_id);
    put16(icmp + 6, seq);
    for (u32 i = 0; i < 56; i++) icmp[8 + i] = (u8)(i + seq);
    put16(icmp + 2, (u16)~fold(sum16(icmp, 64, 0)));
    send_frame(f, sizeof f, 0, 0);
}

static u8 udpframe[14 + 20 + 8 + 9000];

/* One UDP datagram to the host's echo port; with csum_tx the checksum is left to the device
   (NEEDS_CSUM: the pseudo-header sum in the field, csum_start/offset in the header). */
static void send_udp(const u8 *payload, u32 n, u16 ident) {
    u8 *f = udpframe;
    eth_header(f, host_mac, 0x0800);
    ip_header(f, 17, 8 + n, ident);
    u8 *udp = f + 34;
    put16(udp, port);
    put16(udp + 2, port);
    put16(udp + 4, (u16)(8 + n));
    put16(udp + 6, 0);
    memcpy(udp + 8, payload, n);
    u32 pseudo = (my_ip >> 16) + (my_ip & 0xffff) + (host_ip >> 16) + (host_ip & 0xffff) + 17 + 8 + n;
    if (csum_tx) {
        put16(udp + 6, fold(pseudo));
        send_frame(f, 42 + n, 34, 6);
    } else {
        u16 c = (u16)~fold(sum16(udp, 8 + n, pseudo));
        put16(udp + 6, c ? c : 0xffff);
        send_frame(f, 42 + n, 0, 0);
    }
}

static u8 payload[9000];

/* One UDP echo round trip of `n` bytes (pattern from `seed`); fails on a wrong echo. */
static void udp_round_trip(u32 n, u32 seed, u16 ident, const char *what) {
    for (u32 i = 0; i < n; i++) payload[i] = (u8)(i * 13 + seed);
    want_replies = udp_replies + 1;
    send_udp(payload, n, ident);
    if (!wait_until(udp_arrived, 4 * VIO_TIMEOUT)) fail("%s: no echo of %u bytes", what, n);
    if (udp_reply_len != n || memcmp(udp_reply, payload, n)) fail("%s: echo of %u bytes differs (%u back)", what, n, udp_reply_len);
}

/* A control command; returns the device's ack. */
static u8 control(u8 cls, u8 cmd, const u8 *data, u32 n) {
    ctlbuf[0] = cls;
    ctlbuf[1] = cmd;
    memcpy(ctlbuf + 2, data, n);
    ctlbuf[128] = 0xee;
    vq_desc(&ctlq, 0, (u32)(uintptr_t)ctlbuf, 2 + n, VIRTQ_DESC_F_NEXT, 1);
    vq_desc(&ctlq, 1, (u32)(uintptr_t)(ctlbuf + 128), 1, VIRTQ_DESC_F_WRITE, 0);
    vq_publish(&ctlq, 0);
    vq_kick(&ctlq);
    u32 id, len;
    for (u64 t0 = rdtsc(); !vq_next_used(&ctlq, &id, &len); )
        if (rdtsc() - t0 > VIO_TIMEOUT) fail("control command %u.%u: no answer", cls, cmd);
    if (id != 0 || len != 1) fail("control used id %u length %u", id, len);
    return ctlbuf[128];
}

/* A marker datagram the host echoes (it counts exits when it sees one). */
static void phase(const char *name) {
    u32 n = (u32)strlen(name);
    want_replies = udp_replies + 1;
    send_udp((const u8 *)name, n, 1);
    if (!wait_until(udp_arrived, 8 * VIO_TIMEOUT)) fail("%s: the host did not answer", name);
}

/* Queues, receive buffers, DRIVER_OK (after FEATURES_OK). */
static void net_queues(u32 accepted, u16 pairs, int verbose) {
    int evidx = (accepted & F_EVENT_IDX) != 0;
    memset(txbusy, 0, sizeof txbusy);
    u16 qrx = vq_setup(&v, &rxqs[0], 0, rx_ring_mem[0], RXQ_MAX, 0, evidx);
    u16 qtx = vq_setup(&v, &txq, 1, tx_ring_mem, TXQ_MAX, 0, evidx);
    if (npairs > 1) {
        vq_setup(&v, &rxqs[1], 2, rx_ring_mem[1], RXQ_MAX, 0, evidx);
        vq_setup(&v, &txq1, 3, tx1_ring_mem, 16, 0, evidx);
    }
    u16 ctlidx = (accepted & F_MQ) ? (u16)(2 * pairs) : 2;
    vq_setup(&v, &ctlq, ctlidx, ctl_ring_mem, 16, 0, evidx);
    if (qtx < 4 * TXSLOTS) fail("transmit queue of %u entries", qtx);
    /* Transmit completions: no interrupt. */
    if (evidx) vq_set_used_event(&txq, 0x8000); else vq_set_no_interrupt(&txq, 1);
    nrx = mergeable ? (qrx < RXQ_MAX ? qrx : RXQ_MAX) : qrx / 3;
    if (nrx > RXQ_MAX) nrx = RXQ_MAX;
    for (int p = 0; p < npairs; p++)               /* before DRIVER_OK: the device must find them */
        for (u16 i = 0; i < nrx; i++) rx_post(&rxqs[p], rxbuf_mem[p], i);
    virtio_driver_ok(&v);
    if (verbose)
        printf("queues rx %u tx %u control %u, %u receive %s\n", qrx, qtx, ctlidx, nrx, mergeable ? "buffers of 2048 bytes" : "chains of 3 x 4096 bytes");
}

static void bench(void);
static void hostile(u32 offered);

void kmain(void) {
    test_name = "virtionet";
    my_ip = parse_ip("ip", 0x0a00020f);
    host_ip = parse_ip("host", 0x0a000202);
    port = (u16)cmdline_uint("port", 7777);
    u32 pings = (u32)cmdline_uint("pings", 4), udps = (u32)cmdline_uint("udp", 8);
    u32 large = (u32)cmdline_uint("large", 2), largesize = (u32)cmdline_uint("largesize", 8000);
    int want_mrg = (int)cmdline_uint("mrg", 1), want_csum = (int)cmdline_uint("csum", 1);
    int want_evidx = (int)cmdline_uint("evidx", 1);
    u32 want_mq = (u32)cmdline_uint("mq", 0);
    if (largesize > sizeof payload) fail("largesize=%u: at most %u", largesize, (u32)sizeof payload);

    virtio_find(&v, 0x1000, 0x1041, "virtio-net");
    virtio_interrupts(&v);
    u32 offered = virtio_begin(&v);
    printf("features offered 0x%x\n", offered);
    u32 want = F_MAC | F_STATUS | F_CTRL_VQ | F_CTRL_RX;
    if (want_mrg) want |= F_MRG_RXBUF;
    if (want_csum) want |= F_CSUM | F_GUEST_CSUM;
    if (want_evidx) want |= F_EVENT_IDX;
    if (want_mq) want |= F_MQ;
    u32 accepted = offered & want;
    if ((accepted & (F_MAC | F_STATUS | F_CTRL_VQ | F_CTRL_RX)) != (F_MAC | F_STATUS | F_CTRL_VQ | F_CTRL_RX))
        fail("device lacks MAC, STATUS, CTRL_VQ or CTRL_RX (offered 0x%x)", offered);
    virtio_features_ok(&v, accepted);
    printf("features accepted 0x%x\n", accepted);
    mergeable = (accepted & F_MRG_RXBUF) != 0;
    csum_tx = (accepted & F_CSUM) != 0;

    for (int i = 0; i < 6; i++) mac[i] = mmio_read8(v.device + (u32)i);
    u16 status = mmio_read16(v.device + 6);
    u16 pairs = (accepted & F_MQ) ? mmio_read16(v.device + 8) : 1;
    printf("mac %02x:%02x:%02x:%02x:%02x:%02x status %u max pairs %u\n", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], status, pairs);
    if (!(status & 1)) fail("link down");
    npairs = want_mq > 1 && pairs > 1 ? PAIRS : 1;
    net_queues(accepted, pairs, 1);
    u8 off = 0;
    printf("ctrl promisc off: ack %u\n", control(0, 0, &off, 1));
    printf("ctrl unknown class: ack %u\n", control(42, 0, &off, 0));
    if (want_mq) {
        u8 mq[2] = { (u8)want_mq, (u8)(want_mq >> 8) };
        printf("ctrl mq pairs %u: ack %u\n", want_mq, control(4, 0, mq, 2));
    }

    if (cmdline_uint("bench", 0)) { bench(); pass(); }

    /* ARP for the host, a few tries. */
    for (int tries = 0; !have_host_mac; tries++) {
        if (tries == 5) fail("no ARP reply from the host");
        send_arp(1, NULL, host_ip);
        wait_until(host_mac_known, VIO_TIMEOUT);
    }
    printf("arp: host %u.%u.%u.%u answered\n", host_ip >> 24, (host_ip >> 16) & 255, (host_ip >> 8) & 255, host_ip & 255);
    if (cmdline_has("hostile")) { hostile(offered); pass(); }

    int phases = cmdline_has("phases");
    if (phases) phase("phase-start");
    u32 replies = 0;
    for (u32 s = 1; s <= pings; s++) {
        want_seq = (u16)s;
        send_ping((u16)s);
        if (wait_until(pong_arrived, 4 * VIO_TIMEOUT)) replies++;
    }
    for (u32 i = 0; i < udps; i++) udp_round_trip(16 + (i * 97) % 1400, i, (u16)(100 + i), "udp");
    if (phases) phase("phase-end");
    if (pings) printf("ping %u.%u.%u.%u: %u/%u replies\n", host_ip >> 24, (host_ip >> 16) & 255, (host_ip >> 8) & 255, host_ip & 255, replies, pings);
    if (udps) printf("udp echo: %u/%u round trips\n", udps, udps);
    for (u32 i = 0; i < large; i++) udp_round_trip(largesize, 0x40 + i, (u16)(200 + i), "large udp");
    if (large) {
        printf("large udp echo: %u round trips of %u bytes (frames of %u bytes)\n", large, largesize, 42 + largesize);
        if (mergeable) printf("most buffers merged for one frame: %u\n", max_num_buffers);
    }
    if (replies != pings) fail("%u of %u pings answered", replies, pings);
    virtio_quiesce();
    printf("receive interrupts: %s\n", msix_hits ? "yes" : "none");
    mmio_write8(v.common + C_STATUS, 0);
    pass();
}

/* ---- benchmark ---- */

static u32 tsc_per_us(void) {
    u16 pm = acpi_pm_timer_port();
    if (!pm) pm = 0x608;
    u32 t0 = pm_timer_read(pm);
    u64 c0 = rdtsc_ordered();
    while (((pm_timer_read(pm) - t0) & 0xffffff) < PM_TIMER_HZ / 10) cpu_relax();
    u64 c1 = rdtsc_ordered();
    return (u32)((c1 - c0) / 100000);
}

static u64 samples[4096];

static void sort(u64 *a, u32 n) {
    for (u32 i = 1; i < n; i++) {
        u64 x = a[i];
        u32 j = i;
        while (j > 0 && a[j - 1] > x) { a[j] = a[j - 1]; j--; }
        a[j] = x;
    }
}

static u32 stream_rx_count;
static u64 stream_first, stream_last;

static void bench(void) {
    u32 rtt = (u32)cmdline_uint("rtt", 1000), stream = (u32)cmdline_uint("stream", 20000), size = (u32)cmdline_uint("size", 1024);
    if (rtt > 4096) rtt = 4096;
    if (size < 16 || size > 1400) fail("size=%u: 16..1400", size);
    u32 per_us = tsc_per_us();
    printf("tsc_per_us=%u\n", per_us);
    for (int tries = 0; !have_host_mac; tries++) {
        if (tries == 5) fail("no ARP reply from the host");
        send_arp(1, NULL, host_ip);
        wait_until(host_mac_known, VIO_TIMEOUT);
    }
    /* Ping round trips. */
    phase("rtt-start");
    for (u32 s = 1; s <= rtt; s++) {
        want_seq = (u16)s;
        u64 t0 = rdtsc_ordered();
        send_ping((u16)s);
        if (!wait_until(pong_arrived, 4 * VIO_TIMEOUT)) fail("ping %u lost", s);
        samples[s - 1] = rdtsc_ordered() - t0;
    }
    phase("rtt-end");
    sort(samples, rtt);                                /* printed after the marker, as below */
    printf("rtt_median_ns=%llu rtt_p99_ns=%llu\n", samples[rtt / 2] * 1000 / per_us, samples[rtt * 99 / 100] * 1000 / per_us);
    /* Guest → host stream: the host counts and times arrivals. */
    phase("tx-start");
    for (u32 i = 0; i < stream; i++) { payload[0] = (u8)i; send_udp(payload, size, (u16)i); }
    phase("tx-end");
    /* Host → guest stream: the guest counts and times arrivals. */
    u32 before = udp_replies;
    phase("rx-start");
    before = udp_replies;
    stream_first = 0;
    u64 quiet = rdtsc();
    while (rdtsc() - quiet < (u64)per_us * 200000) {          /* until 200 ms without a datagram */
        u32 had = udp_replies;
        poll_rx();
        if (udp_replies != had) {
            if (!stream_first) stream_first = rdtsc();
            stream_last = rdtsc();
            quiet = stream_last;
        }
    }
    stream_rx_count = udp_replies - before;
    u64 ns = stream_last > stream_first ? (stream_last - stream_first) * 1000 / per_us : 0;
    phase("rx-end");                                   /* before printing: the serial port exits */
    printf("rx_datagrams=%u rx_ns=%llu\n", stream_rx_count, ns);
    mmio_write8(v.common + C_STATUS, 0);
}

/* ---- hostile driver: malformed rings and requests, each followed by a device reset ---- */

static int needs_reset(void) { return mmio_read8(v.common + C_STATUS) & 0x40; }
static int tx_completed(void) { u32 id, len; return vq_next_used(&txq, &id, &len); }

/* Waits until the device flags DEVICE_NEEDS_RESET (1) or `cond` holds (0); about 1.5 s. */
static int verdict_wait(int (*cond)(void)) {
    for (u64 t0 = rdtsc(); rdtsc() - t0 < VIO_TIMEOUT; cpu_relax()) {
        if (needs_reset()) return 1;
        if (cond && cond()) return 0;
    }
    return needs_reset() ? 1 : 0;
}

/* Reset and set up again with `features`; receive buffers posted unless `no_rx`. */
static void restart(u32 features, int no_rx) {
    mmio_write8(v.common + C_STATUS, 0);
    for (u64 t0 = rdtsc(); mmio_read8(v.common + C_STATUS); )
        if (rdtsc() - t0 > VIO_TIMEOUT) fail("reset: status stays %x", mmio_read8(v.common + C_STATUS));
    mmio_write8(v.common + C_STATUS, S_ACKNOWLEDGE | S_DRIVER);
    virtio_features_ok(&v, features);
    mergeable = (features & F_MRG_RXBUF) != 0;
    csum_tx = (features & F_CSUM) != 0;
    npairs = 1;
    if (no_rx) {
        int evidx = (features & F_EVENT_IDX) != 0;
        memset(txbusy, 0, sizeof txbusy);
        vq_setup(&v, &rxqs[0], 0, rx_ring_mem[0], RXQ_MAX, 0, evidx);
        vq_setup(&v, &txq, 1, tx_ring_mem, TXQ_MAX, 0, evidx);
        vq_setup(&v, &ctlq, (features & F_MQ) ? (u16)(2 * mmio_read16(v.device + 8)) : 2, ctl_ring_mem, 16, 0, evidx);
        virtio_driver_ok(&v);
    } else {
        net_queues(features, (features & F_MQ) ? mmio_read16(v.device + 8) : 1, 0);
    }
}

static void verdict(const char *attack, int reset, const char *expected) {
    printf("%s: %s\n", attack, reset ? "device needs reset" : expected);
}

static u8 junk[4 * 32768] __attribute__((aligned(4096)));

static void hostile(u32 offered) {
    u32 base = offered & (F_MAC | F_STATUS | F_CTRL_VQ | F_CTRL_RX | F_CSUM | F_GUEST_CSUM);
    u32 mrg = offered & F_MRG_RXBUF;

    restart(base | mrg, 0);
    vq_desc(&txq, 0, (u32)(uintptr_t)junk, 64, VIRTQ_DESC_F_WRITE, 0);
    vq_publish(&txq, 0); vq_kick(&txq);
    verdict("tx chain with no readable buffer", verdict_wait(NULL), "ignored");

    restart(base | mrg, 0);
    vq_desc(&txq, 0, (u32)(uintptr_t)junk, 8, 0, 0);
    vq_publish(&txq, 0); vq_kick(&txq);
    verdict("tx header of 8 bytes", verdict_wait(NULL), "ignored");

    restart(base | mrg, 0);
    vq_desc(&txq, 0, (u32)(uintptr_t)junk, 16, VIRTQ_DESC_F_NEXT, 1);
    vq_desc(&txq, 1, (u32)(uintptr_t)junk, 16, VIRTQ_DESC_F_NEXT, 0);
    vq_publish(&txq, 0); vq_kick(&txq);
    verdict("tx descriptor loop", verdict_wait(NULL), "ignored");

    restart(base | mrg, 0);
    memset(junk, 0, 128);
    junk[1] = 1;                                    /* gso_type TCPV4 */
    junk[2] = 0xe8; junk[3] = 0xfd;                 /* hdr_len 65000 */
    memcpy(junk + 12, host_mac, 6); memcpy(junk + 18, mac, 6); junk[24] = 0x08;
    vq_desc(&txq, 0, (u32)(uintptr_t)junk, 12 + 60, 0, 0);
    vq_publish(&txq, 0); vq_kick(&txq);
    verdict("tx malformed vnet header", verdict_wait(tx_completed), "completed, device fine");

    restart(base | mrg, 0);
    memset(junk, 0, sizeof junk);
    for (int i = 0; i < 4; i++)
        vq_desc(&txq, (u16)i, (u32)(uintptr_t)(junk + 32768 * i), 32768, i < 3 ? VIRTQ_DESC_F_NEXT : 0, (u16)(i + 1));
    vq_publish(&txq, 0); vq_kick(&txq);
    verdict("tx frame of 128 KiB", verdict_wait(tx_completed), "completed, device fine");

    restart(base | mrg, 0);
    *(volatile u16 *)(txq.avail + 1) = (u16)(txq.avail_idx + 200);
    mmio_write16(txq.kick, 1);
    verdict("tx avail index 200 ahead", verdict_wait(NULL), "ignored");

    restart(base | mrg, 0);
    vq_desc(&ctlq, 0, (u32)(uintptr_t)junk, 2, 0, 0);
    vq_publish(&ctlq, 0); vq_kick(&ctlq);
    verdict("control chain without an ack byte", verdict_wait(NULL), "ignored");

    /* Receive chains without MRG_RXBUF: one of 64 bytes, then one with no writable buffer. */
    restart(base, 1);
    vq_desc(&rxqs[0], 0, (u32)(uintptr_t)rxbuf_mem[0][0], 64, VIRTQ_DESC_F_WRITE, 0);
    vq_publish(&rxqs[0], 0); vq_kick(&rxqs[0]);
    send_ping(1000);
    int reset = verdict_wait(NULL);
    u16 used = *(volatile u16 *)(rxqs[0].used + 2);
    printf("rx chain of 64 bytes without MRG_RXBUF: %s\n", reset ? "device needs reset" : used ? "frame placed" : "frame dropped, chain unused");

    restart(base, 1);
    vq_desc(&rxqs[0], 0, (u32)(uintptr_t)rxbuf_mem[0][0], 2048, 0, 0);
    vq_publish(&rxqs[0], 0); vq_kick(&rxqs[0]);
    send_ping(1001);
    verdict("rx chain with no writable buffer", verdict_wait(NULL), "ignored");

    if (mrg) {
        /* With MRG_RXBUF the same chain is only "no room": the frame waits; once a real
           buffer follows it, the device takes the bad chain first. */
        restart(base | mrg, 1);
        vq_desc(&rxqs[0], 0, (u32)(uintptr_t)rxbuf_mem[0][0], 2048, 0, 0);
        vq_publish(&rxqs[0], 0); vq_kick(&rxqs[0]);
        send_ping(1002);
        reset = verdict_wait(NULL);
        printf("rx chain with no writable buffer, MRG_RXBUF: %s\n", reset ? "device needs reset" : "frame held");
        vq_desc(&rxqs[0], 1, (u32)(uintptr_t)rxbuf_mem[0][1], 2048, VIRTQ_DESC_F_WRITE, 0);
        vq_publish(&rxqs[0], 1); vq_kick(&rxqs[0]);
        verdict("then a good buffer", verdict_wait(NULL), "frame placed");
    }

    if (offered & F_MQ) {
        restart(base | F_MQ, 0);
        u8 mq[2] = { 0x01, 0x80 };                  /* 0x8001 pairs */
        printf("ctrl mq pairs 32769: ack %u\n", control(4, 0, mq, 2));
        u8 zero[2] = { 0, 0 };
        printf("ctrl mq pairs 0: ack %u\n", control(4, 0, zero, 2));
    }

    /* Back to work after all that. */
    restart(base | mrg, 0);
    want_seq = 7;
    send_ping(7);
    if (!wait_until(pong_arrived, 4 * VIO_TIMEOUT)) fail("no ping reply after the attacks");
    printf("recovered: ping answered\n");
    mmio_write8(v.common + C_STATUS, 0);
}
