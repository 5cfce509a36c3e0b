#!/bin/sh
# Builds the hostile guest as OUTDIR/hostile.elf with gcc, as and ld (the flags and link map of
# Guests/build.sh; the shared Guests/lib objects plus this directory's files).
# Usage: Guests/hostile/build.sh OUTDIR
set -eu
if [ $# -ne 1 ]; then echo "usage: $0 OUTDIR" >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
LIB="$HERE/../lib"
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
OBJ="$OUT/obj-hostile"
rm -rf "$OBJ"
mkdir -p "$OBJ"
die() { echo "hostile/build.sh: $*" >&2; exit 1; }

CFLAGS="-m32 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -Wall -Werror -fno-asynchronous-unwind-tables"
objs=""
for f in "$LIB/start.S" "$LIB/isr.S" "$LIB/trampoline.S"; do
    o="$OBJ/lib_$(basename "$f" .S).o"
    gcc -m32 -c "$f" -o "$o" || die "assembling $f failed"
    objs="$objs $o"
done
for f in string console cmdline pci acpi idt; do
    gcc $CFLAGS -c "$LIB/$f.c" -o "$OBJ/lib_$f.o" || die "compiling lib/$f.c failed"
    objs="$objs $OBJ/lib_$f.o"
done
for f in "$HERE"/*.c; do
    o="$OBJ/$(basename "$f" .c).o"
    gcc $CFLAGS -c "$f" -o "$o" || die "compiling $f failed"
    objs="$objs $o"
done
# start.o first (it is first in $objs) so the Multiboot header opens the image.
ld -m elf_i386 -T "$LIB/kernel.ld" -z noseparate-code --no-warn-rwx-segments -nostdlib \
    -o "$OUT/hostile.elf" $objs || die "linking failed"
off=$(od -A d -t x4 -w4 -v -N 8192 "$OUT/hostile.elf" | awk '$2 == "1badb002" { print $1; exit }')
[ -n "$off" ] || die "no Multiboot header in the first 8 KiB of hostile.elf"
echo "built: $OUT/hostile.elf"
