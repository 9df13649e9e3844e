// Output commit: see outcommit.h and docs/persistence.md.
//
// A program's console output is an effect outside the system: once shown
// it cannot be taken back. A checkpoint restored after a power cut puts the
// programs back to where they were at that checkpoint, and they will print
// again whatever they printed after it. So nothing they print after a
// checkpoint may be shown until a later checkpoint, which already counts it
// as printed, has committed: then it is shown exactly once, whatever
// happens. The bytes wait in `held`, are part of every checkpoint taken
// while they wait (the manifest's output section), and go to the UART right
// after the commit.
//
// The buffer is bounded. A write that does not fit waits like any blocking
// call (rewound, restartable: it has had no effect yet) and asks for a
// checkpoint, whose commit empties the buffer and wakes it. Kernel lines
// (kprintf) are never held: they describe the machine, not a program.
#include "abi.h"
#include "checkpoint.h"
#include "ckpt_store.h"
#include "cmdline.h"
#include "env.h"
#include "memlayout.h"
#include "outcommit.h"
#include "printf.h"
#include "sched.h"
#include "string.h"
#include "syscall.h"
#include "timer.h"
#include "uart.h"
#include "vm.h"

static char held[OUT_HOLD_MAX];
static uint64_t nheld;
static uint64_t released;               // bytes released since the first boot (restored across boots)
static bool on;
// Latency: when the oldest held byte came in, and over every release the
// longest and the summed wait of the oldest byte (the summary line at
// power-off, outcommit_report).
static uint64_t held_since_ns, releases, wait_max_ns, wait_sum_ns;

void outcommit_init(bool disk, bool periodic)
{
    const char *mode = cmdline_get("outcommit");
    bool want = mode ? strcmp(mode, "on") == 0 : periodic;
    on = disk && want;
    if (want && !disk)
        kprintf("outcommit: off: no disk to commit to\n");
    else if (on)
        kprintf("outcommit: on, %d bytes held at most\n", OUT_HOLD_MAX);
}

bool outcommit_on(void)
{
    return on;
}

bool outcommit_holds(const struct env *e)
{
    return on && !e->out_direct;
}

// The key writers wait on: a futex key (a physical address) that no user
// word can have, since `held` is kernel memory.
static uint64_t wait_key(void)
{
    return KV2P(held);
}

long outcommit_write(uint64_t buf, uint64_t len)
{
    uint64_t room = OUT_HOLD_MAX - nheld;
    if (len > room) {
        if (len <= OUT_HOLD_MAX || room == 0) {
            checkpoint_request("output");
            sched_block(sched_current(), WAIT_FUTEX, wait_key());
            return -ERESTART;
        }
        len = room;     // larger than the whole buffer: a short write, as POSIX allows
    }
    if (copyin(held + nheld, buf, len) < 0)
        return -EFAULT;
    if (!nheld)
        held_since_ns = timer_ns();
    nheld += len;
    return (long)len;
}

uint64_t outcommit_held(void)
{
    return nheld;
}

uint64_t outcommit_seq(void)
{
    return released;
}

int outcommit_save(struct pbuf *b)
{
    return pbuf_append(b, held, nheld);
}

void outcommit_release(uint64_t n)
{
    if (n > nheld)
        n = nheld;
    if (!n)
        return;
    uint64_t waited = timer_ns() - held_since_ns;
    releases++;
    wait_sum_ns += waited;
    if (waited > wait_max_ns)
        wait_max_ns = waited;
    held_since_ns = timer_ns();         // the rest (if any) counts from now: a lower bound
    uart_write(held, n);
    memmove(held, held + n, nheld - n);
    nheld -= n;
    released += n;
    sched_wake(WAIT_FUTEX, wait_key());
}

void outcommit_report(void)
{
    if (!on)
        return;
    kprintf("outcommit: released %lu bytes in %lu releases; the oldest byte waited %lu us on average, "
            "%lu us at most\n", released, releases, releases ? wait_sum_ns / releases / 1000 : 0,
            wait_max_ns / 1000);
}

void outcommit_restore(uint64_t seq)
{
    released = seq;
}

long sys_outcommit(uint64_t mode)
{
    struct env *e = env_current();
    long before = e->out_direct ? OUTCOMMIT_OFF : OUTCOMMIT_ON;
    if (mode == OUTCOMMIT_OFF || mode == OUTCOMMIT_ON)
        e->out_direct = mode == OUTCOMMIT_OFF;
    else if (mode != OUTCOMMIT_QUERY)
        return -EINVAL;
    return before;
}
