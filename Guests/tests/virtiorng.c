/*
 * virtiorng: drive a virtio-rng PCI device through the modern (virtio 1.x) PCI interface,
 * with completion interrupts by MSI-X.
 *
 * Command line: "[requests=R] [poll]" (default 100 requests; poll: spin instead of hlt).
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
 */
#include "../lib/virtio.h"

#define BUFLEN 64
static u8 bufs[VIO_QMAX][BUFLEN] __attribute__((aligned(64)));

void kmain(void) {
    test_name = "virtiorng";
    u32 requests = (u32)cmdline_uint("requests", 100);
    if (requests == 0 || requests > 1000000) fail("requests=%u out of range", requests);

    struct virtio_pci v;
    virtio_find(&v, 0x1005, 0x1044, "virtio-rng");
    virtio_interrupts(&v);
    virtio_begin(&v);
    virtio_features_ok(&v, 0);                 /* VERSION_1 only */
    virtio_queue0(&v, 1);

    u32 used_count = 0;
    u64 bytes = 0;
    u8 any = 0;
    u64 c0 = rdtsc_ordered();
    for (u32 r = 1; r <= requests; r++) {
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
        if (!virtio_wait_interrupts(r)) { cli(); fail("request %u: no MSI-X interrupt (%u so far)", r, msix_hits); }
    }
    u64 c1 = rdtsc_ordered();
    virtio_quiesce();
    u32 hits = msix_hits;
    printf("requests %u used %u interrupts %u bytes %llu\n", requests, used_count, hits, bytes);
    printf("cycles_per_request=%llu\n", (c1 - c0) / requests);
    mmio_write8(v.common + C_STATUS, 0);        /* reset: the device stops using our memory */
    if (used_count != requests) fail("%u used for %u requests", used_count, requests);
    if (hits != requests) fail("%u interrupts for %u requests", hits, requests);
    if (!any) fail("all %llu random bytes are zero", bytes);
    pass();
}
