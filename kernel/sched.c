// The scheduler: a FIFO run queue of vprocs, a time slice of one tick.
//
// There is one kernel stack per CPU and no kernel continuations. Entering
// the kernel saves the user state into the vproc's frame (the CPU and the
// entry stubs write it there directly, see trapasm.S / syscallasm.S);
// leaving it is always vproc_resume() or the syscall fast path, which load
// a frame and jump to user space. So "switching" is just choosing which
// frame to load; the kernel stack is simply reused from the top on the next
// entry. A vproc that must wait does not sleep in the kernel: its syscall is
// rewound to the `syscall` instruction and runs again from scratch once it
// is woken (see syscall.c).
#include "abi.h"
#include "activation.h"
#include "checkpoint.h"
#include "cpu.h"
#include "env.h"
#include "gdt.h"
#include "kalloc.h"
#include "panic.h"
#include "restart.h"
#include "sched.h"
#include "string.h"
#include "timer.h"
#include "vm.h"
#include "x86.h"


#define FXSAVE_FCW   0
#define FXSAVE_MXCSR 24

static struct vproc *run_head, *run_tail;
static struct vproc *all_vprocs;

struct vproc *vproc_new(struct env *env)
{
    struct vproc *v = kmalloc(sizeof(*v));
    if (!v)
        return NULL;
    v->env = env;
    v->state = VP_BLOCKED;
    v->wait_kind = WAIT_NONE;
    v->wait_deadline = 0;
    v->index = 0;
    v->act_disabled = false;
    v->act_resuming = ACT_NONE;
    v->act_restart_pending = false;
    v->act_wake_pending = false;
    v->act_idle = false;
    for (int i = 0; i < 4; i++)
        v->seg[i] = 0;          // a program starts with null DS, ES, FS, GS
    // The FPU state a program starts with: what fninit leaves, plus the
    // default MXCSR (all SSE exceptions masked, round to nearest).
    *(uint16_t *)&v->fpu[FXSAVE_FCW] = 0x37f;
    *(uint32_t *)&v->fpu[FXSAVE_MXCSR] = 0x1f80;
    v->all_next = all_vprocs;
    all_vprocs = v;
    return v;
}

static void run_remove(struct vproc *v)
{
    struct vproc **pp = &run_head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->run_next) {
        if (*pp == v) {
            *pp = v->run_next;
            if (run_tail == v)
                run_tail = prev;
            return;
        }
    }
}

void vproc_destroy(struct vproc *v)
{
    struct cpu *c = mycpu();
    if (v->state == VP_RUNNABLE)
        run_remove(v);
    for (struct vproc **pp = &all_vprocs; *pp; pp = &(*pp)->all_next) {
        if (*pp == v) {
            *pp = v->all_next;
            break;
        }
    }
    if (c->vproc == v)
        c->vproc = NULL;
    if (c->fpu_owner == v)
        c->fpu_owner = NULL;    // its registers are garbage now, nobody saves them
    if (c->seg_owner == v)
        c->seg_owner = NULL;
    v->state = VP_DEAD;
    kfree(v);
}

void sched_make_runnable(struct vproc *v)
{
    v->state = VP_RUNNABLE;
    v->wait_kind = WAIT_NONE;
    v->wait_deadline = 0;
    v->run_next = NULL;
    if (run_tail)
        run_tail->run_next = v;
    else
        run_head = v;
    run_tail = v;
}

void sched_block(struct vproc *v, enum wait_kind kind, uint64_t key)
{
    v->state = VP_BLOCKED;
    v->wait_kind = kind;
    v->wait_key = key;
    // act_stats().blocked: what lets a program tell a call that really
    // blocked from one that returned at once (docs/abi.md). An idle
    // act_wait is no such call: act_stats().idle_waits counts those.
    if (v->env->act && kind != WAIT_ACT)
        v->env->act->stats.blocked++;
    if (v->env && (unsigned)kind < sizeof(v->env->blocked) / sizeof(v->env->blocked[0]))
        v->env->blocked[kind]++;
}

// Waiters are blocked vprocs and, for programs with the blocked upcall,
// blocked activation records (act_wake): the same (kind, key) either way.
void sched_wake(enum wait_kind kind, uint64_t key)
{
    for (struct vproc *v = all_vprocs; v; v = v->all_next)
        if (v->state == VP_BLOCKED && v->wait_kind == kind && v->wait_key == key)
            sched_make_runnable(v);
    act_wake(kind, key, UINT64_MAX);
}

long sched_wake_n(enum wait_kind kind, uint64_t key, uint64_t n)
{
    long woken = 0;
    for (struct vproc *v = all_vprocs; v && (uint64_t)woken < n; v = v->all_next) {
        if (v->state == VP_BLOCKED && v->wait_kind == kind && v->wait_key == key) {
            sched_make_runnable(v);
            woken++;
        }
    }
    if ((uint64_t)woken < n)
        woken += act_wake(kind, key, n - (uint64_t)woken);
    return woken;
}

// The instant a blocked vproc's call may complete by timing out, or 0.
static uint64_t wait_deadline(const struct vproc *v)
{
    if (v->wait_kind == WAIT_SLEEP)
        return v->wait_key;
    return v->wait_kind == WAIT_FUTEX || v->wait_kind == WAIT_ACT ? v->wait_deadline : 0;
}

bool sched_deadline_passed(uint64_t deadline, uint64_t now)
{
    return deadline <= now;
}

void sched_tick(void)
{
    uint64_t now = 0;
    for (struct vproc *v = all_vprocs; v; v = v->all_next) {
        uint64_t deadline = v->state == VP_BLOCKED ? wait_deadline(v) : 0;
        if (!deadline)
            continue;
        if (!now)
            now = timer_ns();
        if (sched_deadline_passed(deadline, now))
            sched_make_runnable(v);
    }
    act_tick();                     // blocked records with a deadline
}

int sched_drop_waits(int dropped[WAIT_KINDS])
{
    int total = 0;
    for (int k = 0; k < WAIT_KINDS; k++)
        dropped[k] = 0;
    for (struct vproc *v = all_vprocs; v; v = v->all_next) {
        if (v->state != VP_BLOCKED || v->wait_kind == WAIT_NONE)
            continue;       // WAIT_NONE: a fresh vproc not yet queued, not a waiter
        // An idle act_wait is no call of the program's: it reruns (and
        // sees the restarted upcall) but is no waiter the line counts.
        if (v->wait_kind != WAIT_ACT) {
            dropped[v->wait_kind]++;
            total++;
        }
        sched_make_runnable(v);
    }
    return total;
}

bool sched_others_waiting(void)
{
    return run_head != NULL;
}

static struct vproc *run_pop(void)
{
    struct vproc *v = run_head;
    if (v) {
        run_head = v->run_next;
        if (!run_head)
            run_tail = NULL;
    }
    return v;
}

// Give the CPU's FPU/SSE registers to v, saving the previous owner's.
static void fpu_switch(struct cpu *c, struct vproc *v)
{
    if (c->fpu_owner == v)
        return;
    if (c->fpu_owner)
        asm volatile("fxsave64 %0" : "=m"(c->fpu_owner->fpu));
    asm volatile("fxrstor64 %0" : : "m"(v->fpu));
    c->fpu_owner = v;
}

// The data segment registers, like the FPU, stay live in the CPU while the
// kernel runs (it never loads them), so they only need saving and loading
// when the CPU passes to another vproc. Whatever a program loaded (null, or
// a selector of the user data or code segment: nothing else loads at CPL
// 3) loads at CPL 0 too. Loading GS clears the GS base, so it is loaded
// between two swapgs, where the base it clears is the user's (always 0:
// without FSGSBASE a program cannot set a base).
static void seg_save(struct vproc *v)
{
    asm volatile("movw %%ds, %0\n\t"
                 "movw %%es, %1\n\t"
                 "movw %%fs, %2\n\t"
                 "movw %%gs, %3"
                 : "=m"(v->seg[0]), "=m"(v->seg[1]), "=m"(v->seg[2]), "=m"(v->seg[3]));
}

static void seg_load(const struct vproc *v)
{
    asm volatile("movw %0, %%ds\n\t"
                 "movw %1, %%es\n\t"
                 "movw %2, %%fs\n\t"
                 "swapgs\n\t"
                 "movw %3, %%gs\n\t"
                 "swapgs"
                 :
                 : "m"(v->seg[0]), "m"(v->seg[1]), "m"(v->seg[2]), "m"(v->seg[3])
                 : "memory");
}

void sched_sync_user_state(void)
{
    struct cpu *c = mycpu();
    if (c->fpu_owner)
        asm volatile("fxsave64 %0" : "=m"(c->fpu_owner->fpu));
    if (c->seg_owner)
        seg_save(c->seg_owner);
}

static void seg_switch(struct cpu *c, struct vproc *v)
{
    if (c->seg_owner == v)
        return;
    if (c->seg_owner)
        seg_save(c->seg_owner);
    seg_load(v);
    c->seg_owner = v;
}

void vproc_resume(struct vproc *v)
{
    struct cpu *c = mycpu();
    // Woken records of its environment are handed back when it next runs
    // enabled (activation.c), unless it is about to rerun act_wait, whose
    // result is the cheaper way; a hostile header kills it instead.
    if (__builtin_expect(v->act_wake_pending, 0) && !v->act_disabled && !v->act_idle &&
        act_deliver_unblocked(v) < 0)
        schedule();
    c->vproc = v;
    v->state = VP_RUNNING;
    vm_switch(v->env->pml4);
    fpu_switch(c, v);
    seg_switch(c, v);
    // Entries from user mode save the frame into v->tf (trapasm.S copies
    // it there from the entry stack, syscallasm.S builds it there).
    c->frame_top = (uint64_t)(&v->tf + 1);
    struct trapframe *tf = &v->tf;
    if (sysret_safe(tf))
        user_return_sysret(tf);
    if (user_frame_valid(tf))
        user_return_iret(tf);
    // Only a kernel bug or (later) a hostile activation record gets here;
    // either way, never iretq into a frame that would fault in ring 0.
    env_kill(v->env, "invalid user frame");
    schedule();
}

void schedule(void)
{
    for (;;) {
        // A safe point: every vproc's frame is complete, and nothing of a
        // program runs before this loop picks one (restart.c).
        if (checkpoint_due())
            checkpoint_run();
        if (restart_due())
            restart_run();
        struct vproc *v = run_pop();
        if (v)
            vproc_resume(v);
        // Idle: interrupts on only here. The tick wakes sleepers; the loop
        // then finds them on the run queue.
        mycpu()->vproc = NULL;
        sti_hlt();
        cli();
    }
}
