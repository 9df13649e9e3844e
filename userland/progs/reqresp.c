// reqresp[:requests[:clients[:threads[:slots[:batch]]]]]: request/response
// through a server environment over a channel (include/ipc.h), counted on
// both sides; run under in-place restarts it shows that every request is
// answered exactly once (docs/restart.md, "Split IPC").
//
// This program is the server: it creates the channel and a ledger region,
// spawns `clients` client environments (default 2; `reqresp:client:...`,
// with both regions) of `threads` threads each (default 2), and answers
// `requests` requests (default 2,000) through `slots` slots (default 16).
// The requests are numbered 1..requests (their argument) and shared out
// among the client threads; each thread sends up to `batch` (default 4)
// with ipc_send (fewer when the ring is full: then it consumes its answers
// first, or waits for room with ipc_wait_room if it holds none), then waits
// for each answer with ipc_wait. The answer to
// argument a is value_of(a) and a itself; a client checks both, checks
// that the answer's serial is its id, and counts the id in the ledger (a
// byte per id, in shared memory). At the end the server checks that every
// id 1..requests was counted exactly once and that the clients' checksum is
// the expected one. Lines:
//   reqresp: client <k> sent=<n> received=<n> wrong=<n> restarts=<n> futex_waits=<n> futex_sleeps=<n>
//   reqresp: server answered=<n> refused=<n> restarts=<n> futex_waits=<n> futex_sleeps=<n>
//   reqresp: final requests=<n> answered=<n> received=<n> lost=<n> doubled=<n> wrong=<n> checksum=<hex>
//   reqresp: FAIL <what>
// The final line depends only on `requests` when all is well (the checksum
// is over the arguments and answers, not over timing), which is what
// `invoke experiment loadvm` compares. Exits 0 iff nothing was lost,
// doubled or wrong, the counts agree and the checksum is the expected one.
#include <ipc.h>
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread.h>

#define CHAN_AT       0x50000000UL
#define LEDGER_AT     0x51000000UL
#define CLIENTS_MAX   8
#define THREADS_MAX   8
#define BATCH_MAX     16
#define WAIT_NS       10000000000UL     // 10 s of guest time: an answer that takes longer is lost

struct ledger {
    volatile uint64_t sent[CLIENTS_MAX];
    volatile uint64_t received[CLIENTS_MAX];
    volatile uint64_t wrong[CLIENTS_MAX];
    volatile uint64_t checksum[CLIENTS_MAX];
    volatile uint8_t count[];           // count[id]: answers received for id
};

static uint64_t hash(uint64_t x)        // splitmix64's finalizer
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t value_of(uint64_t arg) { return hash(arg * 3 + 1); }
static uint64_t digest(uint64_t arg, uint64_t value) { return hash(arg ^ hash(value)); }
static uint64_t deadline(void) { return (uint64_t)sys_clock_ns() + WAIT_NS; }

// "restarts=.. futex_waits=.. futex_sleeps=.." of this program's runtime.
static void runtime_stats(char *buf, unsigned long size)
{
    struct thread_stats st;
    thread_get_stats(&st);
    snprintf(buf, size, "restarts=%lu futex_waits=%lu futex_sleeps=%lu", (unsigned long)st.restarts,
             (unsigned long)st.futex_waits, (unsigned long)st.futex_sleeps);
}

// ---------------------------------------------------------------- clients

static struct ipc_chan *ch;
static struct ledger *ledger;
static unsigned long total, clients, threads, batch;
static long client_no;

struct worker {
    unsigned long lo, hi;               // its arguments: lo+1 .. hi
    uint64_t sent, received, wrong, sum;
};

static void fail(struct worker *w, const char *what, long r, uint64_t arg)
{
    printf("reqresp: FAIL client %ld %s: %ld (%s), argument %lu\n", client_no, what, r,
           errno_name(r), (unsigned long)arg);
    w->wrong++;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (unsigned long next = w->lo; next < w->hi;) {
        unsigned long m = w->hi - next < batch ? w->hi - next : batch;
        int64_t ids[BATCH_MAX];
        uint64_t args[BATCH_MAX];
        unsigned long sent = 0;
        while (sent < m) {
            struct ipc_msg msg = { 1, { next + 1, client_no, 0 } };
            int64_t id = ipc_send(ch, &msg);
            if (id == -EAGAIN && sent > 0)
                break;                  // consume our own answers before waiting for room
            if (id == -EAGAIN) {
                int r = ipc_wait_room(ch, deadline());
                if (r < 0) {
                    fail(w, "ipc_wait_room", r, next + 1);
                    return NULL;
                }
                continue;
            }
            if (id < 0) {
                fail(w, "ipc_send", id, next + 1);
                return NULL;
            }
            args[sent] = ++next;
            ids[sent++] = id;
            w->sent++;
        }
        m = sent;
        for (unsigned long j = 0; j < m; j++) {
            struct ipc_answer a;
            int r = ipc_wait(ch, (uint64_t)ids[j], &a, deadline());
            if (r < 0) {
                fail(w, r == -ETIMEDOUT ? "lost: no answer in 10 s" : "ipc_wait", r, args[j]);
                continue;
            }
            if (a.value[0] != value_of(args[j]) || a.value[1] != args[j] ||
                a.serial != (uint64_t)ids[j] || a.ret != 0) {
                printf("reqresp: FAIL client %ld wrong answer to argument %lu (id %ld): ret=%ld "
                       "value=%lx/%lu serial=%lu\n", client_no, (unsigned long)args[j], (long)ids[j],
                       (long)a.ret, (unsigned long)a.value[0], (unsigned long)a.value[1],
                       (unsigned long)a.serial);
                w->wrong++;
                continue;
            }
            __atomic_add_fetch(&ledger->count[ids[j]], 1, __ATOMIC_SEQ_CST);
            w->received++;
            w->sum += digest(args[j], a.value[0]);
        }
        // The answer was delivered once: waiting for it again is refused.
        if ((ipc_wait(ch, (uint64_t)ids[0], &(struct ipc_answer){ 0 }, IPC_POLL)) != -EINVAL)
            fail(w, "a consumed answer was delivered again", 0, args[0]);
    }
    return NULL;
}

static int client_main(void)
{
    int r = ipc_chan_attach(SHM_GIVEN(0), CHAN_AT, &ch);
    long l = sys_shm_map(SHM_GIVEN(1), LEDGER_AT, PROT_READ | PROT_WRITE);
    if (r < 0 || l < 0) {
        printf("reqresp: FAIL client %ld attach: %s %s\n", client_no, errno_name(r), errno_name(l));
        return 1;
    }
    ledger = (struct ledger *)LEDGER_AT;
    struct worker w[THREADS_MAX];
    struct thread *t[THREADS_MAX];
    unsigned long workers = clients * threads;
    for (unsigned long i = 0; i < threads; i++) {
        unsigned long k = (unsigned long)client_no * threads + i;
        w[i] = (struct worker){ total * k / workers, total * (k + 1) / workers, 0, 0, 0, 0 };
        if (i && thread_create(&t[i], work, &w[i]) < 0) {
            printf("reqresp: FAIL client %ld thread_create\n", client_no);
            return 1;
        }
    }
    work(&w[0]);
    uint64_t sent = w[0].sent, received = w[0].received, wrong = w[0].wrong, sum = w[0].sum;
    for (unsigned long i = 1; i < threads; i++) {
        thread_join(t[i], NULL);
        sent += w[i].sent, received += w[i].received, wrong += w[i].wrong, sum += w[i].sum;
    }
    ledger->sent[client_no] = sent;
    ledger->received[client_no] = received;
    ledger->wrong[client_no] = wrong;
    ledger->checksum[client_no] = sum;
    char st[128];
    runtime_stats(st, sizeof(st));
    printf("reqresp: client %ld sent=%lu received=%lu wrong=%lu %s\n", client_no, (unsigned long)sent,
           (unsigned long)received, (unsigned long)wrong, st);
    return wrong != 0;
}

// ----------------------------------------------------------------- server

static int server_main(unsigned long slots)
{
    long hc, hl;
    int r = ipc_chan_create(slots, CHAN_AT, &ch, &hc);
    unsigned long ledger_size = sizeof(struct ledger) + total + 1;
    hl = sys_shm_create(ledger_size);
    long l = hl < 0 ? hl : sys_shm_map(hl, LEDGER_AT, PROT_READ | PROT_WRITE);
    if (r < 0 || l < 0) {
        printf("reqresp: FAIL server regions: %s %s\n", errno_name(r), errno_name(l));
        return 1;
    }
    ledger = (struct ledger *)LEDGER_AT;
    long ids[CLIENTS_MAX], handles[2] = { hc, hl };
    for (unsigned long k = 0; k < clients; k++) {
        char a[5][24];
        snprintf(a[0], 24, "%lu", k);
        snprintf(a[1], 24, "%lu", clients);
        snprintf(a[2], 24, "%lu", threads);
        snprintf(a[3], 24, "%lu", total);
        snprintf(a[4], 24, "%lu", batch);
        char *argv[] = { "reqresp", "client", a[0], a[1], a[2], a[3], a[4], NULL };
        ids[k] = sys_spawn_shared("reqresp", argv, 7, handles, 2);
        if (ids[k] < 0) {
            printf("reqresp: FAIL spawn_shared: %s\n", errno_name(ids[k]));
            return 1;
        }
    }
    sys_shm_close(hc);
    sys_shm_close(hl);

    unsigned long answered = 0, bad = 0;
    while (answered < total) {
        struct ipc_request req;
        r = ipc_receive(ch, &req, deadline());
        if (r < 0) {
            printf("reqresp: FAIL server ipc_receive: %d (%s) after %lu answers; next_id=%lu "
                   "served=%lu posted=%u\n", r, errno_name(r), answered, (unsigned long)ch->next_id,
                   (unsigned long)ch->served, ch->posted);
            for (unsigned long i = 0; i < ch->nslots; i++)
                printf("reqresp: slot %lu state=%u id=%lu waiters=%u\n", i, ch->slot[i].state,
                       (unsigned long)ch->slot[i].id, ch->slot[i].waiters);
            bad++;
            break;
        }
        uint64_t arg = req.msg.arg[0];
        struct ipc_answer a = { 0, { value_of(arg), arg }, 0 };
        r = ipc_answer(ch, &req, &a);
        if (r < 0) {
            printf("reqresp: FAIL server ipc_answer %lu: %s\n", (unsigned long)req.id, errno_name(r));
            bad++;
            break;
        }
        answered++;
        // Answering the same request again must be refused.
        if (answered % 997 == 0 && ipc_answer(ch, &req, &a) != -EINVAL) {
            printf("reqresp: FAIL server answered id %lu twice\n", (unsigned long)req.id);
            bad++;
        }
    }
    char st[128];
    runtime_stats(st, sizeof(st));
    printf("reqresp: server answered=%lu refused=%lu %s\n", answered,
           (unsigned long)ch->refused - answered / 997, st);

    int failed_clients = 0;
    for (unsigned long k = 0; k < clients; k++) {
        int status = -1;
        long got = sys_wait(ids[k], &status);
        if (got != ids[k] || status != 0) {
            printf("reqresp: FAIL client %lu: wait returned %ld (%s), status %d\n", k, got,
                   errno_name(got), status);
            failed_clients++;
        }
    }
    unsigned long received = 0, wrong = 0, lost = 0, doubled = 0;
    uint64_t sum = 0, want = 0;
    for (unsigned long k = 0; k < clients; k++) {
        received += ledger->received[k];
        wrong += ledger->wrong[k];
        sum += ledger->checksum[k];
    }
    for (unsigned long id = 1; id <= total; id++) {
        lost += ledger->count[id] == 0;
        doubled += ledger->count[id] > 1;
        want += digest(id, value_of(id));
    }
    printf("reqresp: final requests=%lu answered=%lu received=%lu lost=%lu doubled=%lu wrong=%lu "
           "checksum=%016lx\n", total, answered, received, lost, doubled, wrong, (unsigned long)sum);
    if (sum != want)
        printf("reqresp: FAIL checksum %016lx, want %016lx\n", (unsigned long)sum, (unsigned long)want);
    return bad || failed_clients || lost || doubled || wrong || answered != total ||
           received != total || sum != want || ch->refused != answered / 997;
}

int main(int argc, char **argv)
{
    int is_client = argc > 1 && strcmp(argv[1], "client") == 0;
    char **a = argv + (is_client ? 2 : 0);
    if (is_client) {
        if (argc < 7) {
            printf("reqresp: FAIL client arguments\n");
            return 2;
        }
        client_no = atoi(a[0]);
        clients = strtoul(a[1], 0, 10);
        threads = strtoul(a[2], 0, 10);
        total = strtoul(a[3], 0, 10);
        batch = strtoul(a[4], 0, 10);
        return client_main();
    }
    total = argc > 1 ? strtoul(argv[1], 0, 10) : 2000;
    clients = argc > 2 ? strtoul(argv[2], 0, 10) : 2;
    threads = argc > 3 ? strtoul(argv[3], 0, 10) : 2;
    unsigned long slots = argc > 4 ? strtoul(argv[4], 0, 10) : 16;
    batch = argc > 5 ? strtoul(argv[5], 0, 10) : 4;
    if (total == 0 || total > 500000 || clients == 0 || clients > CLIENTS_MAX || threads == 0 ||
        threads > THREADS_MAX || slots == 0 || slots > IPC_SLOTS_MAX || batch == 0 ||
        batch > BATCH_MAX) {
        printf("reqresp: FAIL bad arguments\n");
        return 2;
    }
    return server_main(slots);
}
