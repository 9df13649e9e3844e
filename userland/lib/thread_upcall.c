// The preemptive half of the runtime: registration in the activation
// segment and the upcall handlers: preempted (every timer interrupt),
// blocked and unblocked (a thread's system call waits in the kernel, and
// its record comes back), restarted.
//
// A handler runs on its own stack with the vproc *disabled* (further
// ticks are absorbed by the kernel), so it needs no lock: it files the
// interrupted thread's record, picks the next thread round robin, and
// leaves through act_resume (a preempted thread) or act_enable (a parked
// one, or the idle context when nothing can run). Either way the upcall
// stack is abandoned; the next upcall starts at its top again.
#include <stdio.h>
#include "thread_impl.h"

#define UPCALL_STACK_SIZE 16384
// Blocked upcalls need a record per blocked thread, one for the idle
// context preempted and one being resumed; with fewer, a blocking call
// keeps stopping the whole vproc.
#define BLOCKING_MIN_POOL 3

static uint8_t upcall_stack[UPCALL_STACK_SIZE] __attribute__((aligned(16)));
static int initialized;

struct thread *thread_adopt_main(void);

static struct act_header *header(void)
{
    return (struct act_header *)ACT_SEGMENT;
}

// The interrupted code was the runtime itself: inside a critical section,
// or in the two instructions after one that hand a record to the kernel
// (thread_switch.S). It is no thread's state: continue it as it was.
static int in_runtime(const struct act_record *rec)
{
    return thread_in_sched ||
           (rec->rip >= (uint64_t)resume_tail_start && rec->rip < (uint64_t)resume_tail_end);
}

// Continue the next thread round robin, making runnable first whoever may
// go on; with none, wait in the idle context.
static void __attribute__((noreturn)) run_next(void)
{
    thread_harvest();
    struct thread *next = queue_pop(&thread_runq);
    if (!next)
        thread_enter_idle();
    thread_current = next;
    next->state = T_RUNNING;
    if (next->rec) {
        struct act_record *r = next->rec;
        next->rec = NULL;
        thread_counters.resumes++;
        act_resume(r);
    }
    // A parked thread continues inside the runtime, which leaves the
    // critical section on its way out (thread_switch_away, thread_start).
    thread_counters.enables++;
    thread_in_sched = 1;
    uctx_enter_enabled(next->rsp);
}

// File `rec` as the current thread's state and continue the next thread.
static void __attribute__((noreturn)) switch_from(struct act_record *rec)
{
    struct thread *self = thread_current;
    self->rec = rec;
    thread_make_runnable(self);
    run_next();
}

void thread_upcall(struct act_record *rec, uint64_t reason, uint64_t vproc)
{
    (void)reason;                       // entry[ACT_PREEMPTED]
    (void)vproc;                        // one vproc for now
    thread_seen_seq = rec->seq;
    thread_counters.upcalls++;
    if (in_runtime(rec)) {
        thread_counters.critical++;
        act_resume(rec);
    }
    thread_current->preemptions++;
    switch_from(rec);
}

// entry[ACT_RESTARTED]: the kernel forgot every wait (docs/restart.md).
// `rec` is the thread that ran, or whose blocking call was rewound (resuming
// it reruns the call); every futex waiter is woken to wait again if it
// must. If the runtime itself was interrupted, it does the waking at its
// next scheduling point.
void thread_restarted(struct act_record *rec, uint64_t reason, uint64_t vproc)
{
    (void)reason;
    (void)vproc;
    thread_seen_seq = rec->seq;
    thread_counters.restarts++;
    thread_restart_seq = rec->seq;
    if (in_runtime(rec))
        act_resume(rec);
    switch_from(rec);
}

// entry[ACT_BLOCKED]: the current thread's system call must wait; `rec`
// holds it rewound onto its `syscall`. Park it with the record (resuming
// it reruns the call) and run another thread: the program goes on.
void thread_blocked(struct act_record *rec, uint64_t reason, uint64_t vproc)
{
    (void)reason;
    (void)vproc;
    thread_seen_seq = rec->seq;
    // The runtime's only waiting call inside itself is act_wait, which
    // the kernel never turns into a blocked upcall.
    if (in_runtime(rec)) {
        printf("thread: FAIL call %lu blocked inside the runtime\n", (unsigned long)rec->rax);
        sys_exit(1);
    }
    thread_park_blocked(rec);
    run_next();
}

// entry[ACT_UNBLOCKED]: `back` (a T_KBLOCKED thread's record) was woken:
// that thread is runnable again and reruns its call when it runs. `rec` is
// whatever the vproc was running, which simply goes on; if that was the
// runtime, the note is taken at its next scheduling point.
void thread_unblocked(struct act_record *rec, uint64_t reason, uint64_t vproc,
                      struct act_record *back)
{
    (void)reason;
    (void)vproc;
    thread_seen_seq = rec->seq;
    thread_note_unblocked(back);
    if (!in_runtime(rec))
        thread_harvest();
    act_resume(rec);
}

// The record budget: at a tick every live thread may hold a record (the
// waiting ones, plus the one just preempted), and one more may still be
// RESUMING, so live threads must stay below pool_size - 1.
static uint32_t thread_limit(uint32_t pool)
{
    uint32_t limit = pool > 2 ? pool - 2 : 1;
    return limit < THREAD_MAX ? limit : THREAD_MAX;
}

int thread_runtime_init(void)
{
    if (initialized)
        return initialized > 0 ? 0 : -ENOSYS;
    thread_adopt_main();
    struct act_header *h = header();
    // Ask before touching the segment: a kernel without activations maps
    // none and answers -ENOSYS. The threads then still work, cooperatively.
    struct act_stats st;
    if (act_stats(&st) < 0 || h->magic != ACT_MAGIC || h->version != ACT_VERSION) {
        thread_counters.limit = THREAD_MAX;
        initialized = -1;
        return -ENOSYS;
    }
    thread_counters.limit = thread_limit(h->pool_size);
    h->upcall_stack = (uint64_t)(upcall_stack + UPCALL_STACK_SIZE);
    asm volatile("" ::: "memory");      // the stack is in place before the entry is
    h->entry[ACT_PREEMPTED] = (uint64_t)thread_upcall_entry;
    h->entry[ACT_RESTARTED] = (uint64_t)thread_restarted_entry;
    if (h->pool_size >= BLOCKING_MIN_POOL) {
        // Unblocked first: the kernel hands out blocked upcalls only to a
        // program that can take its records back.
        h->entry[ACT_UNBLOCKED] = (uint64_t)thread_unblocked_entry;
        h->entry[ACT_BLOCKED] = (uint64_t)thread_blocked_entry;
        thread_blocking = 1;
    }
    initialized = 1;
    return 0;
}
