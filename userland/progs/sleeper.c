// sleeper[:threads[:rounds[:max_ms[:seed]]]]: sleeps never end early, across
// restarts (docs/restart.md). Each of `threads` threads (default 4) sleeps
// `rounds` times (default 50) until a random absolute deadline up to
// `max_ms` (default 5) ahead, then checks clock_ns() against it. Thread 0
// calls the kernel's sleep_until itself (the whole vproc sleeps; a restart
// reruns the call); the others use thread_sleep_until (the runtime sleeps
// the vproc when nobody can run). Prints
//   sleeper: EARLY thread <t> round <r> by <ns> ns          (never, we hope)
//   sleeper: thread <t> sleeps=<n> early=<n> late_max_us=<n> late_mean_us=<n>
//   sleeper: done sleeps=<n> early=<n> late_max_us=<n> late_mean_us=<n> restarts=<n>
// and exits 1 if any sleep ended early.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <thread.h>

#define MAX_THREADS 16

struct result {
    unsigned long sleeps, early;
    uint64_t late_max, late_sum;
};

static struct result results[MAX_THREADS];
static unsigned long rounds = 50, max_ms = 5, seed = 1;

static void *sleep_rounds(void *arg)
{
    long id = (long)arg;
    struct result *r = &results[id];
    struct rng rng;
    rng_seed(&rng, seed * 7919 + (uint64_t)id);
    for (unsigned long i = 0; i < rounds; i++) {
        uint64_t deadline = (uint64_t)sys_clock_ns() + 1 + rng_below(&rng, max_ms * 1000000);
        if (id == 0) {
            long got = sys_sleep_until(deadline);
            if (got != 0)
                printf("sleeper: FAIL sleep_until returned %ld (%s)\n", got, errno_name(got));
        } else {
            thread_sleep_until(deadline);
        }
        uint64_t now = (uint64_t)sys_clock_ns();
        r->sleeps++;
        if (now < deadline) {
            r->early++;
            printf("sleeper: EARLY thread %ld round %lu by %lu ns\n", id, i,
                   (unsigned long)(deadline - now));
            continue;
        }
        uint64_t late = now - deadline;
        r->late_sum += late;
        if (late > r->late_max)
            r->late_max = late;
    }
    return NULL;
}

static void report(const char *what, const struct result *r, const char *tail)
{
    printf("sleeper: %s sleeps=%lu early=%lu late_max_us=%lu late_mean_us=%lu%s\n", what, r->sleeps,
           r->early, (unsigned long)(r->late_max / 1000),
           (unsigned long)(r->sleeps ? r->late_sum / r->sleeps / 1000 : 0), tail);
}

int main(int argc, char **argv)
{
    long threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        rounds = strtoul(argv[2], 0, 10);
    if (argc > 3)
        max_ms = strtoul(argv[3], 0, 10);
    if (argc > 4)
        seed = strtoul(argv[4], 0, 10);
    if (threads < 1 || threads > MAX_THREADS || max_ms == 0) {
        printf("sleeper: FAIL bad arguments\n");
        return 2;
    }
    struct thread *t[MAX_THREADS];
    for (long i = 1; i < threads; i++)
        if (thread_create(&t[i], sleep_rounds, (void *)i) < 0)
            printf("sleeper: FAIL thread_create %ld\n", i);
    sleep_rounds((void *)0L);
    for (long i = 1; i < threads; i++)
        thread_join(t[i], NULL);
    struct result all = { 0, 0, 0, 0 };
    for (long i = 0; i < threads; i++) {
        char what[32];
        snprintf(what, sizeof(what), "thread %ld", i);
        report(what, &results[i], "");
        all.sleeps += results[i].sleeps;
        all.early += results[i].early;
        all.late_sum += results[i].late_sum;
        if (results[i].late_max > all.late_max)
            all.late_max = results[i].late_max;
    }
    struct thread_stats st;
    thread_get_stats(&st);
    char tail[48];
    snprintf(tail, sizeof(tail), " restarts=%lu", (unsigned long)st.restarts);
    report("done", &all, tail);
    return all.early != 0;
}
