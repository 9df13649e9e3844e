// Timing for the bench_* programs, measured and reported the way the Linux
// peer (toolchain/peer/bench.c) does, so toolchain.linuxpeer.parse_results
// reads both: the TSC fenced with lfence, and figures printed as fixed-point
// decimals (user code has no FPU state) in a RESULT line.
#ifndef BENCH_H
#define BENCH_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <revenant.h>

// lfence on both sides: rdtsc neither starts before earlier instructions
// finish nor lets later ones start before it has read the counter.
static inline uint64_t tsc(void)
{
    uint32_t lo, hi;
    asm volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

// "X.YYY" for num/den without floating point.
static inline void fixed3(char *buf, size_t size, uint64_t num, uint64_t den)
{
    uint64_t milli = den ? num * 1000 / den : 0;
    snprintf(buf, size, "%lu.%03lu", (unsigned long)(milli / 1000), (unsigned long)(milli % 1000));
}

// The plain RESULT line, per-iteration figures from the fastest chunk
// (best_tsc and best_ns over its per_chunk iterations):
//   RESULT name=N iters=I tsc_per_iter=X ns_per_iter=Y tsc_total=T ns_total=S
static inline void bench_result(const char *name, long iters, uint64_t best_tsc, uint64_t best_ns,
                                uint64_t per_chunk, uint64_t tsc_total, uint64_t ns_total)
{
    char per_t[32], per_n[32];
    fixed3(per_t, sizeof(per_t), best_tsc, per_chunk);
    fixed3(per_n, sizeof(per_n), best_ns, per_chunk);
    printf("RESULT name=%s iters=%ld tsc_per_iter=%s ns_per_iter=%s tsc_total=%lu ns_total=%lu\n",
           name, iters, per_t, per_n, (unsigned long)tsc_total, (unsigned long)ns_total);
}

// Call round() chunks x per_chunk times, timing each chunk of per_chunk calls, and print the
// RESULT line with per-iteration figures from the fastest chunk; one call is per_round
// iterations (2 for a round trip counted in switches).
static inline void bench_chunks(const char *name, void (*round)(void), long per_chunk, int chunks,
                                long per_round)
{
    uint64_t best_t = UINT64_MAX, best_n = 0;
    uint64_t n0 = sys_clock_ns(), t0 = tsc();
    for (int c = 0; c < chunks; c++) {
        uint64_t cn = sys_clock_ns(), ct = tsc();
        for (long i = 0; i < per_chunk; i++)
            round();
        uint64_t dt = tsc() - ct, dn = sys_clock_ns() - cn;
        if (dt < best_t)
            best_t = dt, best_n = dn;
    }
    uint64_t t1 = tsc(), n1 = sys_clock_ns();
    bench_result(name, per_round * per_chunk * chunks, best_t, best_n, per_round * per_chunk,
                 t1 - t0, n1 - n0);
}
#endif
