// The runtime's private state, shared by thread.c, thread_sync.c,
// thread_upcall.c, thread_block.c, thread_futex.c and thread_switch.S.
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

// T_BLOCKED waits in the runtime (mutex, condition, join); T_KBLOCKED in the
// kernel: its system call had to wait and the kernel holds its record
// (a blocked upcall), until the record is handed back (thread_block.c).
enum thread_state { T_FREE, T_RUNNABLE, T_RUNNING, T_BLOCKED, T_SLEEPING, T_KBLOCKED, T_DEAD };

// A thread that is not running is saved in exactly one of two forms:
//   rec != NULL   it was preempted, or its system call blocked (T_KBLOCKED,
//                 or handed back since): its state is the activation record
//                 the kernel filled, and act_resume(rec) continues it (for a
//                 blocked call: runs the call again);
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
    uint64_t deadline;                  // T_SLEEPING: clock_ns() to wake at
    unsigned long preemptions;
    unsigned long kblocks;              // times its system calls blocked (blocked upcalls)
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
extern struct thread *thread_kblocked;  // T_KBLOCKED threads, unordered
// Left by upcalls for the next scheduling point (thread_harvest): the seq
// of the last restarted upcall (every record blocked before it is back;
// only ever raised, so one read takes it), and a record handed back while
// the runtime was busy (its bit in the inbox, this flag taken with xchg).
extern volatile uint64_t thread_restart_seq;
extern volatile uint8_t thread_unblock_pending;
// The seq of the last upcall the runtime took: an idle act_wait returns
// at once if a later one changed what may run.
extern volatile uint64_t thread_seen_seq;
// The kernel hands back blocked records (ACT_BLOCKED / ACT_UNBLOCKED are
// registered): a blocking system call parks only its thread.
extern int thread_blocking;
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
// thread_block.c. In a critical section or an upcall handler:
// park the current thread, whose call blocked in the kernel, with its record;
void thread_park_blocked(struct act_record *rec);
// note a record handed back while the runtime was busy;
void thread_note_unblocked(struct act_record *rec);
// make runnable every thread that may go on: sleepers whose deadline
// passed, records handed back, everything after a restart;
void thread_harvest(void);
// nothing runnable: wait in act_wait (the kernel's restartable idle call)
// until a record comes back, an upcall after `seen`, or the earliest
// sleeper's deadline. Returns when there may be something to run.
void thread_idle_wait(uint64_t seen);
// A kernel call answered with something its contract rules out (docs/abi.md).
void thread_contract_broken(const char *call, long r) __attribute__((noreturn));
// Leave the current thread (already queued, blocked or dead) for the next
// runnable one; returns when the current thread runs again. In a critical
// section on entry; out of it on return.
void thread_switch_away(void);
// From an upcall handler with nothing runnable: wait in the idle context.
void thread_enter_idle(void) __attribute__((noreturn));

// thread_switch.S
void uctx_switch(uint64_t *save_rsp, uint64_t load_rsp);
void uctx_switch_to_record(uint64_t *save_rsp, struct act_record *rec);
void uctx_enter_enabled(uint64_t load_rsp) __attribute__((noreturn));
void thread_upcall_entry(void);
void thread_restarted_entry(void);
void thread_blocked_entry(void);
void thread_unblocked_entry(void);
extern const char resume_tail_start[], resume_tail_end[];
#endif
