// The runtime's private state, shared by thread.c, thread_sync.c,
// thread_upcall.c and thread_switch.S.
#ifndef THREAD_IMPL_H
#define THREAD_IMPL_H
#include <revenant.h>
#include <stddef.h>
#include <stdint.h>
#include <thread.h>

#define THREAD_MAX          64              // slots; the record pool usually limits first
#define THREAD_STACK_SIZE   0x10000UL       // 64 KiB per thread
#define THREAD_GUARD        0x1000UL        // unmapped page below each stack
#define THREAD_STACK_AREA   0x0000600000000000UL

enum thread_state { T_FREE, T_RUNNABLE, T_RUNNING, T_BLOCKED, T_SLEEPING, T_FUTEX, T_DEAD };

// A thread that is not running is saved in exactly one of two forms:
//   rec != NULL   it was preempted: its state is the activation record the
//                 kernel filled, and act_resume(rec) continues it;
//   rec == NULL   it parked itself inside the runtime (yield, block, first
//                 run): its callee-saved registers are pushed on its own
//                 stack and `rsp` points at them (thread_switch.S).
struct thread {
    uint64_t rsp;
    struct act_record *rec;
    struct thread *next;                // run queue or wait list
    enum thread_state state;
    int id;
    void *(*fn)(void *);
    void *arg;
    void *ret;
    struct thread *joiner;
    int joined;
    uint64_t deadline;                  // T_SLEEPING, T_FUTEX: clock_ns() to wake at (T_FUTEX: 0 none)
    const volatile uint32_t *futex_word;    // T_FUTEX: waiting while *futex_word == futex_expected
    uint32_t futex_expected;
    int futex_result;                   // what its futex_wait returns: 0 or -ETIMEDOUT
    unsigned long preemptions;
};

struct queue {
    struct thread *head, *tail;
};

extern struct thread *thread_current;
// Set while the runtime changes its own state in thread context. An upcall
// that finds it set resumes the interrupted record at once (see
// thread_upcall.c), which is what makes those changes atomic on one vproc.
extern volatile uint8_t thread_in_sched;
extern struct queue thread_runq;
extern struct thread *thread_sleepers;
extern struct thread *thread_futexed;   // T_FUTEX threads, unordered
// A restarted upcall found the runtime busy: treat every wait as woken at
// the next scheduling point (thread_futex.c).
extern volatile uint8_t thread_restart_pending;
extern struct thread_stats thread_counters;

static inline void critical_enter(void)
{
    thread_in_sched = 1;
    asm volatile("" ::: "memory");      // nothing moves above the flag
}

static inline void critical_leave(void)
{
    asm volatile("" ::: "memory");      // nothing moves below the flag
    thread_in_sched = 0;
}

void queue_push(struct queue *q, struct thread *t);
struct thread *queue_pop(struct queue *q);
void thread_make_runnable(struct thread *t);
void thread_wake_sleepers(void);
// Futex waiters whose word changed or whose deadline passed become
// runnable; a pending restart wakes them all (thread_futex.c).
void thread_poll_futexes(void);
// No thread is runnable, some wait on futexes or sleep: block the vproc in
// the kernel until one of them may go on (thread_futex.c).
void thread_idle_wait(void);
// Leave the current thread (already queued, blocked or dead) for the next
// runnable one; returns when the current thread runs again. In a critical
// section on entry; out of it on return.
void thread_switch_away(void);

// thread_switch.S
void uctx_switch(uint64_t *save_rsp, uint64_t load_rsp);
void uctx_switch_to_record(uint64_t *save_rsp, struct act_record *rec);
void uctx_enter_enabled(uint64_t load_rsp) __attribute__((noreturn));
void thread_upcall_entry(void);
void thread_restarted_entry(void);
extern const char resume_tail_start[], resume_tail_end[];
#endif
