// Channels and request/response over shared memory and futexes
// (docs/restart.md, "Split IPC"; docs/abi.md, "The user library").
//
// A channel is a ring of request slots in a shared region: the kernel
// holds no message, no queue and no answer, only the futex waits, which
// are derived state that a restart may drop. A request/response call is
// split the HelenOS #433 way:
//
//   id = ipc_send(ch, &msg);                commits the request: one
//                                           compare-and-swap on the
//                                           channel's id counter; never
//                                           blocks, never sends twice
//   ipc_wait(ch, id, &answer, deadline);    the only blocking part: waits
//                                           until that id's slot holds
//                                           its answer, then consumes it
//
// Every blocking function here only *reads* shared memory before it waits
// (futex_wait from <thread.h>, which parks just the calling thread), so
// when a wait is dropped by an in-place restart, or woken spuriously, the
// rerun is the same question asked again: nothing is sent, answered or
// consumed twice, and nothing is lost. The one state change each makes is a
// single store or compare-and-swap after the wait, in user memory.
//
// Roles: any number of senders (threads, and environments sharing the
// region) on one channel; one receiver (a server thread) per channel, which
// answers requests in id order. Ids start at 1 and never repeat.
#ifndef IPC_H
#define IPC_H
#include <stdint.h>

#define IPC_MAGIC       0x43505249u     // "IRPC"
#define IPC_SLOTS_MAX   1024
#define IPC_POLL        1               // a deadline long past: check once, never wait

// Slot states (the slot's futex word).
#define IPC_FREE        0
#define IPC_POSTED      1               // a request is committed, not yet answered
#define IPC_ANSWERED    2               // its answer is there, not yet consumed
#define IPC_HELD        3               // a sender claiming it, or a waiter consuming it

struct ipc_msg {
    uint64_t method;
    uint64_t arg[3];
};

struct ipc_answer {
    int64_t ret;
    uint64_t value[2];
    uint64_t serial;                    // the server's count of answers, this one included
};

struct ipc_slot {
    volatile uint32_t state;            // IPC_FREE / IPC_POSTED / IPC_ANSWERED / IPC_HELD
    volatile uint32_t waiters;          // threads (of any side) in futex_wait on state
    volatile uint64_t id;               // the request in it (valid unless FREE)
    struct ipc_msg msg;
    struct ipc_answer answer;
};

struct ipc_chan {
    uint32_t magic;
    uint32_t nslots;
    volatile uint64_t next_id;          // the last id handed out
    volatile uint64_t served;           // the last id answered (written by the receiver only)
    volatile uint32_t posted;           // requests posted, mod 2^32: the receiver's futex word
    volatile uint32_t receiver_waits;   // the receiver is (about to be) in futex_wait on posted
    volatile uint64_t refused;          // answers refused (not outstanding): never, if all is well
    uint64_t reserved[2];
    struct ipc_slot slot[];
};

// What the receiver gets: the id and a copy of the message.
struct ipc_request {
    uint64_t id;
    struct ipc_msg msg;
};

// Bytes a channel of `slots` slots needs (for shm_create).
unsigned long ipc_chan_size(unsigned long slots);
// Lay out an empty channel at `ch` (zeroed shared memory). 0 or -EINVAL.
int ipc_chan_init(struct ipc_chan *ch, unsigned long slots);
// shm_create + shm_map at `va` + init; *handle is for spawn_shared. 0 or -errno.
int ipc_chan_create(unsigned long slots, unsigned long va, struct ipc_chan **out, long *handle);
// shm_map a channel handed over (SHM_GIVEN(i)) at `va`, check it. 0 or -errno.
int ipc_chan_attach(long handle, unsigned long va, struct ipc_chan **out);

// Sender. ipc_send never blocks: it commits the request and returns its
// id (> 0), or -EAGAIN when the slot the next id takes is still in use (the
// request nslots ids earlier is not consumed yet; ids take slots in turn,
// so one unconsumed answer holds up every sender once the ids wrap round),
// -EINVAL.
int64_t ipc_send(struct ipc_chan *ch, const struct ipc_msg *msg);
// Wait (restartably) until ipc_send may succeed: the slot of the next id is
// free. 0 (look again: another sender may take it first), -ETIMEDOUT
// (absolute deadline; FUTEX_NO_DEADLINE: none). A sender holding answers it
// has not consumed must consume them first, or it may wait for itself.
int ipc_wait_room(struct ipc_chan *ch, uint64_t deadline);
// Wait for id's answer, copy it to *answer and free the slot: the answer is
// delivered exactly once. 0, -ETIMEDOUT (the request stays outstanding:
// wait again later; IPC_POLL checks once), -EINVAL (id not outstanding:
// never sent, or its answer already consumed).
int ipc_wait(struct ipc_chan *ch, uint64_t id, struct ipc_answer *answer, uint64_t deadline);
// ipc_send (waiting for room as needed) then ipc_wait.
int ipc_call(struct ipc_chan *ch, const struct ipc_msg *msg, struct ipc_answer *answer,
             uint64_t deadline);

// Receiver. ipc_receive waits for the next request in id order and copies
// it out; it changes nothing, so calling it again before ipc_answer returns
// the same request. 0, -ETIMEDOUT.
int ipc_receive(struct ipc_chan *ch, struct ipc_request *req, uint64_t deadline);
// Answer req (answer->serial is filled in). 0, or -EINVAL if req is not the
// request being served (already answered, or never received): the answer
// is refused and counted in ch->refused.
int ipc_answer(struct ipc_chan *ch, const struct ipc_request *req, const struct ipc_answer *answer);
#endif
