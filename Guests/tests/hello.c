/* hello: the smallest useful kernel — proves Multiboot loading, the command line and serial.
 * With "hold" on the command line it prints "holding" instead of passing and halts with
 * interrupts off for good, so a test can inspect the running machine (its monitor). */
#include "../lib/lib.h"

void kmain(void) {
    test_name = "hello";
    printf("hello from multiboot\n");
    printf("cmdline: %s\n", cmdline());
    if (cmdline_has("hold")) {
        printf("holding\n");
        for (;;) __asm__ volatile("cli; hlt");
    }
    pass();
}
