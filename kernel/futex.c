// Futexes: the kernel's whole part of user-space locks and channels.
//
// A waiter is nothing but a blocked vproc whose (wait_kind, wait_key) is
// (WAIT_FUTEX, key) and whose wait_deadline is the caller's absolute
// deadline (docs/restart.md), or, for a program with the blocked upcall,
// a blocked activation record with the same three (activation.c): no
// queue entry is allocated, so waiting costs the kernel no memory beyond
// the record's slot, and a restart that forgets every wait forgets these
// too. Waiters per environment are bounded by its vprocs (ENV_MAX_VPROCS,
// one today) plus its activation records (act_pool=, 64 by default).
//
// The key is the *physical* address of the word, so the same word seen
// through two environments' mappings of one shared region (shm.c) is one
// key. It is derived state: every rerun computes it afresh from the
// caller's page table. While a vproc waits, the frame under its key cannot
// be freed (its own environment cannot run to unmap it); a blocked record's
// environment can, and then a later wake on a reused frame is a spurious
// wakeup for it, which is legal. After a restart the rerun looks it up again.
//
// futex_wait follows the rewind rule: it compares, and if it must wait it
// blocks and returns -ERESTART, so a wake, a timeout or a restart simply
// reruns the comparison. A wake whose waker did not change the word is a
// spurious wakeup for the waiter: it compares again and waits again. The
// library loops on its own condition, as with any futex.
#include "abi.h"
#include "env.h"
#include "futex.h"
#include "memlayout.h"
#include "sched.h"
#include "syscall.h"
#include "timer.h"
#include "vm.h"

#define WORD_SIZE 4

_Static_assert(ENV_MAX_VPROCS == 1, "futex waiters per environment: revisit the bound above");

long futex_key(uint64_t *pml4, uint64_t uva, uint64_t *key)
{
    if (uva & (WORD_SIZE - 1))
        return -EINVAL;
    if (!is_user_range(uva, WORD_SIZE))
        return -EFAULT;
    // The activation area is the kernel's (records, restore page): no
    // program synchronizes there, so a futex on it is a mistake or a probe.
    if (uva >= ACT_RESTORE && uva < ACT_SEGMENT + ACT_SEGMENT_SIZE)
        return -EINVAL;
    uint64_t pte = vm_lookup(pml4, uva);
    if (!(pte & PTE_U))
        return -EFAULT;
    *key = (pte & PTE_ADDR) | (uva & (PAGE_SIZE - 1));
    return 0;
}

long sys_futex_wait(uint64_t uva, uint64_t expected, uint64_t deadline)
{
    if (expected > UINT32_MAX)
        return -EINVAL;     // the word has 32 bits: a wider value never matches, say so
    uint64_t key;
    long r = futex_key(env_current()->pml4, uva, &key);
    if (r < 0)
        return r;
    uint32_t word;
    if (copyin(&word, uva, sizeof(word)) < 0)
        return -EFAULT;
    if (word != (uint32_t)expected)
        return -EAGAIN;
    if (deadline != FUTEX_NO_DEADLINE && timer_ns() >= deadline)
        return -ETIMEDOUT;
    struct vproc *v = sched_current();
    sched_block(v, WAIT_FUTEX, key);
    v->wait_deadline = deadline;
    return -ERESTART;
}

long sys_futex_wake(uint64_t uva, uint64_t n)
{
    uint64_t key;
    long r = futex_key(env_current()->pml4, uva, &key);
    if (r < 0)
        return r;
    return sched_wake_n(WAIT_FUTEX, key, n);
}
