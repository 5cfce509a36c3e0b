/*
 * mbinfo: checks the Multiboot information the loader hands over.
 *
 * Command line: "mem=MIB [mods=N]". mem is the -m size in MiB; mods is the number of
 * -initrd modules expected (default 0).
 *
 * QEMU sets mem_upper = (RAM below 4 GiB - 1 MiB) / 1 KiB. RAM below 4 GiB equals the -m size
 * unless the machine splits it around the PCI hole: with -m of 3.5 GiB (0xe0000000) or more,
 * QEMU's pc keeps 3 GiB low and puts the rest above 4 GiB. The memory map comes from the BIOS
 * E820 table, where firmware reserves a little at the top of low RAM (ACPI tables etc.), so the
 * usable total is checked against a tolerance rather than exactly.
 */
#include "../lib/lib.h"

void kmain(void) {
    test_name = "mbinfo";
    if (mb_magic != MB_BOOT_MAGIC) fail("magic %x, want 0x2badb002", mb_magic);
    struct mb_info *mbi = mb_info();
    printf("magic %x flags %x\n", mb_magic, mbi->flags);
    printf("cmdline: %s\n", cmdline());

    /* Bits 0 (mem_*), 2 (cmdline) and 6 (mmap) are what QEMU provides and the tests rely on. */
    const u32 want = (1u << 0) | (1u << 2) | (1u << 6);
    if ((mbi->flags & want) != want) fail("flags %x lack bits %x", mbi->flags, want & ~mbi->flags);

    u64 mem_mib = cmdline_uint("mem", 0);
    if (!mem_mib) fail("no mem= argument");
    u64 low_kib = (u64)mbi->mem_upper + 1024;
    printf("mem_lower %u KiB mem_upper %u KiB -> %u MiB below 4G (mem=%u MiB)\n",
           mbi->mem_lower, mbi->mem_upper, (u32)(low_kib / 1024), (u32)mem_mib);
    if (mbi->mem_lower < 512 || mbi->mem_lower > 640) fail("mem_lower %u KiB", mbi->mem_lower);
    u64 want_low_mib = mem_mib;
    if (mem_mib * 1024 * 1024 >= 0xe0000000ull) want_low_mib = 3072;  /* PCI hole split */

    /* Memory map: print it, total the usable RAM below and above 4 GiB. */
    u64 usable_low = 0, usable_high = 0, at_1m = 0;
    u32 n = 0;
    for (uintptr_t p = mbi->mmap_addr; p < mbi->mmap_addr + mbi->mmap_length; n++) {
        struct mb_mmap *e = (struct mb_mmap *)p;
        printf("mmap[%u] %016llx-%016llx type %u\n", n, e->addr, e->addr + e->len - 1, e->type);
        if (e->type == 1) {
            if (e->addr >= 0x100000000ull) usable_high += e->len;
            else usable_low += e->len;
            if (e->addr == 0x100000) at_1m = e->len;
        }
        p += e->size + 4;   /* size does not count itself */
    }
    printf("usable: %u KiB below 4G, %u KiB above\n", (u32)(usable_low >> 10), (u32)(usable_high >> 10));
    if (n == 0) fail("empty memory map");
    /* mem_upper is the contiguous RAM from 1 MiB: the map must agree with it. */
    if (at_1m >> 10 != mbi->mem_upper)
        fail("mmap has %u KiB usable at 1 MiB, mem_upper says %u KiB", (u32)(at_1m >> 10), mbi->mem_upper);
    u64 total = usable_low + usable_high, want_total = mem_mib << 20;
    /* Tolerance: the 384 KiB legacy hole (0xa0000-0xfffff) plus up to 1 MiB of firmware
       reservations (SeaBIOS/ACPI) are not usable. */
    if (total > want_total || total + (2u << 20) < want_total)
        fail("usable RAM %u KiB, want about %u KiB", (u32)(total >> 10), (u32)(want_total >> 10));

    /* QEMU's option ROM derives mem_upper from the E820 map, where SeaBIOS reserves the top
       128 KiB of low RAM, so accept up to 1 MiB less than the full low RAM, never more. */
    if (low_kib > want_low_mib * 1024 || low_kib + 1024 < want_low_mib * 1024)
        fail("mem_upper gives %u KiB below 4G, want %u KiB (at most 1 MiB less)", (u32)low_kib,
             (u32)(want_low_mib * 1024));

    /* Modules from -initrd. */
    u32 want_mods = (u32)cmdline_uint("mods", 0);
    u32 mods = (mbi->flags & (1u << 3)) ? mbi->mods_count : 0;
    printf("modules: %u\n", mods);
    struct mb_module *m = (struct mb_module *)(uintptr_t)mbi->mods_addr;
    for (u32 i = 0; i < mods; i++) {
        const u8 *b = (const u8 *)(uintptr_t)m[i].mod_start;
        u32 len = m[i].mod_end - m[i].mod_start;
        printf("module[%u] %08x-%08x len %u string \"%s\" first bytes:", i, m[i].mod_start, m[i].mod_end, len,
               m[i].string ? (const char *)(uintptr_t)m[i].string : "");
        for (u32 j = 0; j < len && j < 8; j++) printf(" %02x", b[j]);
        printf("\n");
        if (m[i].mod_start & 0xfff) fail("module %u not page aligned (flag bit 0)", i);
        if (m[i].mod_end < m[i].mod_start) fail("module %u end before start", i);
    }
    if (mods != want_mods) fail("%u modules, want %u", mods, want_mods);
    pass();
}
