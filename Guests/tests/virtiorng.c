/*
 * virtiorng: drive a virtio-rng PCI device through the modern (virtio 1.x) PCI interface,
 * with completion interrupts by MSI-X.
 *
 * Command line: "[requests=R] [poll] [intx] [fmask] [reinit]" (default 100 requests; poll:
 * spin instead of hlt).
 *
 * Finds 1af4:1005 (transitional) or 1af4:1044 (modern) on bus 0, walks the capability list for
 * the virtio vendor capabilities (common, notify, ISR, device config) and MSI-X, maps the BARs
 * they name (a 64-bit BAR placed above 4 GiB is moved to 0xfe000000 with decoding off, since
 * this kernel runs without paging), enables memory decode and bus mastering, and initialises
 * the device as in virtio 1.x section 3.1 with VIRTIO_F_VERSION_1 as the only driver feature.
 * Queue 0 is a split virtqueue of min(queue_size, 16) entries in one static 4 KiB page.
 * MSI-X table entry 0 sends vector 0x41 to APIC ID 0; queue 0 uses MSI-X vector 0, the config
 * change interrupt none. Each of R requests posts one device-writable 64-byte buffer, kicks
 * the notify register and waits (sti; hlt, the LAPIC timer as a 10 ms wake-up so a lost
 * interrupt cannot stop the CPU for good; plain polling if that timer never ticks) for the used
 * ring and then for the interrupt. Passes when every request completed with 1-64 bytes, the
 * handler ran exactly R times, and the bytes were not all zero.
 *
 * Without an MSI-X capability (vectors=0), or with "intx", completions come by INTx instead:
 * MSI-X stays disabled, the line firmware assigned (config 0x3c) goes through the IOAPIC as
 * the MADT says (level-triggered for PCI's IRQs 10 and 11), and the handler reads the ISR,
 * which lowers the line; queue_msix_vector reads NO_VECTOR without MSI-X.
 * "fmask": one more request with the MSI-X function mask set (control 0xc000): the device sets
 * the pending bit and sends nothing until the mask is cleared, then sends it once.
 * "reinit": reset, check the queue and vector registers were reset, then initialise again from
 * scratch with the queue in another page and (MSI-X) table entry 1 instead of 0 (entry 0
 * masked), and run R more requests: the used index starts again at 0.
 */
#include "../lib/virtio.h"

#define BUFLEN 64
static u8 bufs[VIO_QMAX][BUFLEN] __attribute__((aligned(64)));
static u8 vq_page2[4096] __attribute__((aligned(4096)));
static struct virtio_pci v;
static u32 used_count;
static u64 bytes;
static u8 any;

/* Submits `n` requests one at a time; each must be used (right id, 1-64 bytes) and interrupt. */
static void requests_loop(u32 n) {
    u32 base = msix_hits;
    for (u32 r = 1; r <= n; r++) {
        u16 d = (u16)(v.avail_idx % v.qn);
        memset(bufs[d], 0, BUFLEN);
        DESC[d].addr = (u32)(uintptr_t)bufs[d];
        DESC[d].len = BUFLEN;
        DESC[d].flags = VIRTQ_DESC_F_WRITE;
        DESC[d].next = 0;
        virtio_submit(&v, d);
        if (!virtio_wait_used(&v)) {
            cli();
            fail("request %u: used idx stays %u (avail %u, interrupts %u)", r, USED_IDX, v.avail_idx, msix_hits);
        }
        while (v.used_seen != USED_IDX) {
            u32 slot = v.used_seen % v.qn, id = USED_ID(slot), len = USED_LEN(slot);
            v.used_seen++;
            used_count++;
            if (id != d) { cli(); fail("request %u: used id %u, posted %u", r, id, d); }
            if (len == 0 || len > BUFLEN) { cli(); fail("request %u: used length %u", r, len); }
            bytes += len;
            for (u32 i = 0; i < len; i++) any |= bufs[d][i];
        }
        if (!virtio_wait_interrupts(base + r)) { cli(); fail("request %u: no interrupt (%u so far)", r, msix_hits - base); }
    }
}

/* Waits (hang guard) until PBA bit 0 reads `want`; returns the PBA's first dword. */
static u32 wait_pba(u32 want) {
    u32 pba = mmio_read32(v.msix_pba);
    for (u64 t0 = rdtsc(); (pba & 1) != want && rdtsc() - t0 < VIO_TIMEOUT; cpu_relax()) pba = mmio_read32(v.msix_pba);
    return pba;
}

/* MSI-X function mask (message control bit 14): a completion while the whole function is
   masked sets the pending bit and sends nothing; clearing the mask sends it. */
static void function_mask(void) {
    if (!v.msix || v.intx) fail("fmask needs MSI-X");
    u32 before = msix_hits;
    virtio_set_msix_control(&v, 0xc000);
    u16 ctl = virtio_msix_control(&v);
    u16 d = (u16)(v.avail_idx % v.qn);
    DESC[d].addr = (u32)(uintptr_t)bufs[d];
    DESC[d].len = BUFLEN;
    DESC[d].flags = VIRTQ_DESC_F_WRITE;
    virtio_submit(&v, d);
    if (!virtio_wait_used(&v)) { cli(); fail("fmask: request not used"); }
    v.used_seen = USED_IDX;
    used_count++;
    u32 pba = wait_pba(1);
    printf("fmask: control %x, request used, PBA %x, interrupts while masked %u\n", ctl, pba, msix_hits - before);
    if (!(pba & 1)) fail("fmask: the masked completion set no pending bit");
    if (msix_hits != before) fail("fmask: %u interrupts while the function was masked", msix_hits - before);
    virtio_set_msix_control(&v, 0x8000);
    if (!virtio_wait_interrupts(before + 1)) { cli(); fail("fmask: no interrupt after clearing the function mask"); }
    pba = wait_pba(0);
    printf("fmask: function mask cleared: control %x, interrupts %u, PBA %x\n", virtio_msix_control(&v), msix_hits - before, pba);
    if (pba & 1) fail("fmask: pending bit still set after delivery");
}

/* Reset, then everything again: features, a queue at another page, another MSI-X entry (1,
   entry 0 masked), used index and last-avail from 0. */
static void reinitialize(u32 n) {
    u32 cmn = v.common;
    mmio_write8(cmn + C_STATUS, 0);
    for (u64 t0 = rdtsc(); mmio_read8(cmn + C_STATUS) != 0; )
        if (rdtsc() - t0 > VIO_TIMEOUT) fail("reinit: status stays %x", mmio_read8(cmn + C_STATUS));
    mmio_write16(cmn + C_Q_SELECT, 0);
    u16 qen = mmio_read16(cmn + C_Q_ENABLE), qv = mmio_read16(cmn + C_Q_MSIX), cv = mmio_read16(cmn + C_MSIX);
    printf("reinit: after reset status %x queue_enable %u queue_msix_vector %x config_msix_vector %x\n",
           mmio_read8(cmn + C_STATUS), qen, qv, cv);
    if (qen || qv != 0xffff || cv != 0xffff) fail("reinit: queue state survived the reset");
    vq_ring = vq_page2;
    v.avail_idx = v.used_seen = 0;
    u16 vector = 0xffff;
    if (!v.intx) {
        virtio_msix_entry(&v, 1, VIO_MSI_VECTOR, 0);
        virtio_msix_entry(&v, 0, VIO_MSI_VECTOR, 1);
        vector = 1;
    }
    virtio_begin(&v);
    virtio_features_ok(&v, 0);
    virtio_queue0_vector(&v, 1, vector);
    u32 before = used_count;
    requests_loop(n);
    u32 pba = v.intx ? 0 : mmio_read32(v.msix_pba);
    printf("reinit: %u requests on the new queue, used index %u, entry 0 pending %u\n", used_count - before, USED_IDX, pba & 1);
    if (USED_IDX != n) fail("reinit: used index %u after %u requests", USED_IDX, n);
    if (pba & 1) fail("reinit: the device still signals MSI-X entry 0");
}

void kmain(void) {
    test_name = "virtiorng";
    u32 requests = (u32)cmdline_uint("requests", 100);
    if (requests == 0 || requests > 1000000) fail("requests=%u out of range", requests);

    virtio_find_any(&v, 0x1005, 0x1044, "virtio-rng");
    if (cmdline_has("intx")) v.intx = 1;
    virtio_interrupts(&v);
    virtio_begin(&v);
    virtio_features_ok(&v, 0);                 /* VERSION_1 only */
    virtio_queue0(&v, 1);

    u64 c0 = rdtsc_ordered();
    requests_loop(requests);
    u64 c1 = rdtsc_ordered();
    u32 total = requests;
    if (cmdline_has("fmask")) { function_mask(); total++; }
    if (cmdline_has("reinit")) { reinitialize(requests); total += requests; }
    virtio_quiesce();
    u32 hits = msix_hits;
    printf("requests %u used %u interrupts %u bytes %llu\n", total, used_count, hits, bytes);
    printf("cycles_per_request=%llu\n", (c1 - c0) / requests);
    mmio_write8(v.common + C_STATUS, 0);        /* reset: the device stops using our memory */
    if (used_count != total) fail("%u used for %u requests", used_count, total);
    if (hits != total) fail("%u interrupts for %u requests", hits, total);
    if (!any) fail("all %llu random bytes are zero", bytes);
    pass();
}
