// act_stress[:threads[:steps[:rounds[:preemptions[:redeliveries]]]]]:
// preempt register-heavy threads many times and check that nothing was
// lost, corrupted or leaked.
//
// `threads` (4) threads each run lcg.S `rounds` (10) times for `steps`
// (1,000,000) steps: seven LCG streams held in every general register.
// With `preemptions` or `redeliveries` > 0 the rounds are open-ended
// instead: the threads go on until the runtime has taken that many upcalls
// and the kernel has re-delivered that many records (interrupts that landed
// inside the restore sequence); main checks every 10 ms. The run length
// then follows the tick rate, not the CPU speed.
// Each thread then computes the same streams a second way, by jumping
// ahead (O(log n) compositions of the affine map, no loop to preempt), and
// compares. At the end every thread is joined, so no record can be in use:
// the kernel's free count must equal the pool size. Lines:
//   stress: thread <i> ok steps <n> preempted <k>          (or FAIL ...)
//   stress: act pool=.. free=.. delivered=.. redelivered=.. resumed=.. freed=.. disabled_saves=..
//   stress: runtime upcalls=.. critical=.. resumes=.. enables=.. switches=..
//   stress: done ok                                        (or done FAIL)
// Exit status 0 iff every checksum matched and the pool is whole.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <thread.h>
#include "lcg.h"

#define MAX_THREADS 32

static const uint64_t A[LCG_STREAMS] = { LCG_A0, LCG_A1, LCG_A2, LCG_A3, LCG_A4, LCG_A5, LCG_A6 };
static const uint64_t C[LCG_STREAMS] = { LCG_C0, LCG_C1, LCG_C2, LCG_C3, LCG_C4, LCG_C5, LCG_C6 };

// k steps of x -> a x + c: x_k = ax x0 + cx, and the sum of x_1..x_k is
// as x0 + cs.
struct affine { uint64_t ax, cx, as, cs; };

// `first` followed by `then`.
static struct affine compose(struct affine first, struct affine then)
{
    return (struct affine){
        .ax = then.ax * first.ax,
        .cx = then.ax * first.cx + then.cx,
        .as = first.as + then.as * first.ax,
        .cs = first.cs + then.as * first.cx + then.cs,
    };
}

static struct affine jump(uint64_t a, uint64_t c, uint64_t n)
{
    struct affine result = { 1, 0, 0, 0 }, step = { a, c, a, c };
    for (; n; n >>= 1, step = compose(step, step))
        if (n & 1)
            result = compose(result, step);     // powers of one map commute
    return result;
}

struct job {
    int index;
    uint64_t steps, rounds;             // rounds: the limit, then the count done
    struct thread *t;
    int ok;
};

static struct job jobs[MAX_THREADS];
static volatile int stop;               // open-ended mode: main says when

static uint64_t seed(int thread, int stream)
{
    return 0x9e3779b97f4a7c15ULL * (uint64_t)(thread * LCG_STREAMS + stream + 1);
}

static int check(struct job *j, const struct lcg *st)
{
    int ok = 1;
    for (int i = 0; i < LCG_STREAMS; i++) {
        struct affine f = jump(A[i], C[i], j->steps * j->rounds);
        uint64_t x0 = seed(j->index, i), want_x = f.ax * x0 + f.cx, want_s = f.as * x0 + f.cs;
        if (st->x[i] != want_x || st->s[i] != want_s) {
            printf("stress: thread %d FAIL stream %d x=%lx want %lx s=%lx want %lx\n", j->index, i,
                   (unsigned long)st->x[i], (unsigned long)want_x, (unsigned long)st->s[i],
                   (unsigned long)want_s);
            ok = 0;
        }
    }
    return ok;
}

static void *work(void *arg)
{
    struct job *j = arg;
    struct lcg st;
    for (int i = 0; i < LCG_STREAMS; i++) {
        st.x[i] = seed(j->index, i);
        st.s[i] = 0;
    }
    uint64_t limit = j->rounds, r;
    for (r = 0; limit ? r < limit : !stop; r++)
        lcg_run(&st, j->steps);
    j->rounds = r;
    j->ok = check(j, &st);
    if (j->ok)
        printf("stress: thread %d ok steps %lu preempted %lu\n", j->index,
               (unsigned long)(j->steps * j->rounds), thread_preemptions(thread_self()));
    return NULL;
}

static int report(void)
{
    struct act_stats a;
    struct thread_stats t;
    long err = act_stats(&a);
    thread_get_stats(&t);
    if (err < 0) {
        printf("stress: act_stats failed: %s\n", errno_name(err));
        return 0;
    }
    printf("stress: act pool=%lu free=%lu delivered=%lu redelivered=%lu resumed=%lu freed=%lu "
           "disabled_saves=%lu\n", (unsigned long)a.pool_size, (unsigned long)a.free_records,
           (unsigned long)a.delivered, (unsigned long)a.redelivered, (unsigned long)a.resumed,
           (unsigned long)a.freed, (unsigned long)a.disabled_saves);
    printf("stress: runtime upcalls=%lu critical=%lu resumes=%lu enables=%lu switches=%lu\n",
           (unsigned long)t.upcalls, (unsigned long)t.critical, (unsigned long)t.resumes,
           (unsigned long)t.enables, (unsigned long)t.switches);
    return a.free_records == a.pool_size;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    uint64_t steps = argc > 2 ? strtoul(argv[2], 0, 10) : 1000000;
    uint64_t rounds = argc > 3 ? strtoul(argv[3], 0, 10) : 10;
    uint64_t preemptions = argc > 4 ? strtoul(argv[4], 0, 10) : 0;
    if (n < 1 || n > MAX_THREADS)
        n = 4;
    uint64_t redeliveries = argc > 5 ? strtoul(argv[5], 0, 10) : 0;
    if (preemptions || redeliveries)
        rounds = 0;
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct job){ .index = i, .steps = steps, .rounds = rounds };
        int err = thread_create(&jobs[i].t, work, &jobs[i]);
        if (err) {
            printf("stress: thread_create %d failed: %s\n", i, errno_name(err));
            return 1;
        }
    }
    if (!rounds) {
        struct thread_stats t;
        struct act_stats a = { 0 };
        do {
            thread_sleep(10);
            thread_get_stats(&t);
            if (redeliveries)
                act_stats(&a);
        } while (t.upcalls < preemptions || a.redelivered < redeliveries);
        stop = 1;
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        thread_join(jobs[i].t, NULL);
        ok &= jobs[i].ok;
    }
    ok &= report();
    printf("stress: done %s\n", ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
