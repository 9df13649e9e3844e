// ckpt_work[:pages[:steps[:dirty[:flags]]]]: a workload for checkpoints. Maps
// `pages` pages (default 32) and fills them, takes a checkpoint, then
// `steps` times (default 4) writes to `dirty` of them (default 2) and takes
// another, printing
//   ckpt_work: step <i> generation <g> sum <s>
// and at the end `ckpt_work: done sum <s>`. The sum covers every page, so
// a restored run that lost or doubled a step ends with another sum.
// Flags: d = output commit off for this program (outcommit(OUTCOMMIT_OFF));
// l = loud, 64 lines of 256 bytes more per step (more than the kernel holds:
// the writer waits for a checkpoint); q = first map 64 pages at a time (up
// to 2048) until map() refuses, and say how far it got (page_quota);
// z = at the end, unmap the last page, map it again (zeros) and take one
// more checkpoint: the new page must be saved though the program never
// wrote it.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const char *flags = argc > 4 ? argv[4] : "";
    if (dirty > pages)
        dirty = pages;
    if (strchr(flags, 'd'))
        printf("ckpt_work: outcommit was %ld\n", sys_outcommit(OUTCOMMIT_OFF));
    if (strchr(flags, 'q')) {
        // 64 pages at a time, up to 2048 pages, until map() says no.
        unsigned long got = 0;
        long big = 0;
        while (got < 2048 && (big = sys_map(0x40000000UL + got * PAGE, 64 * PAGE, PROT_READ | PROT_WRITE)) == 0)
            got += 64;
        printf("ckpt_work: quota probe mapped %lu pages, then %s\n", got, big < 0 ? errno_name(big) : "stopped");
        sys_unmap(0x40000000UL, got * PAGE);
    }
    long r = map_all(BASE, pages * PAGE, PROT_READ | PROT_WRITE);
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
        for (int k = 0; strchr(flags, 'l') && k < 64; k++)
            printf("ckpt_work: loud %lu.%02d %0240d\n", i, k, 0);
        gen = sys_checkpoint();
        printf("ckpt_work: step %lu generation %ld sum %lu\n", i, gen, sum(mem, pages));
    }
    if (strchr(flags, 'z')) {
        sys_unmap(BASE + (pages - 1) * PAGE, PAGE);
        sys_map(BASE + (pages - 1) * PAGE, PAGE, PROT_READ | PROT_WRITE);
        gen = sys_checkpoint();
        printf("ckpt_work: zeroed generation %ld sum %lu\n", gen, sum(mem, pages));
    }
    printf("ckpt_work: done sum %lu\n", sum(mem, pages));
    return 0;
}
