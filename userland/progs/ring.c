// ring[:messages[:slots[:work[:restarts]]]]: a producer and a consumer in
// two environments over a ring in a shared region, waiting on each other
// with the kernel's futexes; run under restarts (docs/restart.md) it shows
// that a restart loses and doubles nothing.
//
// The producer (this program) creates the region, hands it to the consumer
// (`ring:consume`, spawned with spawn_shared) and sends `messages` (default
// 20,000) sequence-numbered messages through `slots` (default 16) slots,
// spinning `work` iterations (default 0) per message to stretch the run;
// with `restarts` > 0 it goes on past `messages` until it has received that
// many restarted upcalls (`invoke experiment restart`). The last message's
// number is published in the ring before the message itself. Each side waits, when it must, in futex_wait on the other side's
// counter and wakes the other after moving its own; both check every
// futex_wait result against the contract (-EAGAIN or a wake; never the
// call's own number, which is what a lost rewind would return). Lines:
//   ring: producer sent=<n> waits=<n> wakes=<n> restarts=<n> us=<guest time sending>
//   ring: consumer got=<n> lost=<n> doubled=<n> corrupt=<n> checksum_expected=<hex>
//         checksum_got=<hex> waits=<n> wakes=<n> restarts=<n>          (one line)
//   ring: FAIL <what>
// The producer exits with the consumer's status; the consumer exits 0 iff
// nothing was lost, doubled or corrupted and the checksums agree.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread.h>

#define RING_AT  0x50000000UL
#define SLOTS_MAX 1024

struct msg {
    uint64_t seq;
    uint64_t value;
};

struct ring {
    volatile uint32_t head;             // messages written: the consumer waits on it
    volatile uint32_t tail;             // messages taken: the producer waits on it
    volatile uint32_t consumer_waits;   // the consumer is (about to be) in futex_wait
    volatile uint32_t producer_waits;
    uint32_t slots;
    uint32_t pad;
    volatile uint64_t last;             // the last message's seq, set before it is sent
    struct msg msg[];
};

struct side {
    unsigned long waits, wakes, bad;
};

static uint64_t hash(uint64_t x)        // splitmix64's finalizer
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t value_of(uint64_t seq)
{
    return hash(seq * 3 + 1);
}

// One message's share of the checksum: order-independent, so it speaks
// about content; the sequence checks speak about order.
static uint64_t digest(uint64_t seq, uint64_t value)
{
    return hash(seq ^ hash(value));
}

static unsigned long restarts(void)
{
    struct thread_stats st;
    thread_get_stats(&st);
    return (unsigned long)st.restarts;
}

// Wait while *word == seen, flagging it in *waiting first so that the
// other side knows to wake us (it moves the word, then reads the flag; we
// set the flag, then read the word: one of the two sees the other).
static void wait_while(struct side *s, volatile uint32_t *word, uint32_t seen,
                       volatile uint32_t *waiting)
{
    __atomic_store_n(waiting, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == seen) {
        long r = sys_futex_wait(word, seen, FUTEX_NO_DEADLINE);
        s->waits++;
        if (r != -EAGAIN) {
            printf("ring: FAIL futex_wait returned %ld (%s), want EAGAIN\n", r, errno_name(r));
            s->bad++;
        }
    }
    __atomic_store_n(waiting, 0, __ATOMIC_SEQ_CST);
}

static void wake_if_waiting(struct side *s, volatile uint32_t *word, volatile uint32_t *waiting)
{
    if (__atomic_load_n(waiting, __ATOMIC_SEQ_CST)) {
        long r = sys_futex_wake(word, 1);
        s->wakes++;
        if (r < 0) {
            printf("ring: FAIL futex_wake returned %ld (%s)\n", r, errno_name(r));
            s->bad++;
        }
    }
}

// Send messages 1, 2, ...: at least n, and on until `min_restarts`
// restarted upcalls have come; the number sent.
static uint64_t produce(struct ring *q, unsigned long n, unsigned long work,
                        unsigned long min_restarts, struct side *s)
{
    uint64_t seq;
    for (seq = 1; !q->last; seq++) {
        if (seq >= n && restarts() >= min_restarts)
            q->last = seq;              // published with this message's head
        uint32_t head = q->head, tail;
        while (head - (tail = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE)) >= q->slots)
            wait_while(s, &q->tail, tail, &q->producer_waits);
        for (volatile unsigned long k = 0; k < work; k++)
            ;
        q->msg[head % q->slots] = (struct msg){ seq, value_of(seq) };
        __atomic_store_n(&q->head, head + 1, __ATOMIC_SEQ_CST);
        wake_if_waiting(s, &q->head, &q->consumer_waits);
    }
    return seq - 1;
}

static int consume(struct ring *q)
{
    struct side s = { 0, 0, 0 };
    unsigned long got = 0, lost = 0, doubled = 0, corrupt = 0;
    uint64_t expect = 1, sum_expected = 0, sum_got = 0, last = 0;
    while (!last || expect <= last) {
        uint32_t tail = q->tail, head;
        while ((head = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE)) == tail)
            wait_while(&s, &q->head, head, &q->consumer_waits);
        struct msg m = q->msg[tail % q->slots];
        last = q->last;                 // written before the head we saw
        __atomic_store_n(&q->tail, tail + 1, __ATOMIC_SEQ_CST);
        wake_if_waiting(&s, &q->tail, &q->producer_waits);
        got++;
        sum_got += digest(m.seq, m.value);
        corrupt += m.value != value_of(m.seq);
        if (m.seq < expect) {
            doubled++;
            continue;
        }
        lost += m.seq - expect;
        expect = m.seq + 1;
    }
    for (uint64_t seq = 1; seq <= last; seq++)
        sum_expected += digest(seq, value_of(seq));
    printf("ring: consumer got=%lu lost=%lu doubled=%lu corrupt=%lu checksum_expected=%016lx "
           "checksum_got=%016lx waits=%lu wakes=%lu restarts=%lu\n", got, lost, doubled, corrupt,
           (unsigned long)sum_expected, (unsigned long)sum_got, s.waits, s.wakes, restarts());
    return lost || doubled || corrupt || s.bad || sum_got != sum_expected || got != last;
}

static int consumer_main(void)
{
    long size = sys_shm_map(SHM_GIVEN(0), RING_AT, PROT_READ | PROT_WRITE);
    if (size < 0) {
        printf("ring: FAIL consumer shm_map: %s\n", errno_name(size));
        return 1;
    }
    return consume((struct ring *)RING_AT);
}

static int producer_main(unsigned long n, unsigned long slots, unsigned long work,
                         unsigned long min_restarts)
{
    unsigned long size = sizeof(struct ring) + slots * sizeof(struct msg);
    long h = sys_shm_create(size);
    long mapped = h < 0 ? h : sys_shm_map(h, RING_AT, PROT_READ | PROT_WRITE);
    if (mapped < 0) {
        printf("ring: FAIL producer region: %s\n", errno_name(mapped));
        return 1;
    }
    struct ring *q = (struct ring *)RING_AT;
    q->slots = (uint32_t)slots;
    char *argv[] = { "ring", "consume", NULL };
    long id = sys_spawn_shared("ring", argv, 2, &h, 1);
    if (id < 0) {
        printf("ring: FAIL spawn_shared: %s\n", errno_name(id));
        return 1;
    }
    sys_shm_close(h);               // the mapping keeps the region; the child holds its own
    struct side s = { 0, 0, 0 };
    uint64_t t0 = (uint64_t)sys_clock_ns();
    uint64_t sent = produce(q, n, work, min_restarts, &s);
    printf("ring: producer sent=%lu waits=%lu wakes=%lu restarts=%lu us=%lu\n", (unsigned long)sent,
           s.waits, s.wakes, restarts(), (unsigned long)((uint64_t)sys_clock_ns() - t0) / 1000);
    int status = -1;
    long r = sys_wait(id, &status);
    if (r != id) {
        printf("ring: FAIL wait returned %ld (%s), want %ld\n", r, errno_name(r), id);
        return 1;
    }
    return status != 0 || s.bad;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "consume") == 0)
        return consumer_main();
    unsigned long n = argc > 1 ? strtoul(argv[1], 0, 10) : 20000;
    unsigned long slots = argc > 2 ? strtoul(argv[2], 0, 10) : 16;
    unsigned long work = argc > 3 ? strtoul(argv[3], 0, 10) : 0;
    unsigned long min_restarts = argc > 4 ? strtoul(argv[4], 0, 10) : 0;
    if (n == 0 || slots == 0 || slots > SLOTS_MAX) {
        printf("ring: FAIL bad arguments\n");
        return 2;
    }
    return producer_main(n, slots, work, min_restarts);
}
