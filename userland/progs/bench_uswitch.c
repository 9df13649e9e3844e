// bench_uswitch[:iters]: the cost of a user-level thread switch, to set
// beside Linux's futex ping-pong (toolchain/peer/bench.c, `futex`).
//
// Two threads, main and a partner, and nothing else runnable:
//   uswitch       both call thread_yield() in a loop, so every yield is one
//                 switch to the other thread;
//   uswitch_cond  a real handoff, as the futex bench does: a turn variable
//                 under a mutex, each side waits on a condition variable
//                 until it is its turn, flips it and signals.
// Figures are per switch (half a round trip), from the fastest of CHUNKS
// equal chunks (one no timer upcall landed in), printed as the Linux peer
// prints them:
//   RESULT name=uswitch iters=N tsc_per_iter=X ns_per_iter=Y tsc_total=T ns_total=S
#include <bench.h>
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <thread.h>

#define CHUNKS 10

static long per_chunk;
static struct mutex lock = MUTEX_INIT;
static struct cond turn_changed = COND_INIT;
static int turn;                        // whose turn: 0 main, 1 partner

static void pass_turn(int me)
{
    mutex_lock(&lock);
    while (turn != me)
        cond_wait(&turn_changed, &lock);
    turn = !me;
    cond_signal(&turn_changed);
    mutex_unlock(&lock);
}

// One round trip of each kind: two switches.
static void round_yield(void) { thread_yield(); }
static void round_cond(void) { pass_turn(0); }

static void *partner_yield(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_chunk * CHUNKS + 1; i++)
        thread_yield();
    return NULL;
}

static void *partner_cond(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_chunk * CHUNKS; i++)
        pass_turn(1);
    return NULL;
}

static void measure(const char *name, void (*round)(void), void *(*partner)(void *))
{
    struct thread *t;
    if (thread_create(&t, partner, NULL)) {
        printf("bench_uswitch: thread_create failed\n");
        exit(1);
    }
    thread_yield();                     // let the partner reach its loop
    bench_chunks(name, round, per_chunk, CHUNKS, 2);
    thread_join(t, NULL);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? (long)strtoul(argv[1], 0, 10) : 100000;
    per_chunk = iters >= CHUNKS ? iters / CHUNKS : 1;
    measure("uswitch", round_yield, partner_yield);
    measure("uswitch_cond", round_cond, partner_cond);
    return 0;
}
