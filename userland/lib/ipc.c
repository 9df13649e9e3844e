// Channels and split request/response over shared memory (include/ipc.h).
//
// Who owns a slot: the sender from its claim (IPC_HELD, then the id
// counter's compare-and-swap: the commit) until it posts (IPC_POSTED); the
// receiver reads it and answers (IPC_ANSWERED); the waiter consumes it
// (IPC_HELD while it copies the answer out) and frees it (IPC_FREE). Each
// transition is made by exactly one thread, so no request can be posted,
// answered or consumed twice. The id counter moves from n to n+1 only by
// a thread that holds slot (n+1) % nslots, which is never held for two ids
// at once.
//
// Waits are futex waits on a word that the waiter read just before, so a
// change made in between is never slept through: a waiter first announces
// itself (slot->waiters, ch->receiver_waits), then reads the word, then
// waits while it holds the value read; the other side changes the word,
// then reads the announcement and wakes. A wait that is dropped (restart)
// or woken for nothing returns and the loop looks again: waits change
// nothing, which is what makes rerunning them harmless.
#include <ipc.h>
#include <revenant.h>
#include <thread.h>

#define SEQ __ATOMIC_SEQ_CST

unsigned long ipc_chan_size(unsigned long slots)
{
    return sizeof(struct ipc_chan) + slots * sizeof(struct ipc_slot);
}

int ipc_chan_init(struct ipc_chan *ch, unsigned long slots)
{
    if (slots == 0 || slots > IPC_SLOTS_MAX)
        return -EINVAL;
    ch->nslots = (uint32_t)slots;
    ch->next_id = ch->served = 0;
    ch->posted = ch->receiver_waits = 0;
    ch->refused = 0;
    for (unsigned long i = 0; i < slots; i++) {
        ch->slot[i].state = IPC_FREE;
        ch->slot[i].waiters = 0;
        ch->slot[i].id = 0;
    }
    __atomic_store_n(&ch->magic, IPC_MAGIC, SEQ);
    return 0;
}

int ipc_chan_create(unsigned long slots, unsigned long va, struct ipc_chan **out, long *handle)
{
    if (slots == 0 || slots > IPC_SLOTS_MAX)
        return -EINVAL;
    long h = sys_shm_create(ipc_chan_size(slots));
    if (h < 0)
        return (int)h;
    long r = sys_shm_map(h, va, PROT_READ | PROT_WRITE);
    if (r < 0) {
        sys_shm_close(h);
        return (int)r;
    }
    *out = (struct ipc_chan *)va;
    *handle = h;
    return ipc_chan_init(*out, slots);
}

int ipc_chan_attach(long handle, unsigned long va, struct ipc_chan **out)
{
    long size = sys_shm_map(handle, va, PROT_READ | PROT_WRITE);
    if (size < 0)
        return (int)size;
    struct ipc_chan *ch = (struct ipc_chan *)va;
    if (__atomic_load_n(&ch->magic, SEQ) != IPC_MAGIC || ch->nslots == 0 ||
        ch->nslots > IPC_SLOTS_MAX || ipc_chan_size(ch->nslots) > (unsigned long)size) {
        sys_shm_unmap(va);
        return -EINVAL;
    }
    *out = ch;
    return 0;
}

// Wait while *word == seen, announced in *waiters. 0 (look again),
// -ETIMEDOUT, or the futex's refusal (-EINVAL, -EFAULT).
static int wait_while(volatile uint32_t *word, uint32_t seen, volatile uint32_t *waiters,
                      uint64_t deadline)
{
    __atomic_add_fetch(waiters, 1, SEQ);
    int r = 0;
    if (__atomic_load_n(word, SEQ) == seen)
        r = futex_wait(word, seen, deadline);
    __atomic_sub_fetch(waiters, 1, SEQ);
    return r == -EAGAIN ? 0 : r;
}

static void set_state(struct ipc_slot *s, uint32_t state)
{
    __atomic_store_n(&s->state, state, SEQ);
    if (__atomic_load_n(&s->waiters, SEQ))
        futex_wake(&s->state, ~0UL);
}

static struct ipc_slot *slot_of(struct ipc_chan *ch, uint64_t id)
{
    return &ch->slot[id % ch->nslots];
}

int64_t ipc_send(struct ipc_chan *ch, const struct ipc_msg *msg)
{
    for (;;) {
        uint64_t n = __atomic_load_n(&ch->next_id, SEQ);
        struct ipc_slot *s = slot_of(ch, n + 1);
        uint32_t st = IPC_FREE;
        if (!__atomic_compare_exchange_n(&s->state, &st, IPC_HELD, 0, SEQ, SEQ)) {
            if (__atomic_load_n(&ch->next_id, SEQ) != n)
                continue;               // another sender took id n+1: look again
            return -EAGAIN;             // the request nslots ids back still holds it
        }
        if (!__atomic_compare_exchange_n(&ch->next_id, &n, n + 1, 0, SEQ, SEQ)) {
            set_state(s, IPC_FREE);     // id n+1 went to someone else: let go
            continue;
        }
        // Committed: id n+1 and its slot are ours. Post it.
        s->id = n + 1;
        s->msg = *msg;
        __atomic_store_n(&s->state, IPC_POSTED, SEQ);
        __atomic_add_fetch(&ch->posted, 1, SEQ);
        if (__atomic_load_n(&ch->receiver_waits, SEQ))
            futex_wake(&ch->posted, 1);
        return (int64_t)(n + 1);
    }
}

int ipc_wait_room(struct ipc_chan *ch, uint64_t deadline)
{
    uint64_t n = __atomic_load_n(&ch->next_id, SEQ);
    struct ipc_slot *s = slot_of(ch, n + 1);
    uint32_t st = __atomic_load_n(&s->state, SEQ);
    if (st == IPC_FREE || __atomic_load_n(&ch->next_id, SEQ) != n)
        return 0;
    return wait_while(&s->state, st, &s->waiters, deadline);
}

int ipc_wait(struct ipc_chan *ch, uint64_t id, struct ipc_answer *answer, uint64_t deadline)
{
    if (id == 0 || id > __atomic_load_n(&ch->next_id, SEQ))
        return -EINVAL;
    struct ipc_slot *s = slot_of(ch, id);
    for (;;) {
        uint32_t st = __atomic_load_n(&s->state, SEQ);
        if ((st != IPC_POSTED && st != IPC_ANSWERED) || s->id != id)
            return -EINVAL;             // consumed already (or never ours)
        if (st == IPC_POSTED) {
            int r = wait_while(&s->state, st, &s->waiters, deadline);
            if (r < 0)
                return r;
            continue;
        }
        if (!__atomic_compare_exchange_n(&s->state, &st, IPC_HELD, 0, SEQ, SEQ))
            continue;
        if (s->id != id) {              // the slot was reused in between: not ours
            set_state(s, IPC_ANSWERED);
            return -EINVAL;
        }
        *answer = s->answer;
        set_state(s, IPC_FREE);         // consumed: the slot is a sender's again
        return 0;
    }
}

int ipc_call(struct ipc_chan *ch, const struct ipc_msg *msg, struct ipc_answer *answer,
             uint64_t deadline)
{
    int64_t id;
    while ((id = ipc_send(ch, msg)) == -EAGAIN) {
        int r = ipc_wait_room(ch, deadline);
        if (r < 0)
            return r;
    }
    return id < 0 ? (int)id : ipc_wait(ch, (uint64_t)id, answer, deadline);
}

int ipc_receive(struct ipc_chan *ch, struct ipc_request *req, uint64_t deadline)
{
    for (;;) {
        uint32_t posted = __atomic_load_n(&ch->posted, SEQ);
        uint64_t id = ch->served + 1;
        struct ipc_slot *s = slot_of(ch, id);
        if (__atomic_load_n(&s->state, SEQ) == IPC_POSTED && s->id == id) {
            req->id = id;
            req->msg = s->msg;
            return 0;
        }
        __atomic_store_n(&ch->receiver_waits, 1, SEQ);
        int r = 0;
        if (__atomic_load_n(&ch->posted, SEQ) == posted)
            r = futex_wait(&ch->posted, posted, deadline);
        __atomic_store_n(&ch->receiver_waits, 0, SEQ);
        if (r < 0 && r != -EAGAIN)
            return r;
    }
}

int ipc_answer(struct ipc_chan *ch, const struct ipc_request *req, const struct ipc_answer *answer)
{
    uint64_t id = ch->served + 1;
    struct ipc_slot *s = slot_of(ch, id);
    if (req->id != id || __atomic_load_n(&s->state, SEQ) != IPC_POSTED || s->id != id) {
        __atomic_add_fetch(&ch->refused, 1, SEQ);
        return -EINVAL;
    }
    s->answer = *answer;
    s->answer.serial = id;
    __atomic_store_n(&ch->served, id, SEQ);
    set_state(s, IPC_ANSWERED);
    return 0;
}
