/*
 * Linux-side peer benchmarks for Revenant (runs as /init, PID 1, in an initramfs).
 *
 * Selected by the kernel command line: parameters with '=' that the kernel
 * does not know are handed to init as environment variables, so
 *     rdinit=/init bench=getpid,signal iters=100000
 * arrives here as getenv("bench") / getenv("iters").  bench=all runs every
 * benchmark.  Each benchmark prints one machine-readable line
 *     RESULT name=<bench> iters=<N> tsc_per_iter=<X> ns_per_iter=<Y> [key=value...]
 * and the program ends with `DONE` and reboot(RB_POWER_OFF).  tsc_per_iter is
 * the fastest of 10 equal chunks of the loop (see RUN_CHUNKED; for alarm the
 * median event); mean_tsc_per_iter covers the whole loop.
 *
 * Timing: rdtsc fenced with lfence on both sides, and clock_gettime(CLOCK_MONOTONIC).
 * Under QEMU `-icount shift=0` both advance by exactly one unit per retired
 * guest instruction (QEMU derives the TSC and the virtual clock from the
 * instruction counter), so there tsc_per_iter == instructions per iteration.
 *
 * Benchmarks:
 *   calib   a loop of exactly 2 instructions per iteration (dec; jnz), for
 *           checking the "1 instruction = 1 ns = 1 tsc" claim under icount.
 *   getpid  null syscall: syscall(SYS_getpid) in a loop.
 *   signal  self-sent signal round trip: kill(getpid(), SIGUSR1) -> delivery on
 *           the syscall's return path -> handler -> rt_sigreturn.  Fully
 *           deterministic: one event per loop iteration.  Includes the kill
 *           syscall itself (subtract getpid for the delivery-only part).
 *   alarm   timer-delivered signal, the closest analogue of an activation
 *           upcall on a timer interrupt: setitimer(ITIMER_REAL) fires SIGALRM
 *           into a busy loop that reads the TSC back to back.  A gap in the
 *           TSC sequence during which the handler ran is one event: timer
 *           interrupt + hrtimer + signal setup + handler + sigreturn.  Gaps
 *           without a handler run (the scheduler tick, ...) are reported apart.
 *   futex   thread switch: two pthreads ping-pong through raw
 *           syscall(SYS_futex) FUTEX_WAIT/FUTEX_WAKE on one word (single vCPU),
 *           iters round trips = 2*iters switches; tsc_per_iter is per switch.
 *   pipe    request/response between two processes: the parent writes one
 *           byte into a pipe and reads the answer from a second pipe, the
 *           child (fork) reads and writes it back; tsc_per_iter is per
 *           round trip (two switches, four syscalls).
 *   wakeall 63 threads wait in FUTEX_WAIT on one word; main wakes them all
 *           (FUTEX_WAKE INT_MAX) and waits until every one has woken and
 *           gone back to FUTEX_WAIT (the last wakes main): one event, the
 *           analogue of an in-place restart rerunning 63 blocked calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void out(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(1, buf, n);
    (void)w;
}

static inline uint64_t tsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct span { uint64_t t0, n0, t1, n1; };

static inline void span_begin(struct span *s) { s->n0 = now_ns(); s->t0 = tsc(); }
static inline void span_end(struct span *s) { s->t1 = tsc(); s->n1 = now_ns(); }

static void report(const char *name, long iters, const struct span *s, long per, const char *extra)
{
    double dt = (double)(s->t1 - s->t0), dn = (double)(s->n1 - s->n0);
    double units = (double)iters * per;
    out("RESULT name=%s iters=%ld tsc_per_iter=%.3f ns_per_iter=%.3f tsc_total=%llu ns_total=%llu%s%s",
        name, iters, dt / units, dn / units, (unsigned long long)(s->t1 - s->t0),
        (unsigned long long)(s->n1 - s->n0), extra && *extra ? " " : "", extra ? extra : "");
}

/*
 * The measured loop runs as CHUNKS equal chunks, each timed on its own.
 * tsc_per_iter / ns_per_iter come from the fastest chunk: a chunk that no
 * timer tick (or, under plain TCG, no host hiccup) landed in, so the figure
 * is the cost of the operation itself and, under icount, repeatable to the
 * instruction.  mean_* cover the whole loop, background interrupts included.
 */
#define CHUNKS 10

struct chunked {
    long iters, per_chunk, nchunks;
    struct span whole;
    uint64_t best_t, best_n;
};

static void chunked_init(struct chunked *c, long iters)
{
    c->nchunks = iters >= CHUNKS ? CHUNKS : 1;
    c->per_chunk = iters / c->nchunks;
    c->iters = c->per_chunk * c->nchunks;
    c->best_t = c->best_n = UINT64_MAX;
}

static void chunk_done(struct chunked *c, const struct span *s)
{
    if (s->t1 - s->t0 < c->best_t) {
        c->best_t = s->t1 - s->t0;
        c->best_n = s->n1 - s->n0;
    }
}

/* Time BODY (one iteration) over c->iters iterations in chunks. */
#define RUN_CHUNKED(c, BODY)                                        \
    do {                                                            \
        struct span ch_;                                            \
        span_begin(&(c)->whole);                                    \
        for (long k_ = 0; k_ < (c)->nchunks; k_++) {                \
            span_begin(&ch_);                                       \
            for (long i_ = 0; i_ < (c)->per_chunk; i_++) { BODY; }  \
            span_end(&ch_);                                         \
            chunk_done((c), &ch_);                                  \
        }                                                           \
        span_end(&(c)->whole);                                      \
    } while (0)

static void report_chunked(const char *name, const struct chunked *c, long per, const char *extra)
{
    double units = (double)c->per_chunk * per, all = (double)c->iters * per;
    const struct span *w = &c->whole;
    out("RESULT name=%s iters=%ld tsc_per_iter=%.3f ns_per_iter=%.3f mean_tsc_per_iter=%.3f "
        "mean_ns_per_iter=%.3f chunks=%ld tsc_total=%llu ns_total=%llu%s%s",
        name, c->iters, (double)c->best_t / units, (double)c->best_n / units,
        (double)(w->t1 - w->t0) / all, (double)(w->n1 - w->n0) / all, c->nchunks,
        (unsigned long long)(w->t1 - w->t0), (unsigned long long)(w->n1 - w->n0),
        extra && *extra ? " " : "", extra ? extra : "");
}

/* ---- calib: exactly 2 instructions per iteration ---- */
static inline void spin2(uint64_t n)
{
    if (n == 0)
        return;
    __asm__ volatile("1:\n\tdec %0\n\tjnz 1b" : "+r"(n) :: "cc");
}

static void bench_calib(long iters)
{
    /* Empty measurement first: the fixed cost of the timing code itself. */
    struct span e, s;
    uint64_t best_t = UINT64_MAX, best_n = UINT64_MAX, empty_t = UINT64_MAX, empty_n = UINT64_MAX;
    spin2(iters);
    for (int rep = 0; rep < 5; rep++) {
        span_begin(&e); span_end(&e);
        if (e.t1 - e.t0 < empty_t) empty_t = e.t1 - e.t0;
        if (e.n1 - e.n0 < empty_n) empty_n = e.n1 - e.n0;
        span_begin(&s); spin2(iters); span_end(&s);
        if (s.t1 - s.t0 < best_t) best_t = s.t1 - s.t0;
        if (s.n1 - s.n0 < best_n) best_n = s.n1 - s.n0;
    }
    char extra[256];
    snprintf(extra, sizeof extra, "insns=%ld min_tsc=%llu min_ns=%llu empty_tsc=%llu empty_ns=%llu",
             2 * iters, (unsigned long long)best_t, (unsigned long long)best_n,
             (unsigned long long)empty_t, (unsigned long long)empty_n);
    report("calib", iters, &s, 1, extra);
}

/* ---- getpid: the null syscall ---- */
static void bench_getpid(long iters)
{
    struct chunked c;
    chunked_init(&c, iters);
    for (long i = 0; i < iters / 10 + 100; i++)
        syscall(SYS_getpid);
    RUN_CHUNKED(&c, syscall(SYS_getpid));
    report_chunked("getpid", &c, 1, "");
}

/* ---- signal: kill(getpid(), SIGUSR1) round trip ---- */
static volatile long sig_count;

static void on_signal(int sig)
{
    (void)sig;
    sig_count++;
}

static void bench_signal(long iters)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    pid_t pid = getpid();
    for (long i = 0; i < iters / 10 + 100; i++)
        syscall(SYS_kill, pid, SIGUSR1);
    sig_count = 0;
    struct chunked c;
    chunked_init(&c, iters);
    RUN_CHUNKED(&c, syscall(SYS_kill, pid, SIGUSR1));
    char extra[64];
    snprintf(extra, sizeof extra, "delivered=%ld", sig_count);
    report_chunked("signal", &c, 1, extra);
}

/* ---- alarm: SIGALRM from an interval timer into a TSC-reading busy loop ---- */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void bench_alarm(long iters, long interval_us)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    uint64_t *gaps = calloc((size_t)iters, sizeof *gaps);
    if (!gaps) {
        out("ERROR name=alarm msg=calloc");
        return;
    }
    /* Calibrate the undisturbed loop step: the minimum delta between two reads. */
    uint64_t step = UINT64_MAX, prev = tsc();
    for (int i = 0; i < 100000; i++) {
        uint64_t t = tsc();
        if (t - prev < step) step = t - prev;
        prev = t;
    }
    uint64_t thresh = step * 20 < 500 ? 500 : step * 20;

    struct itimerval it = { { 0, interval_us }, { 0, interval_us } };
    sig_count = 0;
    long last = 0, n = 0, other = 0, multi = 0;
    uint64_t other_sum = 0, sig_sum = 0;
    struct span s;
    setitimer(ITIMER_REAL, &it, NULL);
    span_begin(&s);
    prev = tsc();
    while (n < iters) {
        uint64_t t = tsc();
        long c = sig_count;          /* read after t: a handler that ran before */
        uint64_t d = t - prev;       /* t is visible here, one that ran after t */
        if (d > thresh) {            /* shows up with the next (big) gap        */
            if (c == last + 1) {
                gaps[n++] = d - step;
                sig_sum += d - step;
            } else if (c == last) {
                other++;
                other_sum += d - step;
            } else {
                multi++;             /* two signals in one gap: not counted */
            }
            last = c;
        }
        prev = t;
    }
    span_end(&s);
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);

    qsort(gaps, (size_t)n, sizeof *gaps, cmp_u64);
    double ns_per_tsc = (double)(s.n1 - s.n0) / (double)(s.t1 - s.t0);
    double mean = (double)sig_sum / (double)n;
    /* Headline: the median event (robust against host hiccups under plain TCG). */
    out("RESULT name=alarm iters=%ld tsc_per_iter=%llu ns_per_iter=%.3f mean_tsc_per_iter=%.3f "
        "mean_ns_per_iter=%.3f min_tsc=%llu step_tsc=%llu interval_us=%ld other_gaps=%ld other_mean_tsc=%.1f "
        "multi=%ld tsc_total=%llu ns_total=%llu",
        n, (unsigned long long)gaps[n / 2], (double)gaps[n / 2] * ns_per_tsc, mean, mean * ns_per_tsc,
        (unsigned long long)gaps[0], (unsigned long long)step, interval_us, other,
        other ? (double)other_sum / other : 0.0, multi,
        (unsigned long long)(s.t1 - s.t0), (unsigned long long)(s.n1 - s.n0));
    free(gaps);
}

/* ---- futex: two threads ping-pong ---- */
static volatile int ball; /* 0: main's turn, 1: partner's turn */
static long pp_iters;

static inline long futex(volatile int *addr, int op, int val)
{
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static void pingpong_partner_loop(long n)
{
    for (long i = 0; i < n; i++) {
        while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) != 1)
            futex(&ball, FUTEX_WAIT_PRIVATE, 0);
        __atomic_store_n(&ball, 0, __ATOMIC_RELEASE);
        futex(&ball, FUTEX_WAKE_PRIVATE, 1);
    }
}

static void pingpong_main_loop(long n)
{
    for (long i = 0; i < n; i++) {
        __atomic_store_n(&ball, 1, __ATOMIC_RELEASE);
        futex(&ball, FUTEX_WAKE_PRIVATE, 1);
        while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) != 0)
            futex(&ball, FUTEX_WAIT_PRIVATE, 1);
    }
}

static void *partner(void *arg)
{
    (void)arg;
    pingpong_partner_loop(pp_iters);
    return NULL;
}

static long ctx_switches(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    long v = 0, nv = 0;
    char *p = strstr(buf, "\nvoluntary_ctxt_switches:");
    if (p) v = strtol(p + 25, NULL, 10);
    p = strstr(buf, "\nnonvoluntary_ctxt_switches:");
    if (p) nv = strtol(p + 28, NULL, 10);
    return v + nv;
}

static void bench_futex(long iters)
{
    long warm = iters / 10 + 100;
    pthread_t th;
    struct chunked c;
    chunked_init(&c, iters);
    ball = 0;
    pp_iters = warm + c.iters;
    if (pthread_create(&th, NULL, partner, NULL) != 0) {
        out("ERROR name=futex msg=pthread_create");
        return;
    }
    pingpong_main_loop(warm);
    long cs0 = ctx_switches();
    RUN_CHUNKED(&c, pingpong_main_loop(1));
    long cs1 = ctx_switches();
    pthread_join(th, NULL);
    char extra[96];
    snprintf(extra, sizeof extra, "round_trips=%ld main_ctxt_switches=%ld", c.iters,
             cs0 >= 0 && cs1 >= 0 ? cs1 - cs0 : -1);
    /* A round trip is two switches (main -> partner -> main). */
    report_chunked("futex", &c, 2, extra);
}

/* ---- pipe: request/response between two processes ---- */
static void pipe_child(int rd, int wr, long n)
{
    char b;
    for (long i = 0; i < n; i++)
        if (read(rd, &b, 1) != 1 || write(wr, &b, 1) != 1)
            _exit(1);
    _exit(0);
}

static int pipe_round_fds[2];

static void pipe_round(void)
{
    char b = 'x';
    if (write(pipe_round_fds[1], &b, 1) != 1 || read(pipe_round_fds[0], &b, 1) != 1)
        out("ERROR name=pipe msg=io");
}

static void bench_pipe(long iters)
{
    int req[2], ans[2];
    long warm = iters / 10 + 100;
    struct chunked c;
    chunked_init(&c, iters);
    if (pipe(req) || pipe(ans)) {
        out("ERROR name=pipe msg=pipe");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(req[1]);
        close(ans[0]);
        pipe_child(req[0], ans[1], warm + c.iters);
    }
    close(req[0]);
    close(ans[1]);
    pipe_round_fds[0] = ans[0];
    pipe_round_fds[1] = req[1];
    for (long i = 0; i < warm; i++)
        pipe_round();
    RUN_CHUNKED(&c, pipe_round());
    int status = -1;
    waitpid(pid, &status, 0);
    close(ans[0]);
    close(req[1]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        out("ERROR name=pipe msg=child");
    report_chunked("pipe", &c, 1, "processes=2");
}

/* ---- wakeall: wake 63 futex waiters at once, until all wait again ---- */
#define WAKEALL_THREADS 63
static volatile int wa_gen, wa_stop, wa_ready;

static void *wakeall_waiter(void *arg)
{
    (void)arg;
    for (;;) {
        int g = __atomic_load_n(&wa_gen, __ATOMIC_SEQ_CST);
        /* announced: the next thing this thread does is wait (or see gen moved) */
        if (__atomic_add_fetch(&wa_ready, 1, __ATOMIC_SEQ_CST) % WAKEALL_THREADS == 0)
            futex(&wa_ready, FUTEX_WAKE_PRIVATE, 1);
        while (__atomic_load_n(&wa_gen, __ATOMIC_SEQ_CST) == g)
            futex(&wa_gen, FUTEX_WAIT_PRIVATE, g);
        if (wa_stop)
            return NULL;
    }
}

/* Until wa_ready reaches target (the last waiter to announce itself wakes us). */
static void wakeall_until_ready(int target)
{
    int seen;
    while ((seen = __atomic_load_n(&wa_ready, __ATOMIC_SEQ_CST)) < target)
        futex(&wa_ready, FUTEX_WAIT_PRIVATE, seen);
}

static void bench_wakeall(long events)
{
    pthread_t th[WAKEALL_THREADS];
    for (int i = 0; i < WAKEALL_THREADS; i++)
        if (pthread_create(&th[i], NULL, wakeall_waiter, NULL) != 0) {
            out("ERROR name=wakeall msg=pthread_create");
            return;
        }
    uint64_t *gaps = calloc((size_t)events, sizeof *gaps);
    struct span s;
    span_begin(&s);
    for (long e = 0; e < events + 10; e++) {
        wakeall_until_ready((int)((e + 1) * WAKEALL_THREADS));
        usleep(200);                 /* every waiter inside FUTEX_WAIT, the machine quiet */
        uint64_t t0 = tsc();
        __atomic_add_fetch(&wa_gen, 1, __ATOMIC_SEQ_CST);
        futex(&wa_gen, FUTEX_WAKE_PRIVATE, 0x7fffffff);
        wakeall_until_ready((int)((e + 2) * WAKEALL_THREADS));   /* all woken, back at their wait */
        if (e >= 10)
            gaps[e - 10] = tsc() - t0;
    }
    span_end(&s);
    wa_stop = 1;
    __atomic_add_fetch(&wa_gen, 1, __ATOMIC_SEQ_CST);
    futex(&wa_gen, FUTEX_WAKE_PRIVATE, 0x7fffffff);
    for (int i = 0; i < WAKEALL_THREADS; i++)
        pthread_join(th[i], NULL);
    qsort(gaps, (size_t)events, sizeof *gaps, cmp_u64);
    out("RESULT name=wakeall iters=%ld tsc_per_iter=%llu ns_per_iter=0 min_tsc=%llu threads=%d "
        "tsc_total=%llu ns_total=%llu", events, (unsigned long long)gaps[events / 2],
        (unsigned long long)gaps[0], WAKEALL_THREADS, (unsigned long long)(s.t1 - s.t0),
        (unsigned long long)(s.n1 - s.n0));
    free(gaps);
}

/* ---- init plumbing ---- */
static void setup_console(void)
{
    if (fcntl(1, F_GETFD) != -1)
        return;
    /* No /dev/console in the initramfs: mount devtmpfs and open it ourselves. */
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int fd = open("/dev/console", O_RDWR);
    if (fd < 0)
        fd = open("/dev/ttyS0", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
        if (fd > 2) close(fd);
    }
}

static void print_file_line(const char *key, const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == ' ') *p = (*p == ' ' ? '_' : 0);
    out("INFO %s=%s", key, buf);
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : dflt;
}

static int selected(const char *list, const char *name)
{
    if (!strcmp(list, "all"))
        return 1;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *q = strchr(p, ',');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == len && !strncmp(p, name, len))
            return 1;
        p += l + (q ? 1 : 0);
    }
    return 0;
}

int main(void)
{
    setup_console();
    mkdir("/proc", 0555);
    mkdir("/sys", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);

    const char *list = getenv("bench");
    if (!list || !*list)
        list = "all";
    long iters = env_long("iters", 100000);
    out("PEER start bench=%s iters=%ld", list, iters);
    print_file_line("clocksource", "/sys/devices/system/clocksource/clocksource0/current_clocksource");
    print_file_line("meltdown", "/sys/devices/system/cpu/vulnerabilities/meltdown");
    print_file_line("spectre_v2", "/sys/devices/system/cpu/vulnerabilities/spectre_v2");

    if (selected(list, "calib"))
        bench_calib(env_long("calib_iters", 1000000));
    if (selected(list, "getpid"))
        bench_getpid(iters);
    if (selected(list, "signal"))
        bench_signal(iters);
    if (selected(list, "alarm"))
        bench_alarm(env_long("alarm_events", 2000), env_long("alarm_us", 200));
    if (selected(list, "futex"))
        bench_futex(iters);
    if (selected(list, "pipe"))
        bench_pipe(iters);
    if (selected(list, "wakeall"))
        bench_wakeall(iters < 2000 ? iters : 2000);

    out("DONE");
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}
