// powerwork[:units[:work[:every[:pages]]]]: the power-cut experiment's
// workload (toolchain/experiments/powercut.py, docs/persistence.md,
// "Experiments"). It does `units` units of work (default 200), each
// `work` rounds (default 2000) of a hash over `pages` mapped pages
// (default 8), and prints one numbered line per unit:
//   powerwork: unit <k> sum <hex>
// calling checkpoint() itself after every `every` units (default 0: never;
// the kernel's checkpoint_every= timer takes them instead or as well).
// It ends with
//   powerwork: done units=<n> checksum=<hex>
// Everything a unit depends on (the unit counter, the running sum, the
// pages) lives in the program's memory, so a restore resumes from whatever
// the checkpoint saved. The output is a pure function of the arguments: a
// run cut and restored any number of times must print the uninterrupted
// run's lines, each exactly once across all boots (with output commit on),
// and the same checksum. A unit lost or done twice shows as a missing or a
// repeated line, or another sum.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>

#define BASE 0x20000000UL
#define PAGE 4096UL
#define WORDS (PAGE / sizeof(uint64_t))

static uint64_t mix(uint64_t x)         // splitmix64's finalizer
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// One unit: `work` read-modify-writes spread over the pages (so every
// checkpoint finds dirty pages to write), folded into the running sum.
static uint64_t unit(volatile uint64_t *mem, unsigned long pages, unsigned long k, unsigned long work,
                     uint64_t sum)
{
    for (unsigned long i = 0; i < work; i++) {
        unsigned long at = ((k + i) % pages) * WORDS + (i * 7) % WORDS;
        mem[at] = mix(mem[at] ^ sum ^ i);
        sum ^= mem[at];
    }
    return mix(sum ^ k);
}

int main(int argc, char **argv)
{
    unsigned long units = argc > 1 ? strtoul(argv[1], 0, 10) : 200;
    unsigned long work = argc > 2 ? strtoul(argv[2], 0, 10) : 2000;
    unsigned long every = argc > 3 ? strtoul(argv[3], 0, 10) : 0;
    unsigned long pages = argc > 4 ? strtoul(argv[4], 0, 10) : 8;
    if (pages < 1 || pages > 256)
        pages = 8;
    long r = map_all(BASE, pages * PAGE, PROT_READ | PROT_WRITE);
    if (r < 0) {
        printf("powerwork: map failed: %s\n", errno_name(r));
        return 1;
    }
    volatile uint64_t *mem = (volatile uint64_t *)BASE;
    uint64_t sum = 0;
    for (unsigned long k = 0; k < units; k++) {
        sum = unit(mem, pages, k, work, sum);
        printf("powerwork: unit %lu sum %016lx\n", k, (unsigned long)sum);
        if (every && (k + 1) % every == 0)
            sys_checkpoint();
    }
    printf("powerwork: done units=%lu checksum=%016lx\n", units, (unsigned long)sum);
    return 0;
}
