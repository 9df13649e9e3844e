// bench_ckpt[:rounds[:pages[:dirty]]]: a workload to measure what periodic
// checkpoints cost it. `rounds` rounds (default 2000) of a fixed amount of
// work: a 20,000-iteration loop, then one word written in each of `dirty`
// of its `pages` pages (defaults 64 and 4, moving on every round). Prints
//   bench_ckpt: rounds=R pages=P dirty=D ns=N
// with N the guest time the rounds took: under -icount shift=0 that is one
// nanosecond per guest instruction, so a run with checkpoint_every= and one
// without differ exactly by what the checkpoints took from the program.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>

#define BASE 0x20000000UL
#define PAGE 4096UL
#define WORK 20000

int main(int argc, char **argv)
{
    unsigned long rounds = argc > 1 ? strtoul(argv[1], 0, 10) : 2000;
    unsigned long pages = argc > 2 ? strtoul(argv[2], 0, 10) : 64;
    unsigned long dirty = argc > 3 ? strtoul(argv[3], 0, 10) : 4;
    if (pages == 0 || map_all(BASE, pages * PAGE, PROT_READ | PROT_WRITE) < 0) {
        printf("bench_ckpt: cannot map %lu pages\n", pages);
        return 1;
    }
    volatile unsigned long *mem = (volatile unsigned long *)BASE;
    volatile unsigned long acc = 0;
    long t0 = sys_clock_ns();
    for (unsigned long r = 0; r < rounds; r++) {
        for (unsigned long i = 0; i < WORK; i++)
            acc += i;
        for (unsigned long d = 0; d < dirty; d++)
            mem[((r * dirty + d) % pages) * (PAGE / sizeof(long))] += r;
    }
    long ns = sys_clock_ns() - t0;
    printf("bench_ckpt: rounds=%lu pages=%lu dirty=%lu ns=%ld\n", rounds, pages, dirty, ns);
    return 0;
}
