// threads_sync: the runtime's blocking primitives under preemption. Run
// with a fast tick (hz=1000+) so that preemptions land inside the
// critical regions. Each check prints `threads_sync: ok <what>` or
// `threads_sync: FAIL <what>: ...`; the exit status is the number of FAILs.
//   mutex    4 threads x 20,000 read-pause-write increments of one counter
//            under a mutex: the total is exact only if no update is lost;
//   cond     a bounded buffer (4 slots), 2 producers, 2 consumers, 5,000
//            items each: every item consumed exactly once (sum and count);
//   join     each thread's return value comes back through thread_join;
//   sleep    three threads sleep 30, 10, 20 ms: they wake in deadline
//            order, while a fourth keeps spinning (only they sleep);
//   limit    thread_create refuses once the record budget is reached.
#include <revenant.h>
#include <stdio.h>
#include <thread.h>

static int failures;

static void check(int ok, const char *what, long got, long want)
{
    if (ok)
        printf("threads_sync: ok %s\n", what);
    else
        printf("threads_sync: FAIL %s: got %ld, want %ld\n", what, got, want);
    failures += !ok;
}

static void run_all(void *(*fn)(void *), int n, void *args[], void *rets[])
{
    struct thread *t[8];
    for (int i = 0; i < n; i++)
        if (thread_create(&t[i], fn, args ? args[i] : NULL))
            check(0, "thread_create", i, -1);
    for (int i = 0; i < n; i++)
        thread_join(t[i], rets ? &rets[i] : NULL);
}

// ---- mutex
#define INCREMENTS 20000
static struct mutex counter_lock = MUTEX_INIT;
static volatile long counter;

static void *increment(void *arg)
{
    (void)arg;
    for (int i = 0; i < INCREMENTS; i++) {
        mutex_lock(&counter_lock);
        long v = counter;
        for (volatile int k = 0; k < 20; k++)     // widen the window a preemption can hit
            ;
        counter = v + 1;
        mutex_unlock(&counter_lock);
    }
    return NULL;
}

// ---- cond: a bounded buffer
#define SLOTS 4
#define ITEMS 5000
static struct mutex buf_lock = MUTEX_INIT;
static struct cond not_full = COND_INIT, not_empty = COND_INIT;
static long buf[SLOTS], head, count, consumed_sum, consumed_n;

static void *produce(void *arg)
{
    long base = (long)arg;
    for (long i = 1; i <= ITEMS; i++) {
        mutex_lock(&buf_lock);
        while (count == SLOTS)
            cond_wait(&not_full, &buf_lock);
        buf[(head + count++) % SLOTS] = base + i;
        cond_signal(&not_empty);
        mutex_unlock(&buf_lock);
    }
    return NULL;
}

static void *consume(void *arg)
{
    (void)arg;
    for (long i = 0; i < ITEMS; i++) {
        mutex_lock(&buf_lock);
        while (count == 0)
            cond_wait(&not_empty, &buf_lock);
        consumed_sum += buf[head];
        head = (head + 1) % SLOTS;
        count--;
        consumed_n++;
        cond_signal(&not_full);
        mutex_unlock(&buf_lock);
    }
    return NULL;
}

static void *pc(void *arg)
{
    return (long)arg < 2 ? produce((void *)((long)arg * 1000000)) : consume(NULL);
}

// ---- join
static void *square(void *arg)
{
    return (void *)((long)arg * (long)arg);
}

// ---- sleep
static struct mutex order_lock = MUTEX_INIT;
static long order[3];
static volatile long woken;
static volatile int spinning;

static void *nap(void *arg)
{
    long ms = (long)arg;
    if (ms == 0) {                      // the spinner: runs the whole time
        while (woken < 3)
            spinning++;
        return NULL;
    }
    thread_sleep(ms);
    mutex_lock(&order_lock);
    order[woken++] = ms;
    mutex_unlock(&order_lock);
    return NULL;
}

static void *idle(void *arg)
{
    (void)arg;
    return NULL;
}

int main(void)
{
    run_all(increment, 4, NULL, NULL);
    check(counter == 4L * INCREMENTS, "mutex", counter, 4L * INCREMENTS);

    void *who[4] = { (void *)0L, (void *)1L, (void *)2L, (void *)3L };
    run_all(pc, 4, who, NULL);
    long want = 2L * ITEMS * (ITEMS + 1) / 2 + 1000000L * ITEMS;
    check(consumed_n == 2L * ITEMS && consumed_sum == want, "cond", consumed_sum, want);

    void *args[5] = { (void *)3L, (void *)5L, (void *)7L, (void *)11L, (void *)13L }, *rets[5];
    run_all(square, 5, args, rets);
    long ok = 1;
    for (int i = 0; i < 5; i++)
        ok &= (long)rets[i] == (long)args[i] * (long)args[i];
    check(ok, "join", (long)rets[4], 169);

    void *naps[4] = { (void *)30L, (void *)0L, (void *)10L, (void *)20L };
    run_all(nap, 4, naps, NULL);
    check(order[0] == 10 && order[1] == 20 && order[2] == 30 && spinning > 0, "sleep",
          order[0] * 10000 + order[1] * 100 + order[2], 102030);

    struct thread_stats s;
    thread_get_stats(&s);
    struct thread *t[64];
    int made = 0;
    while (made < 64 && thread_create(&t[made], idle, NULL) == 0)
        made++;
    check(made == (int)s.limit - 1, "limit", made, (long)s.limit - 1);
    for (int i = 0; i < made; i++)
        thread_join(t[i], NULL);
    thread_get_stats(&s);
    printf("threads_sync: runtime upcalls=%lu critical=%lu resumes=%lu enables=%lu switches=%lu\n",
           (unsigned long)s.upcalls, (unsigned long)s.critical, (unsigned long)s.resumes,
           (unsigned long)s.enables, (unsigned long)s.switches);
    return failures;
}
