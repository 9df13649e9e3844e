// blocking: the two blocking calls, wait and sleep_until, called directly
// (no thread runtime between them and the kernel, which would re-check a
// deadline or retry a wait and so hide a broken kernel call), with the
// exact results docs/abi.md and docs/restart.md promise:
//   sleep_until(deadline) returns 0, never before clock_ns() >= deadline,
//     and got there by really blocking, once (act_stats().blocked: only
//     the deadline wakes a sleeper);
//     a deadline already passed returns 0 at once;
//   wait(child, &status) returns the child's id and stores its status,
//     after blocking until it ended; a wakeup by another child's end
//     reruns the call, which blocks again.
// A blocked call is rewound onto its `syscall` instruction and rerun when
// woken: if the rewind is lost, the call "returns" its own number instead.
// One line per check (check.h), then `blocking: <n> failed`; exit status n.
//
// blocking:child:<ms>:<status> is the child it waits for: sleeps `ms` of
// guest time, then exits with `status`.
#include <check.h>
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>

#define MS 1000000UL
#define UNTOUCHED 999           // no status wait() stores (0..255, 256 + vector, 512)

static uint64_t blocked(void)
{
    struct act_stats s;
    long r = sys_raw(SYS_act_stats, (long)&s, 0, 0, 0, 0, 0);
    return r == 0 ? s.blocked : 0;
}

static long spawn_child(unsigned long ms, int status)
{
    char ms_arg[24], status_arg[24];
    snprintf(ms_arg, sizeof(ms_arg), "%lu", ms);
    snprintf(status_arg, sizeof(status_arg), "%d", status);
    char *argv[] = { "blocking", "child", ms_arg, status_arg, NULL };
    long id = sys_spawn("blocking", argv, 4);
    check("spawn(blocking:child) succeeds", id > 0, 1);
    return id;
}

static void sleep_checks(void)
{
    char what[96];
    uint64_t before = blocked();
    check("sleep_until(a deadline already passed) returns 0", sys_sleep_until(1), 0);
    check("sleep_until(a deadline already passed) does not block", (long)(blocked() - before), 0);
    // Below one tick, across one, across several (hz=100: 10 ms a tick);
    // none of them a whole number of ticks.
    static const unsigned long ms[] = { 1, 13, 27 };
    for (unsigned i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        uint64_t deadline = (uint64_t)sys_clock_ns() + ms[i] * MS;
        before = blocked();
        long r = sys_sleep_until(deadline);
        uint64_t now = (uint64_t)sys_clock_ns();
        uint64_t blocks = blocked() - before;
        snprintf(what, sizeof(what), "sleep_until(now + %lu ms) returns 0", ms[i]);
        check(what, r, 0);
        snprintf(what, sizeof(what), "sleep_until(now + %lu ms): ns short of the deadline on return",
                 ms[i]);
        check(what, now < deadline ? (long)(deadline - now) : 0, 0);
        // Only its deadline wakes a sleeper (sched_tick; docs/restart.md): one
        // block, not zero (it never slept) and not two (woken too early).
        snprintf(what, sizeof(what), "sleep_until(now + %lu ms) blocked exactly once (act_stats blocked)",
                 ms[i]);
        check(what, (long)blocks, 1);
    }
}

static void wait_checks(void)
{
    int status = UNTOUCHED;
    long a = spawn_child(20, 42);
    uint64_t before = blocked();
    check("wait(child) returns the child's id", sys_wait(a, &status), a);
    check("wait(child) stores the child's status", status, 42);
    check("wait(child) blocked until the child ended", blocked() - before >= 1, 1);
    check("wait(child) again: it was reaped", sys_wait(a, &status), -ECHILD);

    // b ends first and wakes us (every child's end wakes its parent): the
    // rerun of wait(a) must block again, and b stays for the next wait.
    a = spawn_child(60, 5);
    long b = spawn_child(5, 6);
    status = UNTOUCHED;
    before = blocked();
    check("wait(first child) across the other child's end returns the first", sys_wait(a, &status), a);
    check("wait(first child) across the other child's end stores its status", status, 5);
    check("wait(first child) blocked again after the other child's end woke it",
          blocked() - before >= 2, 1);
    status = UNTOUCHED;
    check("wait(-1) then returns the other child", sys_wait(-1, &status), b);
    check("wait(-1) stores the other child's status", status, 6);

    long c = spawn_child(5, 7);
    check("wait(-1, NULL) returns the child's id", sys_wait(-1, NULL), c);
    check("wait(-1) without children", sys_wait(-1, &status), -ECHILD);
}

int main(int argc, char **argv)
{
    if (argc == 4 && argv[1][0] == 'c') {       // blocking:child:<ms>:<status>
        sys_sleep_until((uint64_t)sys_clock_ns() + strtoul(argv[2], 0, 10) * MS);
        return atoi(argv[3]);
    }
    sleep_checks();
    wait_checks();
    printf("blocking: %d failed\n", check_failures);
    return check_failures;
}
