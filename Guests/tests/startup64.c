/*
 * startup64: enters long mode (lib/start64.S) and exits at once with status 0 (QEMU status 1),
 * printing nothing: it measures the cost of loading and starting a 64-bit kernel.
 */
#include "../lib/lib.h"

void kmain(void) {
    exit(0);
}
