/*
 * uart: the 16550A's FIFO behaviour on COM1, in loopback (MCR bit 4: every byte written to THR
 * is received), so no host input is involved and the run is deterministic.
 *
 * Prints COM1's registers as serial_init() found them (the machine's reset state), then:
 *  - non-FIFO overrun: two bytes received unread set LSR.OE, RBR holds the second;
 *  - FIFO overrun: 17 bytes into the 16-byte receive FIFO set LSR.OE (cleared by reading LSR),
 *    the first 16 are kept and the 17th dropped;
 *  - trigger levels 1, 4, 8, 14 (FCR bits 7:6): with IER.RDI, IIR shows no interrupt (0xc1)
 *    below the level and received data available (0xc4) at it, and reading one byte below it
 *    again drops it. These run at the slowest rate (divisor 0xffff: four character times are
 *    about 23 s), so the character timeout cannot fire in between;
 *  - the character timeout (IIR 0xcc): at 115200 baud, data below the trigger level left
 *    unread for four character times raises it; reading a byte clears it and, with data left,
 *    it comes again; at or above the trigger level it takes priority over 0xc4. Waits for it
 *    polling IIR, with only a hang guard (it takes ~350 us).
 * Then leaves loopback, FIFO off, as serial_init() left the port.
 */
#include "../lib/lib.h"

#define COM1 0x3f8
#define RBR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

static u8 rd(u16 r) { return inb(COM1 + r); }
static void wr(u16 r, u8 v) { outb(COM1 + r, v); }

static void divisor(u16 d) {
    wr(LCR, 0x83);
    wr(0, (u8)d);
    wr(1, (u8)(d >> 8));
    wr(LCR, 0x03);
}

/* Bytes received while in loopback (the transmitter is the receiver's only input). */
static void send(u32 n, u8 first) {
    for (u32 i = 0; i < n; i++) wr(RBR, (u8)(first + i));
}

/* Reads every byte the receiver holds (at most 64); returns how many. */
static u32 drain(u8 *out) {
    u32 n = 0;
    while ((rd(LSR) & 1) && n < 64) out[n++] = rd(RBR);
    return n;
}

/* Polls IIR until it reads `want` (hang guard only); returns the last value read. */
static u8 wait_iir(u8 want) {
    u8 v = rd(IIR);
    for (u64 t0 = rdtsc(); v != want && rdtsc() - t0 < HANG_GUARD_CYCLES; cpu_relax()) v = rd(IIR);
    return v;
}

/* Results, printed once the port has left loopback (printing in loopback would feed the
   receiver instead of the console). */
static u8 ovr_lsr, ovr_rbr, ovr_after;
static u8 fifo_iir, f_lsr, f_again, f_first, f_last;
static u32 f_kept;
static u8 itl_below[4], itl_at[4], itl_after[4];
static u32 itl_left[4];
static u8 t1, t2, t3, at8, t4;
static u32 t_drained, t_n8;

static void leave_loopback(void) {
    wr(IER, 0x00);
    wr(FCR, 0x00);
    divisor(1);
    wr(MCR, 0x03);
}

void kmain(void) {
    test_name = "uart";
    u8 *b = serial_boot_regs;
    printf("reset: ier %02x iir %02x lcr %02x mcr %02x lsr %02x msr %02x scr %02x\n", b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
    u8 got[64];
    static const u8 levels[4] = {1, 4, 8, 14};

    wr(MCR, 0x13);                                  /* loopback, RTS, DTR */
    divisor(0xffff);

    /* Non-FIFO overrun. */
    wr(FCR, 0x00);
    send(2, 'a');
    ovr_lsr = rd(LSR);
    ovr_rbr = rd(RBR);
    ovr_after = rd(LSR);

    /* FIFO overrun. */
    wr(FCR, 0x07);
    fifo_iir = rd(IIR);
    send(17, 'A');
    f_lsr = rd(LSR);
    f_again = rd(LSR);
    f_kept = drain(got);
    f_first = got[0];
    f_last = f_kept ? got[f_kept - 1] : 0;

    /* Trigger levels, with the receive-data interrupt enabled. */
    wr(IER, 0x01);
    for (u32 i = 0; i < 4; i++) {
        u8 itl = levels[i];
        wr(FCR, (u8)(i << 6 | 0x07));
        if (itl > 1) send(itl - 1u, 'a');
        itl_below[i] = rd(IIR);
        send(1, 'z');
        itl_at[i] = rd(IIR);
        (void)rd(RBR);
        itl_after[i] = rd(IIR);
        itl_left[i] = drain(got);
    }

    /* Character timeout at 115200 baud. */
    divisor(1);
    wr(FCR, 0x87);                                  /* FIFO on, trigger 8 */
    send(3, '1');
    t1 = wait_iir(0xcc);
    (void)rd(RBR);                                  /* clears it; two bytes left re-arm it */
    t2 = wait_iir(0xcc);
    t_drained = drain(got) + 1;
    t3 = rd(IIR);
    divisor(0xffff);
    send(8, 'a');
    at8 = rd(IIR);
    divisor(1);
    (void)rd(RBR);                                  /* re-arms the timer at the fast rate */
    send(1, 'i');                                   /* back at the trigger level */
    t4 = wait_iir(0xcc);
    t_n8 = drain(got);

    leave_loopback();
    printf("fifo off: two bytes unread: lsr %02x rbr %c, then lsr %02x\n", ovr_lsr, ovr_rbr, ovr_after);
    printf("fifo on: iir %02x\n", fifo_iir);
    printf("17 bytes into the fifo: lsr %02x then %02x, %u bytes kept, first %c last %c\n", f_lsr, f_again, f_kept, f_first, f_last);
    for (u32 i = 0; i < 4; i++)
        printf("trigger %2u: iir %02x with %u bytes, %02x with %u, %02x after reading one, %u left\n",
               levels[i], itl_below[i], levels[i] - 1u, itl_at[i], levels[i], itl_after[i], itl_left[i]);
    printf("timeout: 3 bytes below trigger 8: iir %02x; one read, two left: iir %02x; %u read: iir %02x\n", t1, t2, t_drained, t3);
    printf("timeout at the trigger level: iir %02x, then %02x after 4 character times, %u bytes\n", at8, t4, t_n8);
    printf("iir %02x lsr %02x\n", rd(IIR), rd(LSR));

    if (!(ovr_lsr & 2) || ovr_rbr != 'b' || (ovr_after & 2)) fail("non-FIFO overrun");
    if (!(f_lsr & 2) || (f_again & 2)) fail("FIFO overrun: LSR.OE not set, or not cleared by reading LSR");
    if (f_kept != 16 || f_first != 'A' || f_last != 'A' + 15) fail("FIFO overrun kept the wrong bytes");
    for (u32 i = 0; i < 4; i++)
        if ((levels[i] > 1 && itl_below[i] != 0xc1) || itl_at[i] != 0xc4 || itl_after[i] != 0xc1 || itl_left[i] != levels[i] - 1u)
            fail("trigger level %u", levels[i]);
    if (t1 != 0xcc || t2 != 0xcc || t3 != 0xc1 || t_drained != 3) fail("character timeout below the trigger level");
    if (at8 != 0xc4 || t4 != 0xcc || t_n8 != 8) fail("character timeout at the trigger level");
    pass();
}
