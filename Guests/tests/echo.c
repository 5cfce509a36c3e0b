/* echo: reads one line from the serial port (COM1 receiver, polling LSR.DR) and prints it
 * back, proving the console is two-way (-serial stdio feeds the guest's input). */
#include "../lib/lib.h"

void kmain(void) {
    test_name = "echo";
    char line[64];
    u32 n = 0;
    printf("type a line\n");
    for (u32 spins = 0; n < sizeof line - 1; spins++) {
        if (inb(0x3fd) & 1) {                     /* LSR: data ready */
            char c = (char)inb(0x3f8);
            if (c == '\n' || c == '\r') break;
            line[n++] = c;
            spins = 0;
        } else if (spins > 200000000u) {
            fail("no input on the serial port");
        }
    }
    line[n] = 0;
    printf("echo: %s\n", line);
    pass();
}
