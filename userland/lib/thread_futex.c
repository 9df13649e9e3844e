// Futex waits for user-level threads, the futex mutex, and what a restart
// means to the runtime.
//
// One vproc runs all of a program's threads, so a thread that waited in
// the kernel's futex_wait would stop every other one, including the thread
// that would wake it. So a waiting thread parks in the runtime (T_FUTEX, on
// thread_futexed) and the kernel is asked only when no thread can run
// (thread_idle_wait): then the vproc waits in futex_wait on a waiter's
// word, with the earliest deadline of all waiters and sleepers. A wake
// from this program is a list walk; from another environment (the word in
// a shared region) it reaches the kernel's futex_wake, which reruns our
// kernel wait if we are in one; if we are busy running other threads we
// see the changed word at the next tick (thread_poll_futexes runs in every
// preemption upcall) or scheduling point.
//
// A restart (docs/restart.md) forgets every kernel wait and hands the
// runtime a restarted upcall: every futex waiter is woken (a spurious
// wakeup: its caller loops and waits again if it must), and the thread
// whose kernel call was rewound is resumed, so that call reruns.
#include <stdio.h>
#include "thread_impl.h"

#define WORD_ALIGN   4
// With waiters on several words the kernel can watch only one: wait on it
// for at most this long, then look at the others.
#define POLL_NS      1000000UL

struct thread *thread_futexed;
volatile uint8_t thread_restart_pending;

static void futex_wake_one(struct thread **pp, int result)
{
    struct thread *t = *pp;
    *pp = t->next;
    t->futex_result = result;
    thread_make_runnable(t);
}

void thread_poll_futexes(void)
{
    // One instruction takes the flag: a restarted upcall that sets it again
    // meanwhile is seen next time, never lost.
    int all = __atomic_exchange_n(&thread_restart_pending, 0, __ATOMIC_SEQ_CST);
    uint64_t now = 0;
    struct thread **pp = &thread_futexed;
    while (*pp) {
        struct thread *t = *pp;
        if (all || *t->futex_word != t->futex_expected) {
            futex_wake_one(pp, 0);
            continue;
        }
        if (t->deadline && !now)
            now = (uint64_t)sys_clock_ns();
        if (t->deadline && t->deadline <= now)
            futex_wake_one(pp, -ETIMEDOUT);
        else
            pp = &t->next;
    }
}

// The earliest deadline of every sleeper and timed futex waiter, or 0.
static uint64_t earliest_deadline(void)
{
    uint64_t best = UINT64_MAX;
    for (struct thread *t = thread_sleepers; t; t = t->next)
        if (t->deadline < best)
            best = t->deadline;
    for (struct thread *t = thread_futexed; t; t = t->next)
        if (t->deadline && t->deadline < best)
            best = t->deadline;
    return best == UINT64_MAX ? 0 : best;
}

// Waiters the kernel cannot watch with one futex_wait: on several words, or
// on one word with different expected values (ipc.c's senders and answer
// waiters on one slot). The poll before the idle wait wakes every waiter
// whose word moved, but the word may move between two of its reads; the
// kernel then sleeps on the first waiter's value while another's wake has
// already come and gone.
static int several_words(void)
{
    for (struct thread *t = thread_futexed; t; t = t->next)
        if (t->futex_word != thread_futexed->futex_word ||
            t->futex_expected != thread_futexed->futex_expected)
            return 1;
    return 0;
}

// A kernel call answered with something its contract rules out (docs/abi.md):
// going on would build on a lie, so the program ends, saying so.
static void __attribute__((noreturn)) contract_broken(const char *call, long r)
{
    printf("thread: FAIL kernel %s returned %ld, which it never may\n", call, r);
    sys_exit(1);
}

void thread_idle_wait(void)
{
    uint64_t deadline = earliest_deadline();
    struct thread *w = thread_futexed;
    if (!w) {
        long r = sys_sleep_until(deadline);
        if (r != 0)
            contract_broken("sleep_until", r);
        return;
    }
    if (several_words()) {
        uint64_t soon = (uint64_t)sys_clock_ns() + POLL_NS;
        if (!deadline || soon < deadline)
            deadline = soon;
    }
    thread_counters.futex_sleeps++;
    long r = sys_futex_wait(w->futex_word, w->futex_expected,
                            deadline ? deadline : FUTEX_NO_DEADLINE);
    // The kernel refuses this word (activation area, unmapped): waiting on
    // it can never end well; its waiter gets the error.
    if (r == -EINVAL || r == -EFAULT)
        futex_wake_one(&thread_futexed, (int)r);
    else if (r != -EAGAIN && r != -ETIMEDOUT && r != 0)
        contract_broken("futex_wait", r);
}

int futex_wait(const volatile uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
    if ((uintptr_t)word & (WORD_ALIGN - 1))
        return -EINVAL;
    critical_enter();
    if (*word != expected) {
        critical_leave();
        return -EAGAIN;
    }
    if (deadline_ns != FUTEX_NO_DEADLINE && (uint64_t)sys_clock_ns() >= deadline_ns) {
        critical_leave();
        return -ETIMEDOUT;
    }
    struct thread *self = thread_current;
    thread_counters.futex_waits++;
    self->state = T_FUTEX;
    self->futex_word = word;
    self->futex_expected = expected;
    self->deadline = deadline_ns;
    self->next = thread_futexed;
    thread_futexed = self;
    thread_switch_away();
    return self->futex_result;
}

long futex_wake(const volatile uint32_t *word, unsigned long n)
{
    long woken = 0;
    critical_enter();
    struct thread **pp = &thread_futexed;
    while (*pp && (unsigned long)woken < n) {
        if ((*pp)->futex_word == word) {
            futex_wake_one(pp, 0);
            woken++;
        } else {
            pp = &(*pp)->next;
        }
    }
    critical_leave();
    if ((unsigned long)woken < n) {
        long r = sys_futex_wake(word, n - (unsigned long)woken);
        if (r < 0 && !woken)
            return r;
        woken += r > 0 ? r : 0;
    }
    return woken;
}

// ------------------------------------------------------------ fmutex

void fmutex_lock(struct fmutex *m)
{
    uint32_t c = 0;
    if (__atomic_compare_exchange_n(&m->word, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    if (c != 2)
        c = __atomic_exchange_n(&m->word, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
        futex_wait(&m->word, 2, FUTEX_NO_DEADLINE);     // any return: look again
        c = __atomic_exchange_n(&m->word, 2, __ATOMIC_ACQUIRE);
    }
}

int fmutex_trylock(struct fmutex *m)
{
    uint32_t c = 0;
    return __atomic_compare_exchange_n(&m->word, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

void fmutex_unlock(struct fmutex *m)
{
    if (__atomic_fetch_sub(&m->word, 1, __ATOMIC_RELEASE) != 1) {
        __atomic_store_n(&m->word, 0, __ATOMIC_RELEASE);
        futex_wake(&m->word, 1);
    }
}
