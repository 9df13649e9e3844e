// act_probe[:upcalls[:held]]: the kernel side of activations, without any
// thread runtime. It measures the timer round trip as plain preemption
// first, then registers a minimal upcall handler (count, act_resume the
// record at once) and measures again, until `upcalls` (default 50) upcalls
// arrived. The handler checks every entry: the arguments, and rsp exactly
// upcall_stack - 8 (as if called: 16n + 8, the SysV alignment at a
// function's entry). The first `held` (0) upcalls stay in the handler, still
// disabled, until the kernel has absorbed a tick (header disabled_saves went
// up): that tick must not be delivered as an upcall nested in the handler.
//   act_probe: plain n=<k> min=<tsc> median=<tsc>
//   act_probe: upcall n=<k> min=<tsc> median=<tsc>
//   act_probe: stats pool=.. free=.. delivered=.. redelivered=.. resumed=.. freed=.. disabled_saves=..
//   act_probe: upcall rsp ok n=<k>
//   act_probe: held <h> upcalls over <s> ticks absorbed while disabled, none nested
//   act_probe: ok      (or act_probe: FAIL <why>, exit 1)
// A "gap" is the time a spinning rdtsc loop did not see: the whole round
// trip of one interrupt (kernel entry, tick, upcall, act_resume, restore).
// Under -icount shift=0 one TSC tick is one guest instruction.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_GAPS   256
#define GAP_MIN    100          // far above one loop iteration, below any round trip
#define PLAIN_GAPS 8
#define HOLD_MAX_NS 1000000000UL    // a held upcall waits at most 1 s for a tick

static uint8_t upcall_stack[8192] __attribute__((aligned(16)));
static volatile uint64_t upcalls, bad_upcalls, last_seq;
static volatile uint64_t bad_rsp, first_bad_rsp, hold, held, hold_timeouts, absorbed;
static volatile int in_handler;
static uint64_t gaps[MAX_GAPS];

static inline uint64_t tsc(void)
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t stack_top(void)
{
    return (uint64_t)(upcall_stack + sizeof(upcall_stack));
}

// Stay in the handler (disabled) until the kernel has absorbed a tick.
static void hold_for_a_tick(volatile struct act_header *h)
{
    uint64_t saves = h->disabled_saves, end = (uint64_t)sys_clock_ns() + HOLD_MAX_NS;
    while (h->disabled_saves == saves && (uint64_t)sys_clock_ns() < end)
        ;
    if (h->disabled_saves == saves)
        hold_timeouts++;
    absorbed += h->disabled_saves - saves;
    held++;
}

// The upcall entry. The kernel enters with rsp = upcall_stack - 8, as if
// called; upcall_entry passes that rsp on as a fourth argument and jumps
// (so the C handler starts with the same rsp). It must never return.
void upcall_entry(void);
asm(".text\n"
    ".globl upcall_entry\n"
    "upcall_entry:\n"
    "    movq %rsp, %rcx\n"
    "    jmp on_upcall\n");

void __attribute__((noreturn, used)) on_upcall(struct act_record *rec, uint64_t reason,
                                               uint64_t vproc, uint64_t entry_rsp)
{
    volatile struct act_header *h = (volatile struct act_header *)ACT_SEGMENT;
    if (in_handler) {
        // Entered again before act_resume: an upcall while disabled. The
        // outer handler's frame is gone (same stack top); report and end.
        printf("act_probe: FAIL an upcall arrived while the handler ran disabled (upcall %lu, "
               "%lu held)\n", (unsigned long)upcalls, (unsigned long)held);
        sys_exit(1);
    }
    in_handler = 1;
    if (reason != ACT_PREEMPTED || vproc != 0 || rec->reason != ACT_PREEMPTED ||
        rec->seq <= last_seq || !h->disabled ||
        (uint64_t)rec != ACT_RECORDS + (uint64_t)rec->index * ACT_RECORD_SIZE)
        bad_upcalls++;
    if (entry_rsp != stack_top() - 8 || entry_rsp % 16 != 8) {
        if (!bad_rsp)
            first_bad_rsp = entry_rsp;
        bad_rsp++;
    }
    if (held < hold)
        hold_for_a_tick(h);
    last_seq = rec->seq;
    upcalls++;
    in_handler = 0;
    sys_raw(SYS_act_resume, (long)rec, 0, 0, 0, 0, 0);
    for (;;)
        ;       // not reached: act_resume does not return
}

// Spin, recording gaps, until `want` gaps were seen (counter NULL) or until
// *counter reaches target (at most MAX_GAPS gaps kept). Returns how many.
static int measure(uint64_t *out, int want, volatile uint64_t *counter, uint64_t target)
{
    int n = 0;
    uint64_t prev = tsc();
    while (counter ? *counter < target : n < want) {
        uint64_t now = tsc();
        if (now - prev > GAP_MIN && n < MAX_GAPS)
            out[n++] = now - prev;
        prev = now;
    }
    return n;
}

static void sort(uint64_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

static void report(const char *what, uint64_t *v, int n)
{
    sort(v, n);
    printf("act_probe: %s n=%d min=%lu median=%lu\n", what, n, (unsigned long)(n ? v[0] : 0),
           (unsigned long)(n ? v[n / 2] : 0));
}

static int fail(const char *why)
{
    printf("act_probe: FAIL %s\n", why);
    return 1;
}

int main(int argc, char **argv)
{
    uint64_t want = argc > 1 ? strtoul(argv[1], 0, 10) : 50;
    if (want < 1 || want > MAX_GAPS)
        want = 50;
    hold = argc > 2 ? strtoul(argv[2], 0, 10) : 0;
    if (hold > want)
        hold = want;
    // volatile: the kernel reads these words behind the compiler's back.
    volatile struct act_header *h = (volatile struct act_header *)ACT_SEGMENT;
    if (h->magic != ACT_MAGIC || h->version != ACT_VERSION)
        return fail("no activation header");
    // crt0 registered the thread runtime; this probe wants plain
    // preemption first, then only its own handler.
    h->entry[ACT_PREEMPTED] = 0;
    struct act_stats before;
    sys_raw(SYS_act_stats, (long)&before, 0, 0, 0, 0, 0);

    int n = measure(gaps, PLAIN_GAPS, 0, 0);
    report("plain", gaps, n);

    h->upcall_stack = stack_top();
    h->entry[ACT_PREEMPTED] = (uint64_t)upcall_entry;
    n = measure(gaps, (int)want, &upcalls, want);
    h->entry[ACT_PREEMPTED] = 0;
    report("upcall", gaps, n);

    struct act_stats s;
    if (sys_raw(SYS_act_stats, (long)&s, 0, 0, 0, 0, 0) != 0)
        return fail("act_stats");
    printf("act_probe: stats pool=%lu free=%lu delivered=%lu redelivered=%lu resumed=%lu "
           "freed=%lu disabled_saves=%lu\n", s.pool_size, s.free_records, s.delivered,
           s.redelivered, s.resumed, s.freed, s.disabled_saves);
    if (bad_upcalls)
        return fail("an upcall with wrong arguments");
    if (bad_rsp) {
        printf("act_probe: FAIL %lu of %lu upcalls entered with a wrong rsp, first 0x%lx "
               "(want upcall_stack - 8 = 0x%lx, 16n + 8)\n", (unsigned long)bad_rsp,
               (unsigned long)upcalls, (unsigned long)first_bad_rsp, (unsigned long)(stack_top() - 8));
        return 1;
    }
    printf("act_probe: upcall rsp ok n=%lu\n", (unsigned long)upcalls);
    if (hold_timeouts) {
        printf("act_probe: FAIL %lu of %lu held upcalls saw no tick absorbed in %lu ms\n",
               (unsigned long)hold_timeouts, (unsigned long)held, HOLD_MAX_NS / 1000000);
        return 1;
    }
    if (hold)
        printf("act_probe: held %lu upcalls over %lu ticks absorbed while disabled, none nested\n",
               (unsigned long)held, (unsigned long)absorbed);
    // Plus what the runtime took between crt0 and main (all resumed).
    uint64_t seen = upcalls + before.resumed;
    if (s.delivered + s.redelivered != seen || s.resumed != seen)
        return fail("counters do not match the upcalls seen");
    // act_stats is a kernel entry from outside the restore sequence: every
    // resumed record has been freed by now, none leaked.
    if (s.freed != s.delivered || s.free_records != s.pool_size)
        return fail("records leaked");
    if (h->delivered != s.delivered || h->free_records != s.free_records || h->disabled)
        return fail("header mirror differs from act_stats");
    if (sys_raw(SYS_act_stats, 0xffffffff80000000L, 0, 0, 0, 0, 0) != -EFAULT)
        return fail("act_stats to a kernel pointer did not give -EFAULT");
    printf("act_probe: ok\n");
    return 0;
}
