// User-level threads on top of activations (docs/activations.md, "The
// user-level runtime").
//
// Every program is one user thread from its first instruction: crt0 calls
// thread_runtime_init(), which registers the runtime's upcall entry and
// upcall stack in the activation segment header. From then on every timer
// interrupt is delivered to the runtime's own scheduler, which stores the
// interrupted thread's activation record and resumes the next thread round
// robin. Threads are therefore preemptive, yet everything here (creation,
// switching, mutexes, condition variables, sleeping) runs in user space:
// the kernel sees act_resume / act_enable, map / unmap for thread stacks,
// clock_ns while someone sleeps, and sleep_until when everyone does.
//
// One virtual processor: the runtime's own data is protected by a user flag
// (an interrupt that lands inside the runtime is resumed at once), not by
// atomic instructions. A blocking system call (wait, sleep_until,
// futex_wait, made directly or through futex_wait() below) stops only its
// own thread: the kernel hands the runtime the thread's record in a
// *blocked* upcall and gives it back, woken, in an *unblocked* one;
// resuming it reruns the call (scheduler activations). With nothing to
// run, the vproc waits in act_wait. After an in-place restart
// (docs/restart.md) the restarted upcall hands every record back at once:
// every waiting thread runs its call again.
#ifndef THREAD_H
#define THREAD_H
#include <stdint.h>

struct thread;                              // opaque

// Start fn(arg) in a new thread with its own 64 KiB stack. 0, or -ENOMEM
// (no stack memory, or the thread limit: live threads must stay below the
// activation record pool, so that preempting every one of them never runs
// the pool dry).
int thread_create(struct thread **out, void *(*fn)(void *), void *arg);
void thread_yield(void);                    // to the back of the run queue
void thread_exit(void *ret) __attribute__((noreturn));
// Wait for `t` to end, free it, store its result. 0, or -EINVAL (t is the
// caller, already joined, or another thread joins it).
int thread_join(struct thread *t, void **ret);
void thread_sleep(unsigned long ms);        // only this thread sleeps
void thread_sleep_until(uint64_t deadline_ns);
struct thread *thread_self(void);
int thread_id(const struct thread *t);     // 0 for main, then 1, 2, ... (slots are reused)
unsigned long thread_preemptions(const struct thread *t);   // times it was preempted

// A mutex handed over in FIFO order to the threads waiting for it.
struct mutex {
    struct thread *owner;
    struct thread *waiters, *waiters_tail;
};
#define MUTEX_INIT { 0, 0, 0 }
void mutex_init(struct mutex *m);
void mutex_lock(struct mutex *m);
int mutex_trylock(struct mutex *m);         // 1 if taken
void mutex_unlock(struct mutex *m);

// A condition variable; wakeups are FIFO, spurious wakeups do not happen,
// but callers should loop on their predicate anyway (portable habit).
struct cond {
    struct thread *waiters, *waiters_tail;
};
#define COND_INIT { 0, 0 }
void cond_init(struct cond *c);
void cond_wait(struct cond *c, struct mutex *m);
void cond_signal(struct cond *c);
void cond_broadcast(struct cond *c);

// Futexes for threads. futex_wait parks only the calling thread while
// *word == expected (the kernel's futex_wait, made a blocked upcall: the
// program's other threads run on). It returns 0 once woken (loop on your
// own condition: a wake need not mean it holds), -EAGAIN if *word !=
// expected at the call, -ETIMEDOUT at the absolute deadline
// (FUTEX_NO_DEADLINE: none), -EINVAL for an unaligned word, or the
// kernel's error for a word it refuses (docs/abi.md). The word may be in a
// shared region: waiters in this and other environments are woken alike.
int futex_wait(const volatile uint32_t *word, uint32_t expected, uint64_t deadline_ns);
// Wake up to n waiters on word: this program's first, then (through the
// kernel) other environments'. How many were woken.
long futex_wake(const volatile uint32_t *word, unsigned long n);

// A mutex that is one 32-bit word (0 free, 1 locked, 2 locked and maybe
// waited for; Drepper's "Futexes are tricky", mutex 2): it works between
// threads of one program and between programs sharing the word.
struct fmutex {
    volatile uint32_t word;
};
#define FMUTEX_INIT { 0 }
void fmutex_lock(struct fmutex *m);
int fmutex_trylock(struct fmutex *m);       // 1 if taken
void fmutex_unlock(struct fmutex *m);

// What the runtime has done so far (for tests and benchmarks).
struct thread_stats {
    uint64_t upcalls;           // preemption upcalls received
    uint64_t critical;          // of those, landed inside the runtime: resumed at once
    uint64_t resumes;           // act_resume of a preempted thread's record
    uint64_t enables;           // act_enable after switching to a voluntarily parked thread
    uint64_t switches;          // voluntary user-level switches (yield, block, exit)
    uint32_t live;              // threads not yet joined (main included)
    uint32_t limit;             // the most threads thread_create allows
    uint64_t restarts;          // restarted upcalls received (docs/restart.md)
    uint64_t futex_waits;       // futex_wait calls that parked their thread
    uint64_t futex_sleeps;      // idle waits while a thread waited in futex_wait
    uint64_t blocked;           // blocked upcalls: a thread's call waits in the kernel
    uint64_t unblocked;         // its record handed back (unblocked upcall or act_wait)
    uint64_t idle_waits;        // act_wait calls: no thread could run
};
void thread_get_stats(struct thread_stats *s);

// Called by crt0 before main (idempotent). Returns 0, or -ENOSYS when the
// kernel offers no activation segment (threads then only switch when they
// yield or block).
int thread_runtime_init(void);

// The activation system calls (lib/thread_switch.S). act_resume does not
// return: the record's thread continues (or, for a hostile record, the
// kernel ends the program).
struct act_record;
struct act_stats;
void act_resume(struct act_record *rec) __attribute__((noreturn));
long act_enable(void);
long act_stats(struct act_stats *out);
// The restartable idle call: a woken record handed back (its address), or
// 0 once an unblocked/restarted upcall later than `seen_seq` came or the
// deadline (0: none) passed; meanwhile the vproc waits (docs/abi.md).
long act_wait(uint64_t deadline_ns, uint64_t seen_seq);
#endif
