// Futex waits for user-level threads, and the futex mutex.
//
// A thread's futex_wait is the kernel's: when the word still holds the
// expected value, the kernel parks the calling thread's record (a blocked
// upcall, thread_block.c) and the program's other threads run on; a wake
// from any environment (futex_wake, the deadline, a restart) hands the
// record back and the call reruns, returning -EAGAIN once the word has
// changed. So waiters in this and other environments are woken alike, at
// the moment of the wake, with no polling.
#include "thread_impl.h"

#define WORD_ALIGN 4

int futex_wait(const volatile uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
    if ((uintptr_t)word & (WORD_ALIGN - 1))
        return -EINVAL;
    struct thread *self = thread_current;
    unsigned long before = self->kblocks;
    long r = sys_futex_wait(word, expected, deadline_ns);
    int waited = self->kblocks != before;   // blocked upcalls came for this call
    if (waited)
        thread_counters.futex_waits++;
    switch (r) {
    case -EAGAIN:
        return waited ? 0 : -EAGAIN;        // woken, or the word had changed already
    case -ETIMEDOUT:
    case -EINVAL:
    case -EFAULT:
        return (int)r;
    }
    thread_contract_broken("futex_wait", r);
}

long futex_wake(const volatile uint32_t *word, unsigned long n)
{
    return sys_futex_wake(word, n);
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
