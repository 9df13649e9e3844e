// bench_null[:iters]: the null system call (getpid) in a loop, timed with
// the TSC. Prints the same RESULT line as the Linux peer
// (toolchain/peer/bench.c), so toolchain.linuxpeer.parse_results reads both:
//   RESULT name=getpid iters=N tsc_per_iter=X ns_per_iter=Y tsc_total=T ns_total=S
// Like the peer, the loop runs in CHUNKS timed chunks and the per-iteration
// figures come from the fastest one (the chunk no timer tick landed in).
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNKS 10

// lfence on both sides: rdtsc neither starts before earlier instructions
// finish nor lets later ones start before it has read the counter.
static inline uint64_t tsc(void)
{
    uint32_t lo, hi;
    asm volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

// "X.YYY" for num/den without floating point (user code has no FPU state).
static void fixed3(char *buf, size_t size, uint64_t num, uint64_t den)
{
    uint64_t milli = den ? num * 1000 / den : 0;
    snprintf(buf, size, "%lu.%03lu", (unsigned long)(milli / 1000), (unsigned long)(milli % 1000));
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? (long)strtoul(argv[1], 0, 10) : 100000;
    long per_chunk = iters >= CHUNKS ? iters / CHUNKS : iters;
    long chunks = iters >= CHUNKS ? CHUNKS : 1;
    uint64_t best_t = UINT64_MAX, best_n = 0;
    uint64_t n0 = sys_clock_ns(), t0 = tsc();
    for (long c = 0; c < chunks; c++) {
        uint64_t cn = sys_clock_ns(), ct = tsc();
        for (long i = 0; i < per_chunk; i++)
            sys_getpid();
        uint64_t dt = tsc() - ct, dn = sys_clock_ns() - cn;
        if (dt < best_t)
            best_t = dt, best_n = dn;
    }
    uint64_t t1 = tsc(), n1 = sys_clock_ns();
    char per_t[32], per_n[32];
    fixed3(per_t, sizeof(per_t), best_t, per_chunk);
    fixed3(per_n, sizeof(per_n), best_n, per_chunk);
    printf("RESULT name=getpid iters=%ld tsc_per_iter=%s ns_per_iter=%s tsc_total=%lu ns_total=%lu\n",
           per_chunk * chunks, per_t, per_n, (unsigned long)(t1 - t0), (unsigned long)(n1 - n0));
    return 0;
}
