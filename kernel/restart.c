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
// Triggers: `restart_every=MS` (guest time), `restart_at=NS` (once, at a
// guest instant), and the host through an NMI (QMP inject-nmi: the NMI
// handler only counts, trapasm.S). Each is acted on at the next safe
// point, a place where every vproc's state is its frame and no kernel work
// is half done: a timer tick from user mode
// (trap.c) and the top of the scheduler loop (sched.c), which runs before
// any other program gets the CPU and, when idle, after every interrupt.
//
// Why restart_at exists beside the NMI: an instant chosen by the host is
// wall-clock timed, so a trial that fails because of where its restart
// fell cannot be run again exactly, and QEMU's record/replay cannot replay
// an injected NMI either (docs/toolkit.md, "Record and replay"). An
// instant in guest time is part of the command line: under -icount shift=0
// the clock advances one ns per guest instruction, so the same NS restarts
// the same run at the same instruction, every time, and a bisection over
// NS narrows a failure down to one ns.
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
static uint64_t at_ns;                  // restart_at=NS; 0: absent, or done
static uint64_t checked_ns;             // the clock at the last safe point it was not due
static uint64_t due_ns;                 // ... and at the one it was
static uint64_t nmi_handled;            // requests acted on so far
static uint64_t restarts;

void restart_init(void)
{
    every_ms = cmdline_has("restart_every") ? cmdline_ulong("restart_every") : 0;
    next_ms = timer_ms() + every_ms;
    if (every_ms)
        kprintf("restart: every %lu ms\n", every_ms);
    at_ns = cmdline_has("restart_at") ? cmdline_ulong("restart_at") : 0;
    if (at_ns)
        kprintf("restart: at %lu ns\n", at_ns);
}

static bool nmi_pending(void)
{
    return nmi_requests != nmi_handled;
}

static bool timer_due(void)
{
    return every_ms && timer_ms() >= next_ms;
}

// Remembers where it was last found not due: every NS in (checked_ns,
// the clock now] would have restarted at this very safe point, in the same
// run (the toolkit's bisection uses that: one run answers for the whole
// stretch, docs/toolkit.md).
static bool instant_due(void)
{
    if (!at_ns)
        return false;
    uint64_t now = timer_ns();
    if (now >= at_ns) {
        due_ns = now;
        return true;
    }
    checked_ns = now;
    return false;
}

bool restart_due(void)
{
    return nmi_pending() || timer_due() || instant_due();
}

// Which trigger this restart answers (the NMI's name wins); every due one
// is consumed. A late period is not made up for: the next one is a full
// period from now.
static const char *consume_trigger(void)
{
    const char *by = "timer";
    if (instant_due()) {
        by = "instant";
        kprintf("restart: instant %lu ns taken at %lu ns; not due at %lu ns\n", at_ns, due_ns,
                checked_ns);
        at_ns = 0;                      // once: a later safe point finds nothing due
    }
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
