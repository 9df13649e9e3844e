// Threads: creation, the run queue, voluntary switches, exit and join.
// The preemptive half (the upcall handler) is thread_upcall.c.
#include <stdio.h>
#include <string.h>
#include "thread_impl.h"

struct thread *thread_current;
volatile uint8_t thread_in_sched;
struct queue thread_runq;
struct thread *thread_sleepers;         // unordered; there are few
struct thread_stats thread_counters;

static struct thread slots[THREAD_MAX];
static int next_id = 1;
static unsigned alive;                  // started and not yet exited

void queue_push(struct queue *q, struct thread *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

struct thread *queue_pop(struct queue *q)
{
    struct thread *t = q->head;
    if (t) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
    }
    return t;
}

void thread_make_runnable(struct thread *t)
{
    t->state = T_RUNNABLE;
    queue_push(&thread_runq, t);
}

// Move every sleeper whose deadline has passed to the run queue.
void thread_wake_sleepers(void)
{
    uint64_t now = (uint64_t)sys_clock_ns();
    struct thread **pp = &thread_sleepers;
    while (*pp) {
        struct thread *t = *pp;
        if (t->deadline <= now) {
            *pp = t->next;
            thread_make_runnable(t);
        } else {
            pp = &t->next;
        }
    }
}

// The next thread to run. With nothing runnable but sleepers or threads
// whose calls wait in the kernel, the vproc waits in act_wait until one may
// go on (still in the critical section, so a stray upcall just resumes or
// leaves a note); with nothing at all, every thread waits for another: a
// deadlock, reported rather than hung.
static struct thread *pick_next(void)
{
    for (;;) {
        // Read before looking: an upcall that changes what may run after
        // this read makes the idle act_wait return at once.
        uint64_t seen = thread_seen_seq;
        thread_harvest();
        struct thread *t = queue_pop(&thread_runq);
        if (t)
            return t;
        if (!thread_sleepers && !thread_kblocked) {
            printf("thread: deadlock: all %u threads are blocked\n", alive);
            sys_exit(1);
        }
        thread_idle_wait(seen);
    }
}

void thread_switch_away(void)
{
    struct thread *self = thread_current, *next = pick_next();
    thread_counters.switches++;
    if (next != self) {
        thread_current = next;
        next->state = T_RUNNING;
        if (next->rec) {
            struct act_record *rec = next->rec;
            next->rec = NULL;
            thread_counters.resumes++;
            uctx_switch_to_record(&self->rsp, rec);
        } else {
            uctx_switch(&self->rsp, next->rsp);
        }
    }
    self->state = T_RUNNING;
    critical_leave();
}

void thread_yield(void)
{
    critical_enter();
    thread_make_runnable(thread_current);
    thread_switch_away();
}

// Where a new thread starts: the first uctx "return" lands here, inside
// the critical section its creator's switch was in.
static void thread_start(void)
{
    critical_leave();
    struct thread *self = thread_current;
    thread_exit(self->fn(self->arg));
}

// Where the vproc waits when an upcall handler finds no thread to run (all
// blocked in the kernel, or asleep): not a thread, never queued; entered
// afresh each time at the top of its own stack, in the critical section.
static struct thread idle;
static uint8_t idle_stack[8192] __attribute__((aligned(16)));

static void idle_main(void)
{
    thread_switch_away();               // pick_next waits; idle is never resumed
    for (;;)
        ;
}

void thread_enter_idle(void)
{
    uint64_t *sp = (uint64_t *)(idle_stack + sizeof(idle_stack));
    *--sp = 0;
    *--sp = (uint64_t)idle_main;        // the parked-thread shape (thread_switch.S)
    for (int i = 0; i < 6; i++)
        *--sp = 0;
    idle.state = T_RUNNING;
    thread_current = &idle;
    thread_counters.enables++;
    thread_in_sched = 1;
    uctx_enter_enabled((uint64_t)sp);
}

static uint64_t stack_base(struct thread *t)
{
    return THREAD_STACK_AREA + (uint64_t)(t - slots) * (THREAD_STACK_SIZE + THREAD_GUARD);
}

// A parked-thread frame (thread_switch.S): six zero registers, then the
// return address; the alignment is what a call leaves (rsp % 16 == 8 at
// thread_start's first instruction).
static uint64_t initial_rsp(struct thread *t)
{
    uint64_t *sp = (uint64_t *)(stack_base(t) + THREAD_STACK_SIZE);
    *--sp = 0;                          // thread_start's fake return address
    *--sp = (uint64_t)thread_start;
    for (int i = 0; i < 6; i++)
        *--sp = 0;                      // rbp = 0 ends backtraces
    return (uint64_t)sp;
}

static struct thread *alloc_slot(void)
{
    if (thread_counters.live >= thread_counters.limit)
        return NULL;
    for (int i = 1; i < THREAD_MAX; i++)
        if (slots[i].state == T_FREE)
            return &slots[i];
    return NULL;
}

int thread_create(struct thread **out, void *(*fn)(void *), void *arg)
{
    thread_runtime_init();
    critical_enter();
    struct thread *t = alloc_slot();
    if (!t) {
        critical_leave();
        return -ENOMEM;
    }
    t->state = T_BLOCKED;               // the slot is taken
    critical_leave();
    // Stack memory first, outside the critical section (it is a syscall).
    long err = sys_map(stack_base(t), THREAD_STACK_SIZE, PROT_READ | PROT_WRITE);
    if (err < 0) {
        t->state = T_FREE;
        return (int)err;
    }
    critical_enter();
    memset(t, 0, sizeof(*t));
    t->id = next_id++;
    t->fn = fn;
    t->arg = arg;
    t->rsp = initial_rsp(t);
    thread_counters.live++;
    alive++;
    thread_make_runnable(t);
    critical_leave();
    *out = t;
    return 0;
}

void thread_exit(void *ret)
{
    critical_enter();
    struct thread *self = thread_current;
    self->ret = ret;
    self->state = T_DEAD;
    if (self->joiner)
        thread_make_runnable(self->joiner);
    // The last thread ends the program, as returning from main does.
    if (--alive == 0)
        sys_exit(0);
    thread_switch_away();               // never comes back: nobody queues a dead thread
    for (;;)
        ;
}

static void reap(struct thread *t)
{
    if (t != &slots[0])                 // main runs on the process stack
        sys_unmap(stack_base(t), THREAD_STACK_SIZE);
    critical_enter();
    t->state = T_FREE;
    thread_counters.live--;
    critical_leave();
}

int thread_join(struct thread *t, void **ret)
{
    critical_enter();
    struct thread *self = thread_current;
    if (!t || t == self || t->state == T_FREE || t->joined) {
        critical_leave();
        return -EINVAL;
    }
    t->joined = 1;
    if (t->state != T_DEAD) {
        t->joiner = self;
        self->state = T_BLOCKED;
        thread_switch_away();           // thread_exit wakes us
    } else {
        critical_leave();
    }
    if (ret)
        *ret = t->ret;
    reap(t);
    return 0;
}

void thread_sleep_until(uint64_t deadline_ns)
{
    critical_enter();
    struct thread *self = thread_current;
    self->deadline = deadline_ns;
    self->state = T_SLEEPING;
    self->next = thread_sleepers;
    thread_sleepers = self;
    thread_switch_away();
}

void thread_sleep(unsigned long ms)
{
    // Deadline computed once, as in sleep(): an interrupted sleep still ends on time.
    thread_sleep_until((uint64_t)sys_clock_ns() + ms * 1000000UL);
}

struct thread *thread_self(void)
{
    return thread_current;
}

int thread_id(const struct thread *t)
{
    return t->id;
}

unsigned long thread_preemptions(const struct thread *t)
{
    return t->preemptions;
}

void thread_get_stats(struct thread_stats *s)
{
    critical_enter();
    *s = thread_counters;
    critical_leave();
}

// Called by thread_runtime_init (thread_upcall.c): slot 0 is whoever runs now.
struct thread *thread_adopt_main(void)
{
    struct thread *m = &slots[0];
    m->state = T_RUNNING;
    m->id = 0;
    thread_counters.live = 1;
    alive = 1;
    thread_current = m;
    return m;
}
