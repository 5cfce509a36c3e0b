#!/bin/sh
# Builds every test kernel as OUTDIR/NAME.elf using only gcc, as and ld.
# Usage: Guests/build.sh OUTDIR
set -eu
if [ $# -ne 1 ]; then echo "usage: $0 OUTDIR" >&2; exit 2; fi
SRC=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
OBJ="$OUT/obj"
rm -rf "$OBJ"
mkdir -p "$OBJ/32" "$OBJ/64"

CFLAGS="-ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -Wall -Werror -fno-asynchronous-unwind-tables"
LDFLAGS="-m elf_i386 -T $SRC/lib/kernel.ld -z noseparate-code --no-warn-rwx-segments -nostdlib"

die() { echo "build.sh: $*" >&2; exit 1; }

# 32-bit objects: plain gcc -m32.
cc32() { # src obj
    gcc -m32 $CFLAGS -c "$1" -o "$2" || die "compiling $1 failed"
}
# 64-bit objects that still go into an ELF32 file (Multiboot v1 loaders, QEMU included,
# refuse ELF64): gcc writes 64-bit assembly, and `as --32` assembles it after a .code64
# directive, giving an i386 object whose code is 64-bit. -fpie makes gcc address all data
# RIP-relative (PC32 relocations exist in ELF32; the absolute R_X86_64_32S/64 forms that
# -fno-pic code uses do not), so CFLAGS' -fno-pic is overridden here. Anything that still needs
# a 64-bit relocation (a statically initialised pointer, a jump table) fails loudly in as.
cc64() { # src obj
    gcc -m64 $CFLAGS -fpie -mno-red-zone -mgeneral-regs-only -mcmodel=small -fno-jump-tables \
        -S "$1" -o "$2.s" || die "compiling $1 failed"
    as --32 -o "$2" "$SRC/lib/code64.s" "$2.s" || die "assembling 64-bit $1 failed"
}

LIBC="string console cmdline pci acpi"
LIB32=""
for f in $LIBC idt virtio vq; do cc32 "$SRC/lib/$f.c" "$OBJ/32/$f.o"; LIB32="$LIB32 $OBJ/32/$f.o"; done
gcc -m32 -c "$SRC/lib/start.S" -o "$OBJ/32/start.o" || die "start.S failed"
gcc -m32 -c "$SRC/lib/isr.S" -o "$OBJ/32/isr.o" || die "isr.S failed"
gcc -m32 -c "$SRC/lib/trampoline.S" -o "$OBJ/32/trampoline.o" || die "trampoline.S failed"
gcc -m32 -c "$SRC/lib/wake16.S" -o "$OBJ/32/wake16.o" || die "wake16.S failed"
LIB64=""
for f in $LIBC; do cc64 "$SRC/lib/$f.c" "$OBJ/64/$f.o"; LIB64="$LIB64 $OBJ/64/$f.o"; done
gcc -m32 -c "$SRC/lib/start64.S" -o "$OBJ/64/start64.o" || die "start64.S failed"

# 32-bit kernels.
for t in hello mbinfo fwcfg pci cf8low pcibar pcitestdev pctestdev irq acpi smp virtiorng virtioblk echo msixstorm qmpguest elcr uart poweroff virtionet virtioconsole pcicfg reset suspend rombar; do
    [ -f "$SRC/tests/$t.c" ] || die "missing tests/$t.c"
    cc32 "$SRC/tests/$t.c" "$OBJ/32/t_$t.o"
    extra=""
    case $t in smp|msixstorm) extra="$OBJ/32/trampoline.o" ;; suspend) extra="$OBJ/32/wake16.o" ;; esac
    # start.o first so the Multiboot header lands at the start of the image.
    ld $LDFLAGS -o "$OUT/$t.elf" "$OBJ/32/start.o" "$OBJ/32/isr.o" $extra "$OBJ/32/t_$t.o" $LIB32 \
        || die "linking $t failed"
done

# 64-bit (long mode) kernels, still ELF32 Multiboot images.
for t in bench startup64; do
    [ -f "$SRC/tests/$t.c" ] || die "missing tests/$t.c"
    cc64 "$SRC/tests/$t.c" "$OBJ/64/t_$t.o"
    ld $LDFLAGS -o "$OUT/$t.elf" "$OBJ/64/start64.o" "$OBJ/64/t_$t.o" $LIB64 || die "linking $t failed"
done

# Firmware guests: a boot disk (real mode, booted by SeaBIOS from virtio-blk). Images that
# differ only in their label (A and B for boot-order tests; H holds after passing), each with "SECTOR n" marks on the sectors
# the boot disk reads back.
as --32 -o "$OBJ/bootdisk.o" "$SRC/firmware/bootdisk.S" || die "assembling firmware/bootdisk.S failed"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$OUT/bootdisk.bin" "$OBJ/bootdisk.o" || die "linking bootdisk failed"
for label in A B H; do
    img="$OUT/bootdisk-$(echo $label | tr ABH abh).img"
    dd if=/dev/zero of="$img" bs=512 count=2048 2>/dev/null
    dd if="$OUT/bootdisk.bin" of="$img" conv=notrunc 2>/dev/null
    printf 'DISK %s' "$label" | dd of="$img" bs=1 seek=432 conv=notrunc 2>/dev/null
    for s in 32 33 34 35 100 2047; do printf 'SECTOR %s' "$s" | dd of="$img" bs=512 seek=$s conv=notrunc 2>/dev/null; done
done

# A boot sector that exits at once (firmware start-up timing), on a 1 MiB disk.
as --32 -o "$OBJ/exitsector.o" "$SRC/firmware/exitsector.S" || die "assembling firmware/exitsector.S failed"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$OBJ/exitsector.bin" "$OBJ/exitsector.o" || die "linking exitsector failed"
dd if=/dev/zero of="$OUT/exitsector.img" bs=512 count=2048 2>/dev/null
dd if="$OBJ/exitsector.bin" of="$OUT/exitsector.img" conv=notrunc 2>/dev/null

# A synthesized Linux bzImage whose real-mode setup code reports how a loader entered it (for
# -bios with -kernel: QEMU's linuxboot_dma.bin option ROM runs it).
as --32 -o "$OBJ/linuxboot.o" "$SRC/firmware/linuxboot.S" || die "assembling firmware/linuxboot.S failed"
ld -m elf_i386 -Ttext 0 --oformat binary -o "$OUT/linuxboot.bzImage" "$OBJ/linuxboot.o" || die "linking linuxboot failed"

# A PCI expansion ROM for pci-testdev (romfile=): the last byte makes the 512 bytes sum to 0.
as --32 -o "$OBJ/optionrom.o" "$SRC/firmware/optionrom.S" || die "assembling firmware/optionrom.S failed"
ld -m elf_i386 -Ttext 0 --oformat binary -o "$OUT/optionrom.rom" "$OBJ/optionrom.o" || die "linking optionrom failed"
sum=$(od -A n -t u1 -v "$OUT/optionrom.rom" | awk '{ for (i = 1; i <= NF; i++) s += $i } END { print (256 - s % 256) % 256 }')
printf "$(printf '\\%03o' "$sum")" | dd of="$OUT/optionrom.rom" bs=1 seek=511 conv=notrunc 2>/dev/null

# Every image must carry its Multiboot header within the first 8 KiB of the file.
for f in "$OUT"/*.elf; do
    off=$(od -A d -t x4 -w4 -v -N 8192 "$f" | awk '$2 == "1badb002" { print $1; exit }')
    [ -n "$off" ] || die "$f: no Multiboot header in the first 8 KiB"
done
echo "built: $(cd "$OUT" && ls *.elf *.img *.bzImage *.rom | tr '\n' ' ')"
