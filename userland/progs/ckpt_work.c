// ckpt_work[:pages[:steps[:dirty]]]: a workload for checkpoints. Maps
// `pages` pages (default 32) and fills them, takes a checkpoint, then
// `steps` times (default 4) writes to `dirty` of them (default 2) and takes
// another, printing
//   ckpt_work: step <i> generation <g> sum <s>
// and at the end `ckpt_work: done sum <s>`. The sum covers every page, so
// a restored run that lost or doubled a step ends with another sum.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>

#define BASE 0x10000000UL
#define PAGE 4096UL

static unsigned long sum(volatile unsigned long *mem, unsigned long pages)
{
    unsigned long s = 0;
    for (unsigned long p = 0; p < pages; p++)
        s = s * 31 + mem[p * (PAGE / sizeof(long))];
    return s;
}

int main(int argc, char **argv)
{
    unsigned long pages = argc > 1 ? strtoul(argv[1], 0, 10) : 32;
    unsigned long steps = argc > 2 ? strtoul(argv[2], 0, 10) : 4;
    unsigned long dirty = argc > 3 ? strtoul(argv[3], 0, 10) : 2;
    if (dirty > pages)
        dirty = pages;
    long r = sys_map(BASE, pages * PAGE, PROT_READ | PROT_WRITE);
    if (r < 0) {
        printf("ckpt_work: map failed: %s\n", errno_name(r));
        return 1;
    }
    volatile unsigned long *mem = (volatile unsigned long *)BASE;
    for (unsigned long p = 0; p < pages; p++)
        mem[p * (PAGE / sizeof(long))] = p + 1;
    long gen = sys_checkpoint();
    printf("ckpt_work: step 0 generation %ld sum %lu\n", gen, sum(mem, pages));
    for (unsigned long i = 1; i <= steps; i++) {
        for (unsigned long d = 0; d < dirty; d++)
            mem[((i + d) % pages) * (PAGE / sizeof(long))] += i;
        gen = sys_checkpoint();
        printf("ckpt_work: step %lu generation %ld sum %lu\n", i, gen, sum(mem, pages));
    }
    printf("ckpt_work: done sum %lu\n", sum(mem, pages));
    return 0;
}
