// In-place restart: the kernel forgets every wait, and every blocked call
// simply runs again.
//
// A blocked vproc is a frame rewound onto its `syscall` instruction plus a
// wait key (docs/restart.md); the key is derived state. So a restart is
// small: clear every (wait_kind, wait_key, deadline), put every blocked
// vproc on the run queue, and tell each environment that asked for it with
// a *restarted* upcall (entry[ACT_RESTARTED], activation.c), whose runtime
// then lets every thread it holds rerun its call. A blocked activation
// record (a thread of a program with the blocked upcall) is the same
// frame-plus-key: its key is dropped and the record is the program's again
// (act_drop_waits), which the restarted upcall tells it. Each rerun computes its
// key again and blocks again if it must, or completes if the world moved
// on meanwhile. What a restart must never cause is a lost or a doubled
// effect, and it cannot: a blocked call has had no effect yet.
//
// This is the in-memory rehearsal of restoring a checkpoint (persistence):
// there, too, nothing of the kernel's wait state survives, only frames and
// user memory do.
//
// Triggers: `restart_every=MS` (guest time), and the host through an NMI
// (QMP inject-nmi: the NMI handler only counts, trapasm.S). Either is acted
// on at the next safe point, a place where every vproc's state is its
// frame and no kernel work is half done: a timer tick from user mode
// (trap.c) and the top of the scheduler loop (sched.c), which runs before
// any other program gets the CPU and, when idle, after every interrupt.
#include "activation.h"
#include "cmdline.h"
#include "env.h"
#include "printf.h"
#include "restart.h"
#include "sched.h"
#include "string.h"
#include "timer.h"

volatile uint64_t nmi_requests;         // trapasm.S nmi_entry: lock incq
extern char nmi_stack[], nmi_stack_top[];   // trapasm.S

static uint64_t every_ms, next_ms;      // restart_every=MS; the next one due
static uint64_t nmi_handled;            // requests acted on so far
static uint64_t restarts;

void restart_init(void)
{
    every_ms = cmdline_has("restart_every") ? cmdline_ulong("restart_every") : 0;
    next_ms = timer_ms() + every_ms;
    if (every_ms)
        kprintf("restart: every %lu ms\n", every_ms);
}

static bool nmi_pending(void)
{
    return nmi_requests != nmi_handled;
}

static bool timer_due(void)
{
    return every_ms && timer_ms() >= next_ms;
}

bool restart_due(void)
{
    return nmi_pending() || timer_due();
}

// Which trigger this restart answers; both are consumed. A late period is
// not made up for: the next one is a full period from now.
static const char *consume_trigger(void)
{
    const char *by = "timer";
    if (nmi_pending()) {
        nmi_handled = nmi_requests;
        by = "nmi";
        // The NMI is long over: its frame (the interrupted instruction's
        // rip, rsp, rflags) must not stay for the next program to find.
        memset(nmi_stack, 0, (uint64_t)(nmi_stack_top - nmi_stack));
    }
    if (timer_due())
        next_ms = timer_ms() + every_ms;
    return by;
}

// Give every environment its restarted upcall; counts those delivered now
// and those left pending (their vproc is disabled: its scheduler runs).
static void upcall_all(int *now, int *pending)
{
    *now = *pending = 0;
    for (int i = 0; i < ENV_MAX; i++) {
        struct env *e = env_slot(i);
        for (int k = 0; e && e->state == ENV_LIVE && k < e->nvprocs; k++) {
            struct vproc *v = e->vprocs[k];
            int r = act_restart(v);
            if (r < 0)
                break;          // killed: e is gone
            *now += r > 0;
            *pending += r == 0 && v->act_restart_pending;
        }
    }
}

void restart_run(void)
{
    const char *by = consume_trigger();
    uint64_t t0 = timer_ns();
    int dropped[WAIT_KINDS];
    int total = sched_drop_waits(dropped);
    total += act_drop_waits(dropped);  // blocked records: waiters too
    int now, pending;
    upcall_all(&now, &pending);
    uint64_t ns = timer_ns() - t0;
    kprintf("restart %lu: dropped %d waiters (%d futex, %d sleep, %d child); "
            "%d restarted upcalls, %d pending; by %s; %lu ns\n", ++restarts, total,
            dropped[WAIT_FUTEX], dropped[WAIT_SLEEP], dropped[WAIT_CHILD], now, pending, by, ns);
}
