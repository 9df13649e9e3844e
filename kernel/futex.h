// Futexes: wait on a 32-bit word in user memory until another thread (of
// this or any environment that maps the same frame) wakes it.
#ifndef FUTEX_H
#define FUTEX_H
#include <stdint.h>

// futex_wait(&word, expected, deadline_ns or 0): blocking, restartable.
// -EAGAIN once the word is not `expected`, -ETIMEDOUT once the deadline has
// passed; -EINVAL (unaligned, expected above 32 bits, activation area),
// -EFAULT (not mapped, kernel half).
long sys_futex_wait(uint64_t uva, uint64_t expected, uint64_t deadline);
// futex_wake(&word, n): the number of waiters made to rerun their wait.
long sys_futex_wake(uint64_t uva, uint64_t n);
// The key of the word at uva in pml4 (its physical address), or -errno.
long futex_key(uint64_t *pml4, uint64_t uva, uint64_t *key);
#endif
