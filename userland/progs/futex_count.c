// futex_count[:threads[:increments[:envs[:restarts]]]]: `threads` threads
// (default 8) each add 1 to a counter `increments` times (default 5,000), a
// read-pause-write under an fmutex (a futex mutex, userland/lib/thread_futex.c).
// With envs=2 the counter and the mutex live in a shared region and half
// the threads run in a child environment (spawned with the region), so a
// waiter is woken across environments through the kernel's futex_wake, and
// a program whose threads all wait sleeps in the kernel's futex_wait.
// Under restarts (docs/restart.md) every wait is dropped and rerun; the
// total must still be exact. With `restarts` > 0 each thread goes on past
// `increments` until its environment has received that many restarted
// upcalls (so host-triggered restarts surely hit the run); the total wanted
// is then the sum of what the threads counted themselves:
//   futex_count: env <role> threads=<n> restarts=<n> futex_waits=<n> futex_sleeps=<n> us=<n>
//   futex_count: total=<n> want=<n>              (the parent, at the end)
// Exits 0 iff the total is exact (the parent also needs the child's 0).
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread.h>

#define SHARED_AT   0x50000000UL
#define MAX_THREADS 32

struct shared {
    struct fmutex lock;
    volatile uint64_t counter;
    volatile uint64_t added;            // the threads' own counts, summed at their ends
};

static struct shared local;
static struct shared *shared = &local;
static unsigned long increments = 5000;
static unsigned long min_restarts;

static int more(unsigned long done)
{
    if (done < increments)
        return 1;
    if (!min_restarts)
        return 0;
    struct thread_stats st;
    thread_get_stats(&st);
    return st.restarts < min_restarts;
}

static void *add(void *arg)
{
    (void)arg;
    unsigned long i;
    for (i = 0; more(i); i++) {
        fmutex_lock(&shared->lock);
        uint64_t v = shared->counter;
        for (volatile int k = 0; k < 20; k++)     // widen the window a preemption can hit
            ;
        shared->counter = v + 1;
        fmutex_unlock(&shared->lock);
    }
    __atomic_add_fetch(&shared->added, i, __ATOMIC_SEQ_CST);
    return NULL;
}

// Run `n` threads of add() (this thread is one of them) and join them.
static void run(const char *role, long n)
{
    struct thread *t[MAX_THREADS];
    uint64_t t0 = (uint64_t)sys_clock_ns();
    for (long i = 1; i < n; i++)
        if (thread_create(&t[i], add, NULL) < 0)
            printf("futex_count: FAIL thread_create %ld\n", i);
    add(NULL);
    for (long i = 1; i < n; i++)
        thread_join(t[i], NULL);
    struct thread_stats st;
    thread_get_stats(&st);
    printf("futex_count: env %s threads=%ld restarts=%lu futex_waits=%lu futex_sleeps=%lu us=%lu\n",
           role, n, (unsigned long)st.restarts, (unsigned long)st.futex_waits,
           (unsigned long)st.futex_sleeps, (unsigned long)(((uint64_t)sys_clock_ns() - t0) / 1000));
}

static int child(long threads)
{
    if (sys_shm_map(SHM_GIVEN(0), SHARED_AT, PROT_READ | PROT_WRITE) < 0) {
        printf("futex_count: FAIL child shm_map\n");
        return 1;
    }
    shared = (struct shared *)SHARED_AT;
    run("child", threads);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 3 && strcmp(argv[1], "child") == 0) {
        increments = strtoul(argv[3], 0, 10);
        min_restarts = argc > 4 ? strtoul(argv[4], 0, 10) : 0;
        return child(atoi(argv[2]));
    }
    long threads = argc > 1 ? atoi(argv[1]) : 8;
    if (argc > 2)
        increments = strtoul(argv[2], 0, 10);
    long envs = argc > 3 ? atoi(argv[3]) : 1;
    min_restarts = argc > 4 ? strtoul(argv[4], 0, 10) : 0;
    if (threads < envs || threads > MAX_THREADS || (envs != 1 && envs != 2)) {
        printf("futex_count: FAIL bad arguments\n");
        return 2;
    }
    long id = 0;
    if (envs == 2) {
        long h = sys_shm_create(sizeof(struct shared));
        if (h < 0 || sys_shm_map(h, SHARED_AT, PROT_READ | PROT_WRITE) < 0) {
            printf("futex_count: FAIL region\n");
            return 1;
        }
        shared = (struct shared *)SHARED_AT;
        char n[24], inc[24], mr[24];
        snprintf(n, sizeof(n), "%ld", threads / 2);
        snprintf(inc, sizeof(inc), "%lu", increments);
        snprintf(mr, sizeof(mr), "%lu", min_restarts);
        char *cargv[] = { "futex_count", "child", n, inc, mr, NULL };
        id = sys_spawn_shared("futex_count", cargv, 5, &h, 1);
        if (id < 0) {
            printf("futex_count: FAIL spawn_shared: %s\n", errno_name(id));
            return 1;
        }
        threads -= threads / 2;
    }
    run(envs == 2 ? "parent" : "only", threads);
    int status = 0;
    long got = id > 0 ? sys_wait(id, &status) : 0;
    if (got != id) {
        printf("futex_count: FAIL wait returned %ld (%s), want %ld\n", got, errno_name(got), id);
        status = -1;
    }
    uint64_t want = (uint64_t)(argc > 1 ? atoi(argv[1]) : 8) * increments;
    if (min_restarts)
        want = shared->added;           // at least the above: each thread counted its own
    printf("futex_count: total=%lu want=%lu\n", (unsigned long)shared->counter, (unsigned long)want);
    return shared->counter != want || status != 0;
}
