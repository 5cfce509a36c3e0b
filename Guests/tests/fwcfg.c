/*
 * fwcfg: QEMU's fw_cfg legacy I/O interface (selector 0x510, data 0x511).
 *
 * Command line: "mem=MIB cpus=N". Checks the signature, the RAM size against mem=, the boot
 * CPU count against cpus=, and walks the file directory.
 */
#include "../lib/lib.h"

#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511

static void fw_select(u16 key) { outw(FW_CFG_SEL, key); }
static void fw_read(void *buf, u32 len) {
    u8 *b = buf;
    while (len--) *b++ = inb(FW_CFG_DATA);
}
static u32 be32(const u8 *b) { return (u32)b[0] << 24 | (u32)b[1] << 16 | (u32)b[2] << 8 | b[3]; }
static u16 be16(const u8 *b) { return (u16)(b[0] << 8 | b[1]); }

void kmain(void) {
    test_name = "fwcfg";
    char sig[5] = {0};
    fw_select(0x0000);
    fw_read(sig, 4);
    printf("signature \"%s\"\n", sig);
    if (memcmp(sig, "QEMU", 4)) fail("signature %02x %02x %02x %02x", sig[0], sig[1], sig[2], sig[3]);

    u32 features = 0;
    fw_select(0x0001);
    fw_read(&features, 4);
    printf("features %x\n", features);
    if (!(features & 1)) fail("traditional interface bit not set");

    u64 ram = 0;
    fw_select(0x0003);
    fw_read(&ram, 8);
    u64 mem_mib = cmdline_uint("mem", 0);
    printf("ram %llu bytes (%u MiB), mem=%u\n", ram, (u32)(ram >> 20), (u32)mem_mib);
    if (mem_mib && ram != mem_mib << 20) fail("ram size %llu, want %llu", ram, mem_mib << 20);

    u16 ncpus = 0, maxcpus = 0;
    fw_select(0x0005);
    fw_read(&ncpus, 2);
    fw_select(0x000f);
    fw_read(&maxcpus, 2);
    u32 want_cpus = (u32)cmdline_uint("cpus", 0);
    printf("cpus %u max %u, cpus=%u\n", ncpus, maxcpus, want_cpus);
    if (want_cpus && ncpus != want_cpus) fail("%u boot cpus, want %u", ncpus, want_cpus);
    if (maxcpus < ncpus) fail("max cpus %u < boot cpus %u", maxcpus, ncpus);

    /* File directory: big-endian count, then 64-byte entries. */
    u8 cnt[4];
    fw_select(0x0019);
    fw_read(cnt, 4);
    u32 files = be32(cnt);
    printf("files: %u\n", files);
    if (files == 0 || files > 1000) fail("implausible file count %u", files);
    for (u32 i = 0; i < files; i++) {
        u8 e[64];
        fw_read(e, 64);
        e[63] = 0;
        printf("  %04x %6u %s\n", be16(e + 4), be32(e), (char *)(e + 8));
        if (be16(e + 4) < 0x20) fail("file %s has select %x below 0x20", (char *)(e + 8), be16(e + 4));
    }
    /* Unknown keys read as zeros. */
    u32 unk = 0xdeadbeef;
    fw_select(0x7ff0);
    fw_read(&unk, 4);
    if (unk) fail("unknown key reads %x, want 0", unk);
    pass();
}
