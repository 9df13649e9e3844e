// act_block:<mode>[:args]: blocking system calls as scheduler activations
// (docs/activations.md, "Blocking calls"). The thread runtime registers the
// blocked and unblocked upcalls, so a thread whose call must wait parks
// with its record while the program's other threads run on.
//
//   futex[:ms] / sleep[:ms]   main blocks in the kernel's futex_wait (woken
//       by a worker after `ms`, default 50) or sleep_until (`ms` ahead)
//       while seven workers compute. Lines:
//         act_block: <mode> r=<r> blocked_us=<n> resume_us=<n> utilization_pct=<n>
//                    progress_min=<n> progress_max=<n>      (one line)
//         act_block: progress thread <i> <n>               (i = 1..7)
//       utilization: the work the seven did during the block against what one
//       thread does alone in that time (calibrated first): ~100 if the
//       vproc kept running them, 0 if it had stopped with main.
//   idle[:threads[:ms]]   every thread (4) blocks at once, in sleep_until or
//       a futex_wait with a deadline (ms, default 100, ahead): nothing to run.
//         act_block: idle threads=<n> idle_waits=<kernel> runtime_idle_waits=<n>
//                    blocked_upcalls=<n> unblocked=<n> late_max_us=<n> early=<n>
//   cycles[:rounds]   two threads hand a turn back and forth through the
//       kernel's futex (10,000 rounds: every handoff a block and an unblock).
//         act_block: cycles rounds=<n> handoffs=<n> bad=<n> pool=<n> free=<n>
//                    blocked_now=<n> blocked_upcalls=<n> unblocked=<n> restarts=<n>
//   bench[:rounds]    RESULT lines (bench.h) for the same handoff (block_unblock)
//       and for two threads yielding to each other (uswitch_ref), per handoff.
//   early[:n[:ms]]    main's blocked record is resumed at once by its own
//       blocked handler, n (5) times, before the runtime parks it: each time
//       the kernel drops the wait and the call reruns and blocks again; the
//       sleep (ms, 20) still never ends early, the futex_wait still waits for
//       its wake.
//         act_block: early sleep r=<r> early_ns=<n> cancelled=<n> blocked_upcalls=<n>
//         act_block: early futex r=<r> cancelled=<n> blocked_upcalls=<n>
//   skip   the blocked handler moves main's wait(child) record past its
//       `syscall` and resumes it: the call "returns" what the program forged,
//       but nothing happened in the kernel: the child is still there for the
//       next, real, wait.
//   forge:<how>   break a rule at the first blocked upcall; the kernel must end
//       this environment, naming it: address (a record address off its
//       boundary), unused (a record not in use), cs (the record's cs),
//       entry6 (entry[ACT_UNBLOCKED] made a kernel address before the wake),
//       exhaust (block again and again, never giving a record back).
//   child:<ms>:<status>   sleeps ms, exits with status (for skip).
// Then `act_block: ok <mode>` or `act_block: FAIL <what>`; exit status:
// the number of FAILs.
#include <bench.h>
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread.h>

#define MS          1000000UL
#define WORKERS     7
#define CALIBRATION_MS 10           // worker 0 alone, to know its speed

static int failures;
static volatile int stop;
static volatile unsigned long work[WORKERS + 1];

static void fail(const char *what, long got, long want)
{
    printf("act_block: FAIL %s: got %ld, want %ld\n", what, got, want);
    failures++;
}

static struct act_stats kstats(void)
{
    struct act_stats s;
    if (act_stats(&s) < 0)
        memset(&s, 0, sizeof(s));
    return s;
}

static struct act_header *header(void)
{
    return (struct act_header *)ACT_SEGMENT;
}

// ------------------------------------------------- one blocks, seven compute

static volatile uint32_t word;
static volatile uint64_t wake_at, woke_at;

static void *compute(void *arg)
{
    long i = (long)arg;
    unsigned long n = 0;
    while (!stop) {
        work[i]++;
        // Worker 1 is also the waker: the clock every 1024 rounds. Every
        // worker runs the same loop, so their shares are comparable.
        if ((++n & 1023) == 0 && i == 1 && wake_at && !woke_at &&
            (uint64_t)sys_clock_ns() >= wake_at) {
            woke_at = (uint64_t)sys_clock_ns();
            word = 1;
            sys_futex_wake(&word, 1);
        }
    }
    return NULL;
}

// Iterations of compute's loop one thread does per ms, alone: worker 0
// runs it for CALIBRATION_MS while main sleeps in the runtime.
static uint64_t calibrate(void)
{
    struct thread *t;
    if (thread_create(&t, compute, (void *)0L))
        return 1;
    uint64_t t0 = (uint64_t)sys_clock_ns();
    unsigned long w0 = work[0];
    thread_sleep(CALIBRATION_MS);
    unsigned long w1 = work[0];
    uint64_t ns = (uint64_t)sys_clock_ns() - t0;
    stop = 1;
    thread_join(t, NULL);
    stop = 0;
    return ns ? (w1 - w0) * MS / ns : 1;
}

static void block_while_computing(int futex, unsigned long ms)
{
    const char *mode = futex ? "futex" : "sleep";
    uint64_t per_ms = calibrate();
    struct thread *t[WORKERS + 1];
    for (long i = 1; i <= WORKERS; i++)
        if (thread_create(&t[i], compute, (void *)i))
            fail("thread_create", i, 0);
    thread_sleep(2);                    // every worker is under way
    unsigned long w0[WORKERS + 1], w1[WORKERS + 1];
    uint64_t t0 = (uint64_t)sys_clock_ns(), deadline = t0 + ms * MS;
    for (int i = 1; i <= WORKERS; i++)
        w0[i] = work[i];
    long r;
    if (futex) {
        wake_at = deadline;
        r = sys_futex_wait(&word, 0, FUTEX_NO_DEADLINE);
    } else {
        r = sys_sleep_until(deadline);
    }
    uint64_t t1 = (uint64_t)sys_clock_ns();
    for (int i = 1; i <= WORKERS; i++)
        w1[i] = work[i];
    stop = 1;
    for (long i = 1; i <= WORKERS; i++)
        thread_join(t[i], NULL);

    unsigned long sum = 0, lo = ~0UL, hi = 0;
    for (int i = 1; i <= WORKERS; i++) {
        unsigned long p = w1[i] - w0[i];
        sum += p;
        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
        printf("act_block: progress thread %d %lu\n", i, p);
    }
    uint64_t woke = futex ? woke_at : deadline;
    uint64_t capacity = per_ms * (t1 - t0) / MS;
    printf("act_block: %s r=%ld blocked_us=%lu resume_us=%lu utilization_pct=%lu "
           "progress_min=%lu progress_max=%lu\n", mode, r, (unsigned long)((t1 - t0) / 1000),
           (unsigned long)(t1 >= woke ? (t1 - woke) / 1000 : 0),
           (unsigned long)(capacity ? sum * 100 / capacity : 0), lo, hi);
    if (r != (futex ? -EAGAIN : 0))
        fail(futex ? "futex_wait result" : "sleep_until result", r, futex ? -EAGAIN : 0);
    if (t1 < deadline)
        fail("resumed before the wake (ns early)", (long)(deadline - t1), 0);
    if (lo == 0)
        fail("a worker made no progress during the block", 0, 1);
}

// --------------------------------------------------------- everyone blocks

static unsigned long idle_ms = 100;
static uint64_t idle_start;
static volatile uint32_t never;
static volatile long idle_bad, idle_early;
static volatile uint64_t idle_late_max;

static void *idle_waiter(void *arg)
{
    long i = (long)arg;
    uint64_t deadline = idle_start + idle_ms * MS + (uint64_t)i * 100000;
    long r = i & 1 ? sys_futex_wait(&never, 0, deadline) : sys_sleep_until(deadline);
    uint64_t now = (uint64_t)sys_clock_ns();
    if (r != (i & 1 ? -ETIMEDOUT : 0)) {
        printf("act_block: FAIL idle thread %ld: got %ld\n", i, r);
        idle_bad++;
    }
    if (now < deadline)
        idle_early++;
    else if (now - deadline > idle_late_max)
        idle_late_max = now - deadline;
    return NULL;
}

static void everyone_blocks(long n)
{
    struct thread *t[16];
    struct thread_stats r0, r1;
    struct act_stats k0 = kstats();
    thread_get_stats(&r0);
    idle_start = (uint64_t)sys_clock_ns();
    for (long i = 1; i < n; i++)
        if (thread_create(&t[i], idle_waiter, (void *)i))
            fail("thread_create", i, 0);
    idle_waiter((void *)0L);
    for (long i = 1; i < n; i++)
        thread_join(t[i], NULL);
    struct act_stats k1 = kstats();
    thread_get_stats(&r1);
    printf("act_block: idle threads=%ld idle_waits=%lu runtime_idle_waits=%lu blocked_upcalls=%lu "
           "unblocked=%lu late_max_us=%lu early=%ld\n", n,
           (unsigned long)(k1.idle_waits - k0.idle_waits),
           (unsigned long)(r1.idle_waits - r0.idle_waits),
           (unsigned long)(k1.blocked_upcalls - k0.blocked_upcalls),
           (unsigned long)(k1.unblocked_upcalls + k1.unblocked_waits - k0.unblocked_upcalls -
                           k0.unblocked_waits),
           (unsigned long)(idle_late_max / 1000), idle_early);
    if (idle_bad || idle_early)
        fail("idle waits", idle_bad + idle_early, 0);
}

// ------------------------------------------------------- handing a turn

static volatile uint32_t turn;         // 0: main's, 1: the partner's
static unsigned long rounds = 10000;
static volatile unsigned long handoffs, bad;

// Wait in the kernel until the turn is `mine`, then pass it on.
static void take_turn(uint32_t mine)
{
    while (turn != mine) {
        long r = sys_futex_wait(&turn, !mine, FUTEX_NO_DEADLINE);
        if (r != -EAGAIN) {
            if (bad++ < 5)
                printf("act_block: FAIL futex_wait returned %ld (%s), want EAGAIN\n", r,
                       errno_name(r));
        }
    }
    handoffs++;
    turn = !mine;
    sys_futex_wake(&turn, 1);
}

static void *partner(void *arg)
{
    unsigned long n = (unsigned long)arg;
    for (unsigned long i = 0; i < n; i++)
        take_turn(1);
    return NULL;
}

static void cycles(void)
{
    struct thread *t;
    if (thread_create(&t, partner, (void *)rounds))
        fail("thread_create", 1, 0);
    for (unsigned long i = 0; i < rounds; i++)
        take_turn(0);
    thread_join(t, NULL);
    struct act_stats k = kstats();
    struct thread_stats st;
    thread_get_stats(&st);
    printf("act_block: cycles rounds=%lu handoffs=%lu bad=%lu pool=%lu free=%lu blocked_now=%lu "
           "blocked_upcalls=%lu unblocked=%lu cancelled=%lu restarts=%lu\n", rounds, handoffs, bad,
           (unsigned long)k.pool_size, (unsigned long)k.free_records,
           (unsigned long)k.blocked_now, (unsigned long)k.blocked_upcalls,
           (unsigned long)(k.unblocked_upcalls + k.unblocked_waits), (unsigned long)k.cancelled,
           (unsigned long)st.restarts);
    if (handoffs != 2 * rounds || bad)
        fail("handoffs", (long)handoffs, (long)(2 * rounds));
    if (k.free_records != k.pool_size || k.blocked_now)
        fail("records in use at the end", (long)(k.pool_size - k.free_records), 0);
}

// ------------------------------------------------------------------ bench

#define CHUNKS 10

static void *yielder(void *arg)
{
    unsigned long n = (unsigned long)arg;
    for (unsigned long i = 0; i < n; i++)
        thread_yield();
    return NULL;
}

// Per handoff, from the fastest of CHUNKS chunks (one no tick landed in).
static void measure(const char *name, void *(*other)(void *), int futex)
{
    unsigned long per_chunk = rounds / CHUNKS ? rounds / CHUNKS : 1;
    struct thread *t;
    turn = 0;
    if (thread_create(&t, other, (void *)(per_chunk * CHUNKS + 1)))
        fail("thread_create", 1, 0);
    if (futex)
        take_turn(0);                   // the partner is in its loop
    else
        thread_yield();
    uint64_t best_t = UINT64_MAX, best_n = 0, n0 = (uint64_t)sys_clock_ns(), t0 = tsc();
    for (int c = 0; c < CHUNKS; c++) {
        uint64_t cn = (uint64_t)sys_clock_ns(), ct = tsc();
        for (unsigned long i = 0; i < per_chunk; i++) {
            if (futex)
                take_turn(0);
            else
                thread_yield();
        }
        uint64_t dt = tsc() - ct, dn = (uint64_t)sys_clock_ns() - cn;
        if (dt < best_t)
            best_t = dt, best_n = dn;
    }
    uint64_t t1 = tsc(), n1 = (uint64_t)sys_clock_ns();
    if (!futex)
        thread_yield();
    thread_join(t, NULL);
    bench_result(name, (long)(2 * per_chunk * CHUNKS), best_t, best_n, 2 * per_chunk, t1 - t0,
                 n1 - n0);
}

// --------------------------------------------------- hostile and early

static uint64_t runtime_blocked;        // the runtime's entry[ACT_BLOCKED]
static const char *forge_how = "";
static volatile unsigned long early_left;
static volatile int skip_next;

// exhaust: every blocked upcall comes here, on a stack of its own (the
// upcall stack must stay free for the ticks that land while enabled), and
// blocks again at once, keeping every record.
static uint8_t exhaust_stack[8192] __attribute__((aligned(16)));

static void __attribute__((noreturn, used)) exhaust_loop(void)
{
    for (;;) {
        act_enable();
        sys_sleep_until(UINT64_MAX);
    }
}

// entry[ACT_BLOCKED] in front of the runtime's: a plain C function (the
// kernel enters as if it were called), disabled, on the upcall stack.
static void __attribute__((noreturn)) blocked_first(struct act_record *rec, uint64_t reason,
                                                   uint64_t vproc)
{
    if (early_left) {                   // resume it before its wake: the call reruns
        early_left--;
        act_resume(rec);
    }
    if (skip_next) {                    // past the syscall, with a result of our own
        skip_next = 0;
        rec->rip += 2;
        rec->rax = 12345;
        act_resume(rec);
    }
    if (!strcmp(forge_how, "address"))
        act_resume((struct act_record *)((uint8_t *)rec + 8));
    if (!strcmp(forge_how, "unused"))
        act_resume((struct act_record *)(ACT_RECORDS + 40 * ACT_RECORD_SIZE));
    if (!strcmp(forge_how, "cs")) {
        rec->cs = 0x08;
        act_resume(rec);
    }
    if (!strcmp(forge_how, "entry6"))
        header()->entry[ACT_UNBLOCKED] = 0xffffffff80100000UL;
    if (!strcmp(forge_how, "exhaust"))
        asm volatile("mov %0, %%rsp\n\tcall exhaust_loop" : : "r"(exhaust_stack + sizeof(exhaust_stack)));
    ((void (*)(struct act_record *, uint64_t, uint64_t))runtime_blocked)(rec, reason, vproc);
    __builtin_unreachable();
}

static void intercept_blocked(void)
{
    runtime_blocked = header()->entry[ACT_BLOCKED];
    header()->entry[ACT_BLOCKED] = (uint64_t)blocked_first;
}

static void early(unsigned long n, unsigned long ms)
{
    intercept_blocked();
    struct act_stats k0 = kstats();
    uint64_t deadline = (uint64_t)sys_clock_ns() + ms * MS;
    early_left = n;
    long r = sys_sleep_until(deadline);
    uint64_t now = (uint64_t)sys_clock_ns();
    struct act_stats k1 = kstats();
    printf("act_block: early sleep r=%ld early_ns=%ld cancelled=%lu blocked_upcalls=%lu\n", r,
           now < deadline ? (long)(deadline - now) : 0L,
           (unsigned long)(k1.cancelled - k0.cancelled),
           (unsigned long)(k1.blocked_upcalls - k0.blocked_upcalls));
    if (r != 0 || now < deadline)
        fail("sleep_until resumed early", r, 0);

    // A futex wait resumed early waits again; only the wake ends it.
    struct thread *t[2];
    word = 0;
    wake_at = (uint64_t)sys_clock_ns() + ms * MS;
    if (thread_create(&t[1], compute, (void *)1L))
        fail("thread_create", 1, 0);
    early_left = n;
    r = sys_futex_wait(&word, 0, FUTEX_NO_DEADLINE);
    uint64_t back = (uint64_t)sys_clock_ns();
    stop = 1;
    thread_join(t[1], NULL);
    struct act_stats k2 = kstats();
    printf("act_block: early futex r=%ld cancelled=%lu blocked_upcalls=%lu\n", r,
           (unsigned long)(k2.cancelled - k1.cancelled),
           (unsigned long)(k2.blocked_upcalls - k1.blocked_upcalls));
    if (r != -EAGAIN || !woke_at || back < woke_at)
        fail("futex_wait resumed before its wake", r, -EAGAIN);
}

static long spawn_child(unsigned long ms, int status)
{
    char ms_arg[24], status_arg[24];
    snprintf(ms_arg, sizeof(ms_arg), "%lu", ms);
    snprintf(status_arg, sizeof(status_arg), "%d", status);
    char *argv[] = { "act_block", "child", ms_arg, status_arg, NULL };
    return sys_spawn("act_block", argv, 4);
}

static void skip(void)
{
    intercept_blocked();
    long child = spawn_child(20, 7);
    struct act_stats k0 = kstats();
    int status = -1;
    skip_next = 1;
    long r = sys_wait(child, &status);
    struct act_stats k1 = kstats();
    printf("act_block: skip r=%ld status=%d cancelled=%lu blocked_now=%lu\n", r, status,
           (unsigned long)(k1.cancelled - k0.cancelled), (unsigned long)k1.blocked_now);
    if (r != 12345 || status != -1)
        fail("the forged return", r, 12345);
    // The kernel did nothing of the wait: the child is still there.
    r = sys_wait(child, &status);
    printf("act_block: skip then wait r=%ld status=%d\n", r, status);
    if (r != child || status != 7)
        fail("the real wait afterwards", r, child);
    struct act_stats k2 = kstats();
    if (k2.free_records != k2.pool_size || k2.blocked_now)
        fail("records in use at the end", (long)(k2.pool_size - k2.free_records), 0);
}

static void forge(const char *how)
{
    forge_how = how;
    intercept_blocked();
    if (!strcmp(how, "exhaust"))
        sys_sleep_until(UINT64_MAX);    // nothing else runs: only the blocked handler
    struct thread *t;
    wake_at = (uint64_t)sys_clock_ns() + 5 * MS;
    if (thread_create(&t, compute, (void *)1L))
        fail("thread_create", 1, 0);
    sys_futex_wait(&word, 0, FUTEX_NO_DEADLINE);
    printf("act_block: FAIL survived forge:%s\n", how);
    failures++;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    unsigned long a2 = argc > 2 ? strtoul(argv[2], 0, 10) : 0;
    unsigned long a3 = argc > 3 ? strtoul(argv[3], 0, 10) : 0;
    if (!strcmp(mode, "child")) {
        sys_sleep_until((uint64_t)sys_clock_ns() + a2 * MS);
        return (int)a3;
    }
    if (!strcmp(mode, "futex") || !strcmp(mode, "sleep")) {
        block_while_computing(mode[0] == 'f', a2 ? a2 : 50);
    } else if (!strcmp(mode, "idle")) {
        if (a3)
            idle_ms = a3;
        everyone_blocks(a2 >= 1 && a2 <= 16 ? (long)a2 : 4);
    } else if (!strcmp(mode, "cycles")) {
        rounds = a2 ? a2 : rounds;
        cycles();
    } else if (!strcmp(mode, "bench")) {
        rounds = a2 ? a2 : 20000;
        measure("block_unblock", partner, 1);
        measure("uswitch_ref", yielder, 0);
    } else if (!strcmp(mode, "early")) {
        early(a2 ? a2 : 5, a3 ? a3 : 20);
    } else if (!strcmp(mode, "skip")) {
        skip();
    } else if (!strcmp(mode, "forge") && argc > 2) {
        forge(argv[2]);
    } else {
        printf("act_block: unknown mode %s (want futex sleep idle cycles bench early skip "
               "forge:<how>)\n", *mode ? mode : "(none)");
        return 2;
    }
    if (!failures)
        printf("act_block: ok %s\n", mode);
    return failures;
}
