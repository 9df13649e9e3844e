// act_probe[:upcalls]: the kernel side of activations, without any thread
// runtime. It measures the timer round trip as plain preemption first,
// then registers a minimal upcall handler (count, act_resume the record at
// once) and measures again, until `upcalls` (default 50) upcalls arrived:
//   act_probe: plain n=<k> min=<tsc> median=<tsc>
//   act_probe: upcall n=<k> min=<tsc> median=<tsc>
//   act_probe: stats pool=.. free=.. delivered=.. redelivered=.. resumed=.. freed=.. disabled_saves=..
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

static uint8_t upcall_stack[8192] __attribute__((aligned(16)));
static volatile uint64_t upcalls, bad_upcalls, last_seq;
static uint64_t gaps[MAX_GAPS];

static inline uint64_t tsc(void)
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

// The upcall entry. The kernel enters with rsp = upcall_stack - 8, as if
// called, so a C function will do; it must never return.
static void __attribute__((noreturn, used)) on_upcall(struct act_record *rec, uint64_t reason,
                                                      uint64_t vproc)
{
    volatile struct act_header *h = (volatile struct act_header *)ACT_SEGMENT;
    if (reason != ACT_PREEMPTED || vproc != 0 || rec->reason != ACT_PREEMPTED ||
        rec->seq <= last_seq || !h->disabled ||
        (uint64_t)rec != ACT_RECORDS + (uint64_t)rec->index * ACT_RECORD_SIZE)
        bad_upcalls++;
    last_seq = rec->seq;
    upcalls++;
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

    h->upcall_stack = (uint64_t)(upcall_stack + sizeof(upcall_stack));
    h->entry[ACT_PREEMPTED] = (uint64_t)on_upcall;
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
