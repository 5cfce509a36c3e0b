/*
 * virtioconsole: a polling virtio-serial (virtio console) driver with MULTIPORT: it learns the
 * ports from the device, greets the host on a named port once the host side opens it, and
 * echoes lines on the console port until it reads "quit".
 *
 * Command line: "[lines=N]" (stop after N echoed lines even without "quit"; default 100).
 *
 * Finds 1af4:1003 (transitional) or 1af4:1043 (modern), accepts VERSION_1 and MULTIPORT, sets
 * up port 0's queues (0, 1), the control queues (2, 3) and port 1's (4, 5), posts receive
 * buffers, sets DRIVER_OK and sends DEVICE_READY. The device answers with DEVICE_ADD for each
 * port; each gets PORT_READY, then CONSOLE_PORT, PORT_NAME and PORT_OPEN as the device says;
 * the driver opens every port (PORT_OPEN 1). When port 1's host side is open it writes
 * "hello from the guest on port 1". Each line received on port 0 goes back as "echo: LINE".
 * Prints the ports and events it saw (the same under QEMU) and passes after "quit".
 */
#include "../lib/vq.h"

#define F_MULTIPORT (1u << 1)
#define QMAX 16
#define BUF 256

enum { DEVICE_READY = 0, DEVICE_ADD = 1, DEVICE_REMOVE = 2, PORT_READY = 3, CONSOLE_PORT = 4, RESIZE = 5,
       PORT_OPEN = 6, PORT_NAME = 7 };

struct ctl { u32 id; u16 event, value; };

static struct virtio_pci v;
static struct vq q[6];
static u8 ringmem[6][VQ_BYTES(QMAX)] __attribute__((aligned(4096)));
static u8 inbuf[6][QMAX][BUF] __attribute__((aligned(64)));     /* receive buffers of queues 0, 2, 4 */
static u8 outbuf[6][QMAX][BUF] __attribute__((aligned(64)));    /* transmit buffers of queues 1, 3, 5 */
static u16 outnext[6];
static int host_open[2], ports_added[2], console_port = -1;
static char line[BUF];
static u32 line_len, echoed;

static void post_in(int qi, u16 i) {
    vq_desc(&q[qi], i, (u32)(uintptr_t)inbuf[qi][i], BUF, VIRTQ_DESC_F_WRITE, 0);
    vq_publish(&q[qi], i);
}

/* Sends `n` bytes on transmit queue `qi`, waiting for its completion. */
static void send(int qi, const void *data, u32 n) {
    if (n > BUF) fail("send of %u bytes", n);
    u16 d = outnext[qi]++ % q[qi].size;
    memcpy(outbuf[qi][d], data, n);
    vq_desc(&q[qi], d, (u32)(uintptr_t)outbuf[qi][d], n, 0, 0);
    vq_publish(&q[qi], d);
    vq_kick(&q[qi]);
    u32 id, len;
    for (u64 t0 = rdtsc(); !vq_next_used(&q[qi], &id, &len); cpu_relax())
        if (rdtsc() - t0 > VIO_TIMEOUT) fail("queue %u: transmit not completed", qi);
    if (id != d) fail("queue %u: used id %u, posted %u", qi, id, d);
}

static void send_ctl(u32 id, u16 event, u16 value) {
    struct ctl c = { id, event, value };
    send(3, &c, sizeof c);
}

static void send_str(int port, const char *s) { send(port == 0 ? 1 : 5, s, (u32)strlen(s)); }

/* Handles what arrived on the control receive queue. */
static void poll_control(void) {
    u32 id, len;
    int got = 0;
    while (vq_next_used(&q[2], &id, &len)) {
        got = 1;
        if (id >= q[2].size || len < 8 || len > BUF) fail("control message id %u length %u", id, len);
        struct ctl c;
        memcpy(&c, inbuf[2][id], 8);
        if (c.id > 1) fail("control event %u for port %u", c.event, c.id);
        switch (c.event) {
        case DEVICE_ADD:
            printf("port %u added\n", c.id);
            ports_added[c.id] = 1;
            send_ctl(c.id, PORT_READY, 1);
            break;
        case CONSOLE_PORT:
            printf("port %u is a console\n", c.id);
            console_port = (int)c.id;
            send_ctl(c.id, PORT_OPEN, 1);
            break;
        case PORT_NAME: {
            char name[BUF];
            u32 n = len - 8 < BUF - 1 ? len - 8 : BUF - 1;
            memcpy(name, inbuf[2][id] + 8, n);
            name[n] = 0;
            printf("port %u name %s\n", c.id, name);
            send_ctl(c.id, PORT_OPEN, 1);
            break;
        }
        case PORT_OPEN:
            printf("port %u host %s\n", c.id, c.value ? "open" : "closed");
            host_open[c.id] = c.value;
            if (c.id == 1 && c.value) send_str(1, "hello from the guest on port 1\n");
            break;
        default:
            printf("port %u event %u value %u\n", c.id, c.event, c.value);
        }
        post_in(2, (u16)id);
    }
    if (got) vq_kick(&q[2]);
}

/* Echoes complete lines received on port 0. */
static int poll_console(void) {
    u32 id, len;
    int got = 0, quit = 0;
    while (vq_next_used(&q[0], &id, &len)) {
        got = 1;
        if (id >= q[0].size || len > BUF) fail("port 0 used id %u length %u", id, len);
        for (u32 i = 0; i < len; i++) {
            char ch = (char)inbuf[0][id][i];
            if (ch == '\r') continue;
            if (ch != '\n') {
                if (line_len < BUF - 16) line[line_len++] = ch;
                continue;
            }
            line[line_len] = 0;
            if (!strcmp(line, "quit")) { quit = 1; line_len = 0; continue; }
            char out[BUF];
            memcpy(out, "echo: ", 6);
            memcpy(out + 6, line, line_len);
            out[6 + line_len] = '\n';
            send(1, out, 7 + line_len);
            echoed++;
            line_len = 0;
        }
        post_in(0, (u16)id);
    }
    if (got) vq_kick(&q[0]);
    return quit;
}

void kmain(void) {
    test_name = "virtioconsole";
    u32 max_lines = (u32)cmdline_uint("lines", 100);
    virtio_find(&v, 0x1003, 0x1043, "virtio-serial");
    virtio_interrupts(&v);
    u32 offered = virtio_begin(&v);
    printf("features offered 0x%x\n", offered);
    if (!(offered & F_MULTIPORT)) fail("no MULTIPORT");
    virtio_features_ok(&v, F_MULTIPORT);
    u32 max_ports = mmio_read32(v.device + 4);
    printf("max_nr_ports %u\n", max_ports);
    if (max_ports < 2) fail("max_nr_ports %u", max_ports);
    for (int i = 0; i < 6; i++) vq_setup(&v, &q[i], (u16)i, ringmem[i], QMAX, 0, 0);
    for (int qi = 0; qi < 6; qi += 2)
        for (u16 i = 0; i < q[qi].size; i++) post_in(qi, i);
    virtio_driver_ok(&v);
    send_ctl(0xffffffffu, DEVICE_READY, 1);

    u64 t0 = rdtsc();
    while (!(ports_added[0] && ports_added[1] && console_port == 0)) {
        poll_control();
        if (rdtsc() - t0 > 4 * VIO_TIMEOUT) fail("ports not announced (port 0 %d, port 1 %d)", ports_added[0], ports_added[1]);
        cpu_relax();
    }
    /* Echo until "quit" (no deadline: the host drives it). */
    for (;;) {
        poll_control();
        if (poll_console() || echoed >= max_lines) break;
        cpu_relax();
    }
    poll_control();
    printf("echoed %u lines\n", echoed);
    mmio_write8(v.common + C_STATUS, 0);
    pass();
}
