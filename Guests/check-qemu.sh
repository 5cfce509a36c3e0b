#!/bin/sh
# Runs every kernel built by build.sh under QEMU + KVM with the reference flags and checks each
# ends with its PASS line and exit status 1 (isa-debug-exit value 0). Serial output goes to
# OUTDIR/NAME.log. Runs one QEMU at a time.
# Usage: Guests/check-qemu.sh OUTDIR
set -u
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$1
SRC=$(cd "$(dirname "$0")" && pwd)
QEMU=${QEMU:-qemu-system-x86_64}
failed=0

run() { # log-name kernel-name "append" [extra qemu args...]
    log=$1; name=$2; append=$3; shift 3
    timeout 120 "$QEMU" -machine accel=kvm -nodefaults -display none -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=0x4 -device pc-testdev -device pci-testdev \
        -kernel "$OUT/$name.elf" -append "$append" "$@" >"$OUT/$log.log" 2>"$OUT/$log.err"
    status=$?
    verdict=$(grep -a -E '^(PASS|FAIL) ' "$OUT/$log.log" | tail -1 | tr -d '\r')
    if [ "$name" = startup64 ]; then verdict="(no output)"; fi
    if [ "$name" = poweroff ]; then
        # Soft-off: QEMU exits with status 0 after the kernel's last line.
        if [ $status -eq 0 ] && [ "$(tail -1 "$OUT/$log.log" | tr -d '\r')" = "powering off" ]; then
            echo "ok   $log status=$status (powered off)"
        else
            echo "FAIL $log status=$status ${verdict:-no verdict}"; failed=1
        fi
        return
    fi
    if [ $status -eq 1 ] && { [ "$name" = startup64 ] || [ "$verdict" = "PASS $name" ]; }; then
        echo "ok   $log status=$status $verdict"
    else
        echo "FAIL $log status=$status ${verdict:-no verdict}"; failed=1
    fi
}

run hello hello "hello-arg=1"
run mbinfo mbinfo "mem=256 mods=2" -m 256 \
    -initrd "$SRC/tests/mods/one.txt arg1 arg2,$SRC/tests/mods/two.txt"
run fwcfg fwcfg "mem=256 cpus=2" -m 256 -smp 2
run pci pci ""
run cf8low cf8low ""
run pcitestdev pcitestdev "writes=1000"
run pctestdev pctestdev ""
run irq irq "irq=10"
run irq-ioapic irq "irq=11 mode=ioapic"
run irq-level irq "irq=10 mode=ioapic level"
run elcr elcr ""
run uart uart ""
run poweroff poweroff ""
run acpi acpi ""
run smp smp "cpus=4" -smp 4
run bench bench "writes=100000"
run startup64 startup64 ""
run virtiorng virtiorng "requests=100" -device virtio-rng-pci
run virtiorng-intx virtiorng "requests=100" -device virtio-rng-pci,vectors=0
run virtiorng-fmask-reinit virtiorng "requests=20 fmask reinit" -device virtio-rng-pci
run pcicfg pcicfg "" -device virtio-rng-pci
# virtioblk writes sectors 5 and 100-101; a fresh 1 MiB image each run, sector 0 signed.
dd if=/dev/zero of="$OUT/virtioblk.img" bs=512 count=2048 2>/dev/null
printf 'SWIFTVMM-DISK-SECTOR0' | dd of="$OUT/virtioblk.img" conv=notrunc 2>/dev/null
run virtioblk virtioblk "sectors=2048" \
    -drive file="$OUT/virtioblk.img",if=none,id=d0,format=raw -device virtio-blk-pci,drive=d0
exit $failed
