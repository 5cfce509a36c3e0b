/*
 * pcicfg: the VIRTIO_PCI_CAP_PCI_CFG capability of a virtio-rng-pci function (virtio 1.x
 * section 4.1.4.9): the window through configuration space into the modern BAR.
 *
 * Command line: "" (the device is `-device virtio-rng-pci`).
 *
 * Prints the capability list with each vendor capability's cfg_type, the PCI_CFG capability's
 * fields as found and as they read after a write of all ones (its write mask). Then,
 * always comparing with what the same register reads through BAR 4: writes the device status
 * and the feature select through the window, reads features, num_queues and the status back
 * through it at 4, 2 and 1 bytes, with offsets not aligned to the length (the device rounds
 * them down), and with a 1-byte configuration read of pci_cfg_data (any overlap starts the
 * access). Hostile values: lengths 0, 3, 8 and 0xffffffff, offsets past the BAR's structures,
 * 0xfffffffc and 0xffffffff, and BAR numbers 1 and 9 (what a device does with cap.bar); before
 * each, pci_cfg_data is preset (with length 3, which accesses nothing) so that an access that
 * reaches nothing shows as the preset value. Last, a request on queue 0 (no interrupts) whose
 * only doorbell is a write through the window to the queue's notify address: it must be used.
 * Passes when the window agrees with BAR 4 wherever it reaches a register; the hostile lines
 * are printed for the comparison with QEMU.
 */
#include "../lib/virtio.h"

static struct virtio_pci v;
static u32 bdf, cap;
static u32 common_off, notify_off, notify_mult;
static u8 buf[64] __attribute__((aligned(64)));

static void win_set(u8 bar, u32 off, u32 len) {
    pci_write8(bdf, cap + 4, bar);
    pci_write32(bdf, cap + 8, off);
    pci_write32(bdf, cap + 12, len);
}
/* Puts `value` in pci_cfg_data without an access (length 3 first), leaving length 3. */
static void win_preset(u32 value) {
    pci_write32(bdf, cap + 12, 3);
    pci_write32(bdf, cap + 16, value);
}
static u32 win_read(u8 bar, u32 off, u32 len) {
    win_set(bar, off, len);
    return pci_read32(bdf, cap + 16);
}
static void win_write(u8 bar, u32 off, u32 len, u32 value) {
    win_set(bar, off, len);
    pci_write32(bdf, cap + 16, value);
}

static void check(const char *what, u32 window, u32 bar) {
    printf("%s: window %x, BAR %x\n", what, window, bar);
    if (window != bar) fail("%s: the window reads %x, BAR 4 %x", what, window, bar);
}

static void caps(void) {
    printf("capabilities");
    u8 ptr = pci_read8(bdf, 0x34) & 0xfc;
    for (int guard = 0; ptr && guard < 48; guard++, ptr = pci_read8(bdf, ptr + 1) & 0xfc) {
        u8 id = pci_read8(bdf, ptr);
        if (id != 0x09) { printf(" %02x@%02x", id, ptr); continue; }
        u8 type = pci_read8(bdf, ptr + 3);
        printf(" %02x@%02x/%u", id, ptr, type);
        if (type == 5 && !cap) cap = ptr;
        if (type == 1) common_off = pci_read32(bdf, ptr + 8);
        if (type == 2) { notify_off = pci_read32(bdf, ptr + 8); notify_mult = pci_read32(bdf, ptr + 16); }
    }
    printf("\n");
    if (!cap) fail("no VIRTIO_PCI_CAP_PCI_CFG capability");
}

static void write_mask(void) {
    printf("pci_cfg cap at %x: len %u bar %u offset %x length %x data %x\n", cap, pci_read8(bdf, cap + 2),
           pci_read8(bdf, cap + 4), pci_read32(bdf, cap + 8), pci_read32(bdf, cap + 12), pci_read32(bdf, cap + 16));
    /* All ones into every byte (the data last, while the length is all ones: no access). */
    for (int i = 0; i < 5; i++) pci_write32(bdf, cap + 4 * i, 0xffffffffu);
    printf("after writing all ones:");
    for (int i = 0; i < 5; i++) printf(" %08x", pci_read32(bdf, cap + 4 * i));
    printf("\n");
    win_preset(0);
    win_set(0, 0, 3);
}

static void registers(void) {
    u32 c = v.common;
    /* Status: written through the window (1 byte), read through both. */
    mmio_write8(c + C_STATUS, 0);
    win_write(4, common_off + C_STATUS, 1, S_ACKNOWLEDGE);
    check("status after a window write of ACKNOWLEDGE", win_read(4, common_off + C_STATUS, 1) & 0xff, mmio_read8(c + C_STATUS));
    /* Feature select through the window, features through both. */
    win_write(4, common_off + C_DFSELECT, 4, 1);
    check("device_feature_select", win_read(4, common_off + C_DFSELECT, 4), mmio_read32(c + C_DFSELECT));
    check("device_feature[63:32]", win_read(4, common_off + C_DF, 4), mmio_read32(c + C_DF));
    win_write(4, common_off + C_DFSELECT, 4, 0);
    check("device_feature[31:0]", win_read(4, common_off + C_DF, 4), mmio_read32(c + C_DF));
    check("num_queues (2 bytes)", win_read(4, common_off + C_NUMQ, 2) & 0xffff, mmio_read16(c + C_NUMQ));
    /* Offsets not aligned to the length are rounded down to it. */
    check("offset 0x13, 2 bytes (num_queues)", win_read(4, common_off + 0x13, 2) & 0xffff, mmio_read16(c + C_NUMQ));
    check("offset 0x07, 4 bytes (device_feature)", win_read(4, common_off + 0x07, 4), mmio_read32(c + C_DF));
    /* A 1-byte configuration read of pci_cfg_data's second byte makes the access too. */
    win_preset(0xa5a5a5a5u);
    win_set(4, common_off + C_STATUS, 1);
    u8 second = pci_read8(bdf, cap + 17);
    printf("1-byte read of pci_cfg_data+1 after a 1-byte status access: %x, data %x\n", second, pci_read32(bdf, cap + 16));
    if (second != 0xa5 || (pci_read32(bdf, cap + 16) & 0xff) != mmio_read8(c + C_STATUS))
        fail("a partial read of pci_cfg_data did not make the access");
}

static void hostile(void) {
    struct { u8 bar; u32 off, len; } cases[] = {
        { 4, C_STATUS, 0 }, { 4, C_STATUS, 3 }, { 4, C_STATUS, 8 }, { 4, C_STATUS, 0xffffffffu },
        { 4, 0x4000, 4 }, { 4, 0xfffffffcu, 4 }, { 4, 0xffffffffu, 4 }, { 4, 0xffffffffu, 1 },
        { 1, C_DFSELECT, 4 }, { 9, C_STATUS, 1 }, { 0xff, C_NUMQ, 2 },
    };
    u8 status = mmio_read8(v.common + C_STATUS);
    for (u32 i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        win_preset(0x5a5a5a5au);
        u32 r = win_read(cases[i].bar, common_off + cases[i].off, cases[i].len);
        printf("bar %u offset %x length %x: read %x", cases[i].bar, common_off + cases[i].off, cases[i].len, r);
        /* A write of 0 there: the status must not change unless it reached the status. */
        win_write(cases[i].bar, common_off + cases[i].off, cases[i].len, status);
        printf(", status after a write %x\n", mmio_read8(v.common + C_STATUS));
        win_preset(0);
    }
}

static void notify_through_window(void) {
    virtio_begin(&v);
    virtio_features_ok(&v, 0);
    virtio_queue0_vector(&v, 1, 0xffff);
    memset(buf, 0, sizeof buf);
    DESC[0].addr = (u32)(uintptr_t)buf;
    DESC[0].len = sizeof buf;
    DESC[0].flags = VIRTQ_DESC_F_WRITE;
    DESC[0].next = 0;
    AVAIL[2] = 0;
    __asm__ volatile("mfence" ::: "memory");
    AVAIL[1] = 1;
    __asm__ volatile("mfence" ::: "memory");
    mmio_write16(v.common + C_Q_SELECT, 0);
    u32 at = notify_off + (u32)mmio_read16(v.common + C_Q_NOFF) * notify_mult;
    win_write(4, at, 2, 0);
    u64 t0 = rdtsc();
    while (USED_IDX != 1)
        if (rdtsc() - t0 > VIO_TIMEOUT) fail("a window write to the notify address %x did not kick queue 0", at);
    printf("request kicked through the window (notify %x): used, %u bytes\n", at, USED_LEN(0));
    mmio_write8(v.common + C_STATUS, 0);
}

void kmain(void) {
    test_name = "pcicfg";
    virtio_find(&v, 0x1005, 0x1044, "virtio-rng");
    bdf = v.bdf;
    caps();
    write_mask();
    registers();
    hostile();
    notify_through_window();
    pass();
}
