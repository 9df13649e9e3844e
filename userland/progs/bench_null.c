// bench_null[:iters]: the null system call (getpid) in a loop, timed with
// the TSC. Prints the same RESULT line as the Linux peer
// (toolchain/peer/bench.c), so toolchain.linuxpeer.parse_results reads both:
//   RESULT name=getpid iters=N tsc_per_iter=X ns_per_iter=Y tsc_total=T ns_total=S
// Like the peer, the loop runs in CHUNKS timed chunks and the per-iteration
// figures come from the fastest one (the chunk no timer tick landed in).
// Not bench_chunks() (bench.h): its call through a function pointer would add
// instructions to the loop whose count is the null-syscall figure.
#include <bench.h>
#include <revenant.h>
#include <stdint.h>
#include <stdlib.h>

#define CHUNKS 10

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
    bench_result("getpid", per_chunk * chunks, best_t, best_n, per_chunk, t1 - t0, n1 - n0);
    return 0;
}
