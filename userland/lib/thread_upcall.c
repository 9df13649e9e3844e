// The preemptive half of the runtime: registration in the activation
// segment and the upcall handler the kernel enters on every timer interrupt.
//
// The handler runs on its own stack with the vproc *disabled* (further
// ticks are absorbed by the kernel), so it needs no lock: it files the
// interrupted thread's record, picks the next thread round robin, and
// leaves through act_resume (a preempted thread) or act_enable (a parked
// one). Either way the upcall stack is abandoned; the next upcall starts
// at its top again.
#include "thread_impl.h"

#define UPCALL_STACK_SIZE 16384

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

void thread_upcall(struct act_record *rec, uint64_t reason, uint64_t vproc)
{
    (void)reason;                       // only ACT_PREEMPTED is registered
    (void)vproc;                        // one vproc for now
    thread_counters.upcalls++;
    if (in_runtime(rec)) {
        thread_counters.critical++;
        act_resume(rec);
    }
    struct thread *self = thread_current;
    self->rec = rec;
    self->preemptions++;
    thread_make_runnable(self);
    if (thread_sleepers)
        thread_wake_sleepers();
    struct thread *next = queue_pop(&thread_runq);     // never empty: self is on it
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
    initialized = 1;
    return 0;
}
