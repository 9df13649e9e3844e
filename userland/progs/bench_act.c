// bench_act[:events]: the activation round trip -- timer interrupt, upcall
// into the runtime's scheduler, act_resume of the same (only) thread,
// restore sequence -- measured the way the Linux peer measures its SIGALRM
// round trip (toolchain/peer/bench.c, `alarm`): a loop reads the TSC back
// to back, and a gap during which the runtime counted one more preemption
// of this thread is one event. Gaps without an upcall (a tick absorbed
// while disabled, another environment running) are counted apart.
//   RESULT name=activation iters=N tsc_per_iter=<median event> ns_per_iter=..
//          mean_tsc_per_iter=.. min_tsc=.. step_tsc=.. other_gaps=.. multi=.. tsc_total=.. ns_total=..
// Run it with a fast tick (hz=10000): the event rate is the tick rate.
#include <bench.h>
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <thread.h>

#define MAX_EVENTS 4096

static uint64_t gaps[MAX_EVENTS];

static void sort(uint64_t *v, long n)      // shell sort: no libc qsort here
{
    for (long gap = n / 2; gap > 0; gap /= 2)
        for (long i = gap; i < n; i++)
            for (long j = i; j >= gap && v[j - gap] > v[j]; j -= gap) {
                uint64_t t = v[j];
                v[j] = v[j - gap];
                v[j - gap] = t;
            }
}

// The undisturbed loop step: the smallest delta between two reads.
static uint64_t loop_step(void)
{
    uint64_t step = UINT64_MAX, prev = tsc();
    for (int i = 0; i < 100000; i++) {
        uint64_t t = tsc();
        if (t - prev < step)
            step = t - prev;
        prev = t;
    }
    return step;
}

int main(int argc, char **argv)
{
    long want = argc > 1 ? (long)strtoul(argv[1], 0, 10) : 2000;
    if (want < 1 || want > MAX_EVENTS)
        want = 2000;
    if (thread_runtime_init() < 0) {
        printf("bench_act: no activations in this kernel\n");
        return 1;
    }
    const struct thread *self = thread_self();
    uint64_t step = loop_step(), thresh = step * 20 < 500 ? 500 : step * 20;
    long n = 0, other = 0, multi = 0;
    uint64_t sum = 0;
    unsigned long last = thread_preemptions(self);
    uint64_t n0 = sys_clock_ns(), t0 = tsc(), prev = t0;
    while (n < want) {
        uint64_t t = tsc();
        unsigned long c = thread_preemptions(self);   // a call: the compiler cannot cache it
        uint64_t d = t - prev;      // an upcall before t shows in c now, one after t in the next gap
        if (d > thresh) {
            if (c == last + 1) {
                gaps[n++] = d - step;
                sum += d - step;
            } else if (c == last) {
                other++;
            } else {
                multi++;
            }
            last = c;
        }
        prev = t;
    }
    uint64_t t1 = tsc(), n1 = sys_clock_ns();
    sort(gaps, n);
    char med[32], med_ns[32], mean[32];
    fixed3(med, sizeof(med), gaps[n / 2], 1);
    fixed3(med_ns, sizeof(med_ns), gaps[n / 2] * (n1 - n0), t1 - t0);
    fixed3(mean, sizeof(mean), sum, n);
    printf("RESULT name=activation iters=%ld tsc_per_iter=%s ns_per_iter=%s mean_tsc_per_iter=%s "
           "min_tsc=%lu step_tsc=%lu other_gaps=%ld multi=%ld tsc_total=%lu ns_total=%lu\n",
           n, med, med_ns, mean, (unsigned long)gaps[0], (unsigned long)step, other, multi,
           (unsigned long)(t1 - t0), (unsigned long)(n1 - n0));
    return 0;
}
