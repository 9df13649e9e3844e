// Virtual processors and the round-robin scheduler.
//
// A vproc is a user thread of control as the kernel sees it: a complete
// saved user frame plus its FPU/SSE registers. There are no kernel threads
// and no kernel continuations: the kernel runs on one stack per CPU, and
// every way out of the kernel is "resume some vproc from its frame".
#ifndef SCHED_H
#define SCHED_H
#include <stdbool.h>
#include <stdint.h>
#include "abi.h"
#include "cpu.h"
#include "gdt.h"
#include "trap.h"
#include "vm.h"

// Frame kinds beyond the hardware vectors, kept in tf->vector.
#define VEC_SYSCALL 0x100       // built by syscallasm.S: rcx/r11 are dead, sysret may return
#define VEC_FRESH   0x101       // built by env_spawn: never ran
#define VEC_UPCALL  0x102       // built by activation.c: an upcall entry, rcx/r11 dead, sysret may return

enum vproc_state { VP_RUNNABLE, VP_RUNNING, VP_BLOCKED, VP_DEAD };
// WAIT_ACT: the vproc idles in act_wait (activation.c) until a blocked
// record of its environment is woken, an upcall it has not seen, or a deadline.
enum wait_kind { WAIT_NONE, WAIT_CHILD, WAIT_SLEEP, WAIT_FUTEX, WAIT_ACT, WAIT_KINDS };

struct env;

struct vproc {
    // First and 16-byte aligned (kmalloc), so the end of the frame is a
    // valid TSS.rsp0: interrupts from user mode push straight into it.
    struct trapframe tf;
    uint8_t fpu[512] __attribute__((aligned(16)));     // fxsave image
    uint16_t seg[4];            // DS, ES, FS, GS while another vproc has the CPU
    struct env *env;
    enum vproc_state state;
    enum wait_kind wait_kind;   // what a BLOCKED vproc is waiting for
    uint64_t wait_key;          // child id (or -1) / deadline in ns / futex key
    uint64_t wait_deadline;     // WAIT_FUTEX, WAIT_ACT: wake at this clock_ns() too (0: never)
    int index;                  // in env->vprocs
    bool act_disabled;          // its scheduler runs: interrupts resume it directly
    int act_resuming;           // record being restored, or ACT_NONE (activation.c)
    bool act_restart_pending;   // a restart came while disabled: upcall once enabled (restart.c)
    bool act_wake_pending;      // its environment has woken records to hand back (activation.c)
    bool act_idle;              // blocked in act_wait: its rerun takes the woken record itself
    struct vproc *run_next;     // run queue
    struct vproc *all_next;     // every vproc, for wakeups
};

struct vproc *vproc_new(struct env *env);       // NULL on OOM; not yet runnable
void vproc_destroy(struct vproc *v);

// NULL when idle or the caller died.
static inline struct vproc *sched_current(void)
{
    return mycpu()->vproc;
}
void sched_make_runnable(struct vproc *v);      // append to the run queue
// Mark v blocked; the caller rewinds its syscall (returns -ERESTART).
void sched_block(struct vproc *v, enum wait_kind kind, uint64_t key);
// Make runnable every vproc blocked on (kind, key); WAIT_CHILD matches
// key == child id and waits for any child (-1).
void sched_wake(enum wait_kind kind, uint64_t key);
// Make runnable at most n vprocs blocked on (kind, key); how many.
long sched_wake_n(enum wait_kind kind, uint64_t key, uint64_t n);
// A wait with this deadline is over at `now` (never early: docs/restart.md);
// for blocked vprocs and blocked activation records alike.
bool sched_deadline_passed(uint64_t deadline, uint64_t now);
// Timer tick: wake sleepers and timed futex waiters whose deadline has passed.
void sched_tick(void);
// Make every blocked vproc runnable at its rewound syscall, forgetting what
// it waited for; dropped[kind] counts them (restart.c). The total.
int sched_drop_waits(int dropped[WAIT_KINDS]);
bool sched_others_waiting(void);                // anything in the run queue?
// Write the CPU's lazily kept user state (FPU/SSE registers, DS/ES/FS/GS)
// back into the vprocs that own it, which keep owning it: afterwards every
// vproc's fpu[] and seg[] are its real state (checkpoint.c reads them).
void sched_sync_user_state(void);

// Never return: resume the next runnable vproc, idling until there is one.
void schedule(void) __attribute__((noreturn));
// Back to user space in `v`'s frame (v must be current or switched to).
void vproc_resume(struct vproc *v) __attribute__((noreturn));

// syscallasm.S: load the frame and leave with sysretq (only for frames
// sysret_safe accepts) or iretq (user_frame_valid ones).
void user_return_sysret(struct trapframe *tf) __attribute__((noreturn));
void user_return_iret(struct trapframe *tf) __attribute__((noreturn));

// Both predicates are pure (tested in test_syscall.c) and inline: the
// syscall fast path evaluates them on every call.
#define RFLAGS_IF   (1UL << 9)
#define RFLAGS_IOPL (3UL << 12)
#define RFLAGS_NT   (1UL << 14)
#define RFLAGS_VM   (1UL << 17)

// The frame is a legal user frame at all: user selectors, canonical RIP,
// IF set, IOPL 0, no NT/VM.
static inline bool user_frame_valid(const struct trapframe *tf)
{
    return tf->cs == USER_CS && tf->ss == USER_DS && is_canonical(tf->rip) &&
           is_canonical(tf->rsp) &&
           (tf->rflags & (RFLAGS_IF | RFLAGS_IOPL | RFLAGS_NT | RFLAGS_VM)) == RFLAGS_IF;
}

// The frame may leave through sysret: it came from a syscall or is an
// upcall entry, so rcx/r11 are dead, and its RIP is a canonical user
// address (CVE-2012-0217: Intel's sysret faults in ring 0 on a
// non-canonical RCX).
static inline bool sysret_safe(const struct trapframe *tf)
{
    return (tf->vector == VEC_SYSCALL || tf->vector == VEC_UPCALL) && tf->rip < USER_LIMIT &&
           user_frame_valid(tf);
}
#endif
