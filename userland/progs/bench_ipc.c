// bench_ipc[:iters]: request/response and futex handoff between two
// environments, to set beside Linux's pipe ping-pong and futex ping-pong
// (toolchain/peer/bench.c, `pipe` and `futex`).
//
//   ipc_rr    a round trip through a server environment: the client's
//             ipc_call (ipc_send + ipc_wait, include/ipc.h), the server's
//             ipc_receive + ipc_answer; per round trip
//   futex_pp  two environments hand a turn back and forth on a word in a
//             shared region with the kernel's futex_wait / futex_wake (no
//             runtime in between, as the Linux loop calls SYS_futex); per
//             switch (half a round trip)
// Figures come from the fastest of CHUNKS equal chunks, in the Linux peer's
// RESULT format (bench.h). The server is this program's child
// (`bench_ipc:serve:<iters>`), given the region.
#include <bench.h>
#include <ipc.h>
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNKS   10
#define CHAN_AT  0x50000000UL
#define SLOTS    4

struct region {
    volatile uint32_t turn;             // futex_pp: 0 the client's turn, 1 the server's
    uint32_t pad[15];
    struct ipc_chan chan;               // must come last (its slots follow it)
};

static struct region *r;

static void pp_wait_turn(uint32_t mine)
{
    uint32_t t;
    while ((t = __atomic_load_n(&r->turn, __ATOMIC_ACQUIRE)) != mine) {
        long e = sys_futex_wait(&r->turn, t, FUTEX_NO_DEADLINE);
        if (e != -EAGAIN) {
            printf("bench_ipc: FAIL futex_wait returned %ld\n", e);
            exit(1);
        }
    }
}

static void pp_give_turn(uint32_t to)
{
    __atomic_store_n(&r->turn, to, __ATOMIC_RELEASE);
    sys_futex_wake(&r->turn, 1);
}

static int serve(unsigned long rounds)
{
    if (sys_shm_map(SHM_GIVEN(0), CHAN_AT, PROT_READ | PROT_WRITE) < 0) {
        printf("bench_ipc: FAIL serve shm_map\n");
        return 1;
    }
    r = (struct region *)CHAN_AT;
    for (unsigned long i = 0; i < rounds; i++) {
        struct ipc_request req;
        if (ipc_receive(&r->chan, &req, FUTEX_NO_DEADLINE) < 0)
            return 1;
        struct ipc_answer a = { 0, { req.msg.arg[0] + 1, 0 }, 0 };
        if (ipc_answer(&r->chan, &req, &a) < 0)
            return 1;
    }
    for (unsigned long i = 0; i < rounds; i++) {
        pp_wait_turn(1);
        pp_give_turn(0);
    }
    return 0;
}

static void ipc_round(void)
{
    static uint64_t n;
    struct ipc_msg m = { 1, { n, 0, 0 } };
    struct ipc_answer a;
    if (ipc_call(&r->chan, &m, &a, FUTEX_NO_DEADLINE) < 0 || a.value[0] != n + 1) {
        printf("bench_ipc: FAIL ipc_call %lu\n", (unsigned long)n);
        exit(1);
    }
    n++;
}

static void pp_round(void)
{
    pp_give_turn(1);
    pp_wait_turn(0);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "serve") == 0)
        return serve(strtoul(argv[2], 0, 10));
    long iters = argc > 1 ? (long)strtoul(argv[1], 0, 10) : 20000;
    long per_chunk = iters / CHUNKS > 0 ? iters / CHUNKS : 1;
    long warm = per_chunk, rounds = warm + per_chunk * CHUNKS;
    long h = sys_shm_create(sizeof(struct region) + SLOTS * sizeof(struct ipc_slot));
    if (h < 0 || sys_shm_map(h, CHAN_AT, PROT_READ | PROT_WRITE) < 0) {
        printf("bench_ipc: FAIL region\n");
        return 1;
    }
    r = (struct region *)CHAN_AT;
    ipc_chan_init(&r->chan, SLOTS);
    char n[24];
    snprintf(n, sizeof(n), "%ld", rounds);
    char *cargv[] = { "bench_ipc", "serve", n, NULL };
    long id = sys_spawn_shared("bench_ipc", cargv, 3, &h, 1);
    if (id < 0) {
        printf("bench_ipc: FAIL spawn_shared: %s\n", errno_name(id));
        return 1;
    }
    for (long i = 0; i < warm; i++)
        ipc_round();
    bench_chunks("ipc_rr", ipc_round, per_chunk, CHUNKS, 1);
    for (long i = 0; i < warm; i++)
        pp_round();
    bench_chunks("futex_pp", pp_round, per_chunk, CHUNKS, 2);
    int status = -1;
    return sys_wait(id, &status) != id || status != 0;
}
