// witness[:ms[:hz]]: a bystander that spins reading clock_ns() for `ms`
// (2000) of guest time and reports the longest gap between two reads:
//   witness: longest gap <ns> ns (<ticks> ticks)
// with ticks at `hz` (100, the kernel's default; pass the boot's hz=). Next
// to a CPU-bound program a fair round robin gives gaps of about one tick;
// much more means someone held the CPU with interrupts off.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long ms = argc > 1 ? strtoul(argv[1], 0, 10) : 2000;
    unsigned long hz = argc > 2 ? strtoul(argv[2], 0, 10) : 100;
    if (hz == 0)
        hz = 100;
    long start = sys_clock_ns(), end = start + (long)ms * 1000000, last = start, longest = 0;
    for (long now = start; now < end; last = now) {
        now = sys_clock_ns();
        if (now - last > longest)
            longest = now - last;
    }
    // ticks with two decimals, in integers: gap * hz / 10^9
    unsigned long centiticks = (unsigned long)longest * hz / 10000000UL;
    printf("witness: longest gap %ld ns (%lu.%02lu ticks)\n", longest, centiticks / 100, centiticks % 100);
    return 0;
}
