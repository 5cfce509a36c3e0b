/* hello: the smallest useful kernel — proves Multiboot loading, the command line and serial. */
#include "../lib/lib.h"

void kmain(void) {
    test_name = "hello";
    printf("hello from multiboot\n");
    printf("cmdline: %s\n", cmdline());
    pass();
}
