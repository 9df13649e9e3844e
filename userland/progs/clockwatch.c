// clockwatch[:rounds[:period_us[:threads[:every]]]]: the clock never goes back and
// sleeps come back, across restores (docs/persistence.md, "Restore").
// A watcher thread never sleeps: it reads clock_ns() and yields, over and
// over, so the first thing it does after a restore is read the clock (a
// sleeper's first act would be to wait for its old deadline, which hides a
// clock that went back).
// Each of `threads` threads (default 2) runs `rounds` rounds (default 400):
// it sleeps until an absolute deadline `period_us` (default 2000) ahead
// (thread 0 with the kernel's sleep_until, so the vproc itself is blocked
// and its call rewound; the others with thread_sleep_until), then reads
// clock_ns() and compares it with the last value it saw, which lives in
// its memory and so is whatever the checkpoint saved. A restore that let
// the clock restart from zero would show up as `backwards`; a rerun that
// lost its sleep as `early`. The work (a hash chain over the rounds) is
// deterministic, so an interrupted run ends with the same checksum as an
// uninterrupted one. With `every` > 0, thread 0 prints a progress line
// every `every` rounds, so that a restore test can check that no line is
// lost or printed twice (output commit). Prints
//   clockwatch: round <n>                                       (with every)
//   clockwatch: BACKWARDS thread <t> round <r> by <ns> ns     (never, we hope)
//   clockwatch: done rounds=<n> backwards=<n> early=<n> checksum=<hex> restarts=<n>
// and exits 1 if the clock went back or a sleep ended early.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <thread.h>

#define MAX_THREADS 8

struct watch {
    uint64_t last;              // the latest clock_ns() this thread saw
    uint64_t chain;             // its hash chain over the rounds done
    unsigned long rounds, backwards, early;
};

static struct watch watches[MAX_THREADS];
static struct watch watcher;
static unsigned long running;           // sleepers not done yet (atomic)
static unsigned long rounds = 400, period_us = 2000, every;

static uint64_t mix(uint64_t x)         // splitmix64's finalizer
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void saw(struct watch *w, const char *who, uint64_t now)
{
    if (now < w->last) {
        w->backwards++;
        printf("clockwatch: BACKWARDS %s round %lu by %lu ns\n", who, w->rounds,
               (unsigned long)(w->last - now));
    }
    w->last = now;
}

static void *watch_clock(void *arg)
{
    (void)arg;
    while (__atomic_load_n(&running, __ATOMIC_SEQ_CST)) {
        saw(&watcher, "watcher", (uint64_t)sys_clock_ns());
        thread_yield();
    }
    return NULL;
}

static void *watch_rounds(void *arg)
{
    long id = (long)arg;
    struct watch *w = &watches[id];
    while (w->rounds < rounds) {
        uint64_t deadline = (uint64_t)sys_clock_ns() + period_us * 1000;
        if (id == 0)
            sys_sleep_until(deadline);
        else
            thread_sleep_until(deadline);
        uint64_t now = (uint64_t)sys_clock_ns();
        saw(w, id ? "sleeper" : "sleeper 0", now);
        w->early += now < deadline;
        w->chain = mix(w->chain ^ ((uint64_t)id << 32 | w->rounds));
        w->rounds++;
        if (id == 0 && every && w->rounds % every == 0)
            printf("clockwatch: round %lu\n", w->rounds);
    }
    __atomic_fetch_sub(&running, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = strtoul(argv[1], 0, 10);
    if (argc > 2)
        period_us = strtoul(argv[2], 0, 10);
    long threads = argc > 3 ? atoi(argv[3]) : 2;
    if (argc > 4)
        every = strtoul(argv[4], 0, 10);
    if (threads < 1 || threads > MAX_THREADS || period_us == 0) {
        printf("clockwatch: FAIL bad arguments\n");
        return 2;
    }
    struct thread *t[MAX_THREADS], *w;
    running = (unsigned long)threads;
    if (thread_create(&w, watch_clock, NULL) < 0)
        printf("clockwatch: FAIL thread_create watcher\n");
    for (long i = 1; i < threads; i++)
        if (thread_create(&t[i], watch_rounds, (void *)i) < 0)
            printf("clockwatch: FAIL thread_create %ld\n", i);
    watch_rounds((void *)0L);
    for (long i = 1; i < threads; i++)
        thread_join(t[i], NULL);
    thread_join(w, NULL);
    struct watch all = { 0, 0, 0, watcher.backwards, 0 };
    for (long i = 0; i < threads; i++) {
        all.rounds += watches[i].rounds;
        all.backwards += watches[i].backwards;
        all.early += watches[i].early;
        all.chain ^= watches[i].chain;
    }
    struct thread_stats st;
    thread_get_stats(&st);
    printf("clockwatch: done rounds=%lu backwards=%lu early=%lu checksum=%016lx restarts=%lu\n",
           all.rounds, all.backwards, all.early, (unsigned long)all.chain,
           (unsigned long)st.restarts);
    return all.backwards || all.early;
}
