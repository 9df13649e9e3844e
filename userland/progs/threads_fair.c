// threads_fair[:threads[:ms]]: `threads` (8) CPU-bound user threads that
// never yield, in one environment, for `ms` (1000) ms of guest time. Only
// preemption (activation upcalls into the runtime's round-robin scheduler)
// lets them all advance. Prints, per thread,
//   fair: thread <i> work <n> preempted <k>
// then `fair: total <sum> threads <n>`; the host test checks every share.
// main sleeps meanwhile (thread_sleep: only main sleeps, the vproc does not).
#include <stdio.h>
#include <stdlib.h>
#include <thread.h>

#define MAX_WORKERS 32

struct worker {
    struct thread *t;
    volatile unsigned long work;
    unsigned long preempted;
};

static struct worker workers[MAX_WORKERS];
static volatile int stop;

static void *spin(void *arg)
{
    struct worker *w = arg;
    while (!stop)
        w->work++;
    w->preempted = thread_preemptions(thread_self());
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8;
    unsigned long ms = argc > 2 ? strtoul(argv[2], 0, 10) : 1000;
    if (n < 1 || n > MAX_WORKERS)
        n = 8;
    for (int i = 0; i < n; i++) {
        int err = thread_create(&workers[i].t, spin, &workers[i]);
        if (err) {
            printf("fair: thread_create %d failed: %d\n", i, err);
            return 1;
        }
    }
    thread_sleep(ms);
    stop = 1;
    unsigned long total = 0;
    for (int i = 0; i < n; i++) {
        thread_join(workers[i].t, NULL);
        total += workers[i].work;
    }
    for (int i = 0; i < n; i++)
        printf("fair: thread %d work %lu preempted %lu\n", i, workers[i].work, workers[i].preempted);
    printf("fair: total %lu threads %d\n", total, n);
    return 0;
}
