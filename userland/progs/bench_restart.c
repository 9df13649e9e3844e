// bench_restart[:children[:events]]: what one in-place restart costs with
// every other environment blocked in the kernel (docs/restart.md), to set
// beside Linux waking as many futex waiters at once (toolchain/peer/bench.c,
// `wakeall`). Run with hz=1000 restart_every=5: every fifth tick is a
// restart, and the others leave time for every child to block again.
//
// This program spawns `children` children (default 62: with init and this
// one, ENV_MAX = 64 environments) that each block in the kernel's
// futex_wait on one word of a shared region; init blocks in wait. Then it
// reads the TSC back to back and classifies each gap in that loop by
// whether a restarted upcall came in it: a restart gap holds the drop of
// every wait, one restarted upcall per environment, every child's rerun of
// futex_wait (which blocks again) and init's rerun of wait; a tick gap is a
// plain preemption upcall. Lines:
//   RESULT name=restart_gap iters=<events> tsc_per_iter=<median restart gap> ... (bench.h format)
//   RESULT name=tick_gap iters=<n> tsc_per_iter=<median tick gap> ...
//   bench_restart: children=<n> ended_badly=<n> restarts=<n>
#include <bench.h>
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread.h>

#define REGION_AT   0x50000000UL
#define EVENTS_MAX  2000

struct region {
    volatile uint32_t go;               // 1: the children end
    volatile uint32_t ready;            // children that reached their wait
};

static uint64_t restart_gaps[EVENTS_MAX], tick_gaps[EVENTS_MAX];

static int child(void)
{
    if (sys_shm_map(SHM_GIVEN(0), REGION_AT, PROT_READ | PROT_WRITE) < 0)
        return 1;
    struct region *r = (struct region *)REGION_AT;
    __atomic_add_fetch(&r->ready, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&r->go, __ATOMIC_SEQ_CST)) {
        long e = sys_futex_wait(&r->go, 0, FUTEX_NO_DEADLINE);
        if (e != -EAGAIN) {
            printf("bench_restart: FAIL child futex_wait returned %ld\n", e);
            return 1;
        }
    }
    return 0;
}

static uint64_t restarts(void)
{
    struct thread_stats st;
    thread_get_stats(&st);
    return st.restarts;
}

static void sort(uint64_t *a, long n)
{
    for (long i = 1; i < n; i++)
        for (long j = i; j > 0 && a[j - 1] > a[j]; j--) {
            uint64_t t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
        }
}

static void report(const char *name, uint64_t *gaps, long n)
{
    sort(gaps, n);
    uint64_t total = 0;
    for (long i = 0; i < n; i++)
        total += gaps[i];
    // One "chunk" of one event: the median gap (ns figures are not kept for gaps).
    bench_result(name, n, gaps[n / 2], 0, 1, total, 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child();
    long children = argc > 1 ? (long)strtoul(argv[1], 0, 10) : 62;
    long events = argc > 2 ? (long)strtoul(argv[2], 0, 10) : 200;
    if (events > EVENTS_MAX)
        events = EVENTS_MAX;
    long h = sys_shm_create(4096);
    if (h < 0 || sys_shm_map(h, REGION_AT, PROT_READ | PROT_WRITE) < 0) {
        printf("bench_restart: FAIL region\n");
        return 1;
    }
    struct region *r = (struct region *)REGION_AT;
    long ids[64], spawned = 0;
    char *cargv[] = { "bench_restart", "child", NULL };
    for (long i = 0; i < children && i < 64; i++) {
        ids[spawned] = sys_spawn_shared("bench_restart", cargv, 2, &h, 1);
        if (ids[spawned] < 0) {
            printf("bench_restart: FAIL spawn %ld: %s\n", i, errno_name(ids[spawned]));
            break;
        }
        spawned++;
    }
    while (__atomic_load_n(&r->ready, __ATOMIC_SEQ_CST) < spawned)
        sys_yield();
    for (int i = 0; i < 4; i++)
        sys_yield();                    // every child runs on into its futex_wait
    long nr = 0, nt = 0;
    uint64_t step = UINT64_MAX, prev = tsc();
    for (int i = 0; i < 10000; i++) {   // the undisturbed step of the loop
        uint64_t t = tsc();
        if (t - prev < step)
            step = t - prev;
        prev = t;
    }
    uint64_t seen = restarts(), thresh = step * 20 < 500 ? 500 : step * 20;
    prev = tsc();
    while (nr < events) {
        uint64_t t = tsc();
        if (t - prev > thresh) {
            uint64_t now = restarts();
            if (now == seen + 1)
                restart_gaps[nr++] = t - prev - step;
            else if (now == seen && nt < EVENTS_MAX)
                tick_gaps[nt++] = t - prev - step;
            seen = now;
        }
        prev = t;
    }
    report("restart_gap", restart_gaps, nr);
    if (nt)
        report("tick_gap", tick_gaps, nt);
    __atomic_store_n(&r->go, 1, __ATOMIC_SEQ_CST);
    sys_futex_wake(&r->go, 64);
    int failed = 0;
    for (long i = 0; i < spawned; i++) {
        int status = -1;
        failed += sys_wait(ids[i], &status) != ids[i] || status != 0;
    }
    printf("bench_restart: children=%ld ended_badly=%d restarts=%lu\n", spawned, failed,
           (unsigned long)restarts());
    return failed || spawned != children;
}
