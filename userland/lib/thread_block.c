// Threads whose system calls wait in the kernel (docs/activations.md,
// "Blocking calls"), and the vproc's idle wait.
//
// A thread whose call must wait does not stop the program: the kernel
// saves it, rewound onto its `syscall` instruction, in an activation
// record that takes the wait, and enters the blocked upcall. The runtime
// parks the thread with that record (T_KBLOCKED) and runs another. When
// the wait is over, the record comes back: an unblocked upcall, or the
// result of act_wait if the vproc was idle. The thread is then runnable
// like a preempted one, and resuming its record runs the call again, which
// completes or blocks anew (a spurious wakeup is legal). After an in-place
// restart every record is back at once (the restarted upcall): every
// T_KBLOCKED thread is made runnable and reruns its call.
//
// Upcalls that land while the runtime changes its own lists leave a note
// (a bit per record in `inbox` and a flag; the restart's seq) instead;
// thread_harvest takes the notes at the next scheduling point, the flag
// with one xchg, so none is lost. A note for a record no thread holds, or left over, can
// at worst resume a blocked record early: the kernel then drops its wait
// and the call reruns. That is always safe (docs/restart.md).
#include <stdio.h>
#include "thread_impl.h"

struct thread *thread_kblocked;
volatile uint64_t thread_restart_seq;
static uint64_t restart_taken;          // the restart seq harvest last acted on
volatile uint8_t thread_unblock_pending;
volatile uint64_t thread_seen_seq;
int thread_blocking;

#define INBOX_WORDS ((ACT_POOL_MAX + 63) / 64)
static volatile uint64_t inbox[INBOX_WORDS];

void thread_contract_broken(const char *call, long r)
{
    printf("thread: FAIL kernel %s returned %ld, which it never may\n", call, r);
    sys_exit(1);
}

static uint64_t record_index(const struct act_record *rec)
{
    return ((uint64_t)rec - ACT_RECORDS) / ACT_RECORD_SIZE;
}

void thread_park_blocked(struct act_record *rec)
{
    struct thread *self = thread_current;
    self->rec = rec;
    self->state = T_KBLOCKED;
    self->kblocks++;
    self->next = thread_kblocked;
    thread_kblocked = self;
    thread_counters.blocked++;
}

void thread_note_unblocked(struct act_record *rec)
{
    uint64_t i = record_index(rec);
    thread_counters.unblocked++;
    if (i < ACT_POOL_MAX)
        __atomic_or_fetch(&inbox[i / 64], 1UL << (i % 64), __ATOMIC_SEQ_CST);
    thread_unblock_pending = 1;
}

// Take rec's note, if there is one.
static int take_note(const struct act_record *rec)
{
    uint64_t i = record_index(rec), bit = 1UL << (i % 64);
    return i < ACT_POOL_MAX && (__atomic_fetch_and(&inbox[i / 64], ~bit, __ATOMIC_SEQ_CST) & bit);
}

// A restart hands back the records blocked before it, not one a thread
// blocked in since (the restarted upcall may wait here, unharvested, while
// another thread runs and blocks): those wait on.
static void harvest_blocked(void)
{
    uint64_t restart = thread_restart_seq;
    int all = restart > restart_taken;
    restart_taken = restart;
    int some = __atomic_exchange_n(&thread_unblock_pending, 0, __ATOMIC_SEQ_CST);
    if (!all && !some)
        return;
    struct thread **pp = &thread_kblocked;
    while (*pp) {
        struct thread *t = *pp;
        if (take_note(t->rec) || (all && t->rec->seq < restart)) {
            *pp = t->next;
            thread_make_runnable(t);
        } else {
            pp = &t->next;
        }
    }
}

void thread_harvest(void)
{
    if (thread_sleepers)
        thread_wake_sleepers();
    harvest_blocked();
}

static uint64_t earliest_sleeper(void)
{
    uint64_t best = 0;
    for (struct thread *t = thread_sleepers; t; t = t->next)
        if (!best || t->deadline < best)
            best = t->deadline;
    return best;
}

// act_wait's record result: in the pool, on a record boundary.
static int a_record(long r)
{
    const struct act_header *h = (const struct act_header *)ACT_SEGMENT;
    uint64_t off = (uint64_t)r - ACT_RECORDS;
    return (uint64_t)r >= ACT_RECORDS && off % ACT_RECORD_SIZE == 0 &&
           off / ACT_RECORD_SIZE < h->pool_size;
}

void thread_idle_wait(uint64_t seen)
{
    uint64_t deadline = earliest_sleeper();
    thread_counters.idle_waits++;
    for (struct thread *t = thread_kblocked; t; t = t->next) {
        if (t->rec->rax == SYS_futex_wait) {
            thread_counters.futex_sleeps++;
            break;
        }
    }
    long r = act_wait(deadline, seen);
    if (r == 0)
        return;                         // an upcall since `seen`, or the deadline
    if (r > 0 && a_record(r)) {
        thread_note_unblocked((struct act_record *)r);
        return;
    }
    if (r == -ENOSYS && deadline) {     // a kernel without act_wait: only sleepers
        r = sys_sleep_until(deadline);
        if (r == 0)
            return;
        thread_contract_broken("sleep_until", r);
    }
    thread_contract_broken("act_wait", r);
}
