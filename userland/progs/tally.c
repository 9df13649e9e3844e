// tally[:mode[:spin_us[:sleep_us]]]: one counted step around one blocking
// call, written right (mode `ok`, the default) or with a classic restart bug
// (mode `buggy`), so that `invoke experiment instant --workload tally_buggy`
// has trials that fail only when their restart falls in one window of
// guest time, and `replay`/`bisect` have something real to find
// (docs/toolkit.md, "A workload that fails on purpose").
//
// The run: spin `spin_us` (default 1000) µs of guest time, one sys_sleep_until
// `sleep_us` (default 2000) µs ahead, spin `spin_us` again. It prints
//   tally: sleep_until from <ns> to <ns>      (the guest clock: the window)
//   tally: steps=<n> want=1
//   tally: restarts=<restarted upcalls seen>
// and exit 0 iff steps == 1.
//
// ok: the step is counted after the call returns. An in-place restart
// reruns the blocked call from its `syscall` instruction (docs/restart.md),
// to the same absolute deadline, so the step is counted once whenever the
// restart comes.
//
// buggy: the step is counted *before* the call, and a restart seen across
// the call is taken for an aborted call (EINTR habits): the step starts
// over and is counted again. The count lives outside the part that is
// safe to repeat, so a restart while the program waits in the call makes
// steps=2; one during either spin (or before the program, or after it)
// does nothing. The window is [the call blocks, the deadline].
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread.h>

static unsigned long restarts(void)
{
    struct thread_stats st;
    thread_get_stats(&st);
    return (unsigned long)st.restarts;
}

// Compute, not wait: the clock_ns call never blocks.
static void spin(unsigned long us)
{
    uint64_t until = (uint64_t)sys_clock_ns() + us * 1000;
    while ((uint64_t)sys_clock_ns() < until)
        ;
}

static unsigned long step_ok(uint64_t deadline)
{
    unsigned long steps = 0;
    long r = sys_sleep_until(deadline);
    if (r != 0)
        printf("tally: FAIL sleep_until returned %ld (%s)\n", r, errno_name(r));
    steps++;
    return steps;
}

static unsigned long step_buggy(uint64_t deadline)
{
    unsigned long steps = 0;
    for (;;) {
        steps++;                        // the bug: counted before the call...
        unsigned long seen = restarts();
        long r = sys_sleep_until(deadline);
        if (r != 0)
            printf("tally: FAIL sleep_until returned %ld (%s)\n", r, errno_name(r));
        if (restarts() == seen)
            return steps;
        // ...and a restart taken for an aborted call: the step again.
    }
}

int main(int argc, char **argv)
{
    int buggy = argc > 1 && strcmp(argv[1], "buggy") == 0;
    if (argc > 1 && !buggy && strcmp(argv[1], "ok") != 0) {
        printf("tally: FAIL mode %s: want ok or buggy\n", argv[1]);
        return 2;
    }
    unsigned long spin_us = argc > 2 ? strtoul(argv[2], 0, 10) : 1000;
    unsigned long sleep_us = argc > 3 ? strtoul(argv[3], 0, 10) : 2000;
    spin(spin_us);
    uint64_t now = (uint64_t)sys_clock_ns(), deadline = now + sleep_us * 1000;
    printf("tally: sleep_until from %lu to %lu\n", (unsigned long)now, (unsigned long)deadline);
    unsigned long steps = buggy ? step_buggy(deadline) : step_ok(deadline);
    printf("tally: returned at %lu\n", (unsigned long)sys_clock_ns());
    spin(spin_us);
    printf("tally: steps=%lu want=1\n", steps);
    printf("tally: restarts=%lu\n", restarts());
    return steps != 1;
}
