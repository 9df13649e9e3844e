// Mutexes and condition variables. Both are a wait list changed inside the
// runtime's critical section (one vproc: nothing else runs meanwhile), and
// a blocked thread is simply not on the run queue.
#include "thread_impl.h"

static void wait_push(struct thread **head, struct thread **tail, struct thread *t)
{
    struct queue q = { *head, *tail };
    queue_push(&q, t);
    *head = q.head;
    *tail = q.tail;
}

static struct thread *wait_pop(struct thread **head, struct thread **tail)
{
    struct queue q = { *head, *tail };
    struct thread *t = queue_pop(&q);
    *head = q.head;
    *tail = q.tail;
    return t;
}

void mutex_init(struct mutex *m)
{
    m->owner = m->waiters = m->waiters_tail = NULL;
}

// Park the current thread on the mutex; mutex_unlock hands it ownership.
static void mutex_block(struct mutex *m)
{
    struct thread *self = thread_current;
    self->state = T_BLOCKED;
    wait_push(&m->waiters, &m->waiters_tail, self);
    thread_switch_away();
}

void mutex_lock(struct mutex *m)
{
    critical_enter();
    if (!m->owner) {
        m->owner = thread_current;
        critical_leave();
        return;
    }
    mutex_block(m);                     // owner is us when this returns
}

int mutex_trylock(struct mutex *m)
{
    critical_enter();
    int got = !m->owner;
    if (got)
        m->owner = thread_current;
    critical_leave();
    return got;
}

// In the critical section: pass the mutex to the first waiter (FIFO, no
// barging: a thread that unlocks and relocks at once queues behind it).
static void mutex_release(struct mutex *m)
{
    struct thread *next = wait_pop(&m->waiters, &m->waiters_tail);
    m->owner = next;
    if (next)
        thread_make_runnable(next);
}

void mutex_unlock(struct mutex *m)
{
    critical_enter();
    mutex_release(m);
    critical_leave();
}

void cond_init(struct cond *c)
{
    c->waiters = c->waiters_tail = NULL;
}

void cond_wait(struct cond *c, struct mutex *m)
{
    critical_enter();
    struct thread *self = thread_current;
    self->state = T_BLOCKED;
    wait_push(&c->waiters, &c->waiters_tail, self);
    mutex_release(m);                   // atomically with going to sleep
    thread_switch_away();
    mutex_lock(m);
}

void cond_signal(struct cond *c)
{
    critical_enter();
    struct thread *t = wait_pop(&c->waiters, &c->waiters_tail);
    if (t)
        thread_make_runnable(t);
    critical_leave();
}

void cond_broadcast(struct cond *c)
{
    critical_enter();
    struct thread *t;
    while ((t = wait_pop(&c->waiters, &c->waiters_tail)))
        thread_make_runnable(t);
    critical_leave();
}
