// Activations: interrupts delivered to the program's own scheduler
// (docs/activations.md). The user-visible layout is in abi.h.
#ifndef ACTIVATION_H
#define ACTIVATION_H
#include <stdbool.h>
#include <stdint.h>
#include "abi.h"
#include "kalloc.h"

struct env;
struct vproc;
struct trapframe;

#define ACT_NONE (-1)           // vproc->act_resuming when no record is being restored

// Which records are in use: a bitmap in kernel memory, never the segment.
struct act_pool {
    uint32_t size;
    uint32_t nfree;
    uint64_t *used;             // BITMAP_WORDS(size) words
};

// What the kernel knows of one record, beyond "in use" (the bitmap):
//   HELD     the program's: a preempted thread, or handed back
//   BLOCKED  its thread's call waits on (kind, key, deadline): derived
//            state, dropped by a wake, a restart or an early act_resume
//   WOKEN    woken, not yet handed back (an unblocked upcall or act_wait will)
enum act_slot_state { SLOT_FREE, SLOT_HELD, SLOT_BLOCKED, SLOT_WOKEN };

struct act_slot {
    uint8_t state;              // enum act_slot_state
    uint8_t kind;               // BLOCKED: enum wait_kind (sched.h)
    int32_t next;               // the blocked list or the woken FIFO; ACT_NONE ends it
    uint64_t key;               // BLOCKED: as vproc->wait_key
    uint64_t deadline;          // BLOCKED: wake at this clock_ns() (0: never)
};

#define ACT_SLOTS_PER_CHUNK 128     // a power of two that fits kmalloc: slot() shifts
_Static_assert(ACT_SLOTS_PER_CHUNK * sizeof(struct act_slot) <= KMALLOC_MAX, "slot chunk");
#define ACT_SLOT_CHUNKS ((ACT_POOL_MAX + ACT_SLOTS_PER_CHUNK - 1) / ACT_SLOTS_PER_CHUNK)

// One environment's activation state, all of it in kernel memory.
struct act_env {
    struct act_pool pool;
    struct act_header *header;  // the segment's header page, through the direct map
    struct act_stats stats;
    uint64_t seq;               // deliveries so far (records carry it)
    uint64_t event_seq;         // seq of the last unblocked or restarted upcall (act_wait)
    int32_t blocked_head;       // BLOCKED records, unordered
    int32_t woken_head, woken_tail;     // WOKEN records, first woken first
    uint32_t nblocked;
    uint32_t ntimed;            // of those, with a deadline
    bool used;                  // registered or called an act_* syscall: report at exit
    struct act_slot *slots[ACT_SLOT_CHUNKS];    // slot i: slots[i / PER_CHUNK][i % PER_CHUNK]
    uint64_t bits[];            // pool.used points here
};

// Boot: records per environment (the act_pool=N option), clamped to
// 1..ACT_POOL_MAX.
void act_init(unsigned long pool_size);

// Map the restore page, the header and the pool into e's address space and
// set up e->act. 0 or -ENOMEM (the caller frees the address space).
int act_env_create(struct env *e);
// Restore (restore.c): e's activation state as a checkpoint had it, with a
// pool of `size` records (1..ACT_POOL_MAX, not this boot's act_pool=) and
// every record free. 0, -EINVAL, -ENOMEM (the caller frees the address space).
int act_env_restore(struct env *e, uint32_t size, uint64_t seq, uint64_t event_seq,
                    const struct act_stats *stats, bool used);
// Record i was in use: the program's again (HELD), or, if it was blocked
// or woken and the program has no restarted upcall, woken (handed back in an
// unblocked upcall). Call after e's pages are restored (the header says
// what is registered). -EINVAL: out of the pool or in use already.
int act_restore_record(struct env *e, uint32_t i, bool woken);
bool act_record_in_use(const struct env *e, uint32_t i);
// The kernel's words of the header rewritten (the disk's are not trusted).
void act_restore_done(struct env *e, struct vproc *v);
// act_env_destroy without the stats line: a restore that failed half-way.
void act_env_discard(struct env *e);
// The `act: env ...` stats line if e used activations; frees e->act.
void act_env_destroy(struct env *e);

// Every kernel entry from user mode in v, before anything else, if
// v->act_resuming != ACT_NONE: true if the entry interrupted the restore
// sequence (the record is still being resumed), false if the restore had
// completed (the record is freed now).
bool act_settle(struct vproc *v);
// A timer interrupt from user mode in v: deliver an upcall (v's frame now
// enters the program's scheduler) or leave the frame to be resumed as is.
// `cut_short`: act_settle said the restore was interrupted. False if the
// environment was killed (hostile header, pool exhausted).
bool act_preempt(struct vproc *v, bool cut_short);

// A restart (restart.c): a restarted upcall (entry[ACT_RESTARTED]) with the
// thread v's frame holds, now if v is enabled, else once its scheduler
// leaves the disabled state (act_resume, act_enable: v->act_restart_pending).
// 1: delivered now; 0: nothing registered, or pending; -1: the environment
// was killed (hostile header, pool exhausted).
int act_restart(struct vproc *v);

// Blocking calls as upcalls ("Blocking calls" in docs/activations.md).
// On the way out of a system call in v (its frame rewound if it must wait):
// a call that blocked v becomes a blocked upcall (its record takes the
// wait), and woken records are handed back in an unblocked upcall. 0, or
// -1 if the environment was killed (hostile header, pool exhausted).
int act_syscall_exit(struct vproc *v);
// v is about to run (vproc_resume) with v->act_wake_pending: hand back a
// woken record if v is enabled. 1 delivered, 0 not now, -1 killed.
int act_deliver_unblocked(struct vproc *v);
// The wake paths (sched.c) for records: at most n blocked on (kind, key),
// in every environment; how many. Then deadlines, at every tick.
long act_wake(int kind, uint64_t key, uint64_t n);
void act_tick(void);
// A restart (restart.c): every blocked record forgets its wait and goes
// back to its program: handed back at once for one that registered the
// restarted upcall, else woken. dropped[kind] counts them; the total.
int act_drop_waits(int *dropped);

// Checkpoints (checkpoint.c): the kernel's state of record i, an enum
// act_slot_state (SLOT_FREE if i is out of the pool).
int act_record_state(const struct act_env *a, uint32_t i);

// The system calls.
long sys_act_resume(uint64_t record);
long sys_act_enable(void);
long sys_act_stats(uint64_t stats_uva);
long sys_act_wait(uint64_t deadline, uint64_t seen);

// Pure parts (kernel/tests/test_activation.c).
void act_pool_init(struct act_pool *p, uint64_t *bits, uint32_t size);
int act_pool_alloc(struct act_pool *p);                 // index, or -1 when full
bool act_pool_free(struct act_pool *p, uint32_t i);     // false if i was not in use
bool act_pool_in_use(const struct act_pool *p, uint32_t i);
// rip lies inside the restore sequence as mapped at ACT_RESTORE.
bool act_in_restore(uint64_t rip);
uint64_t act_restore_len(void);
// The record's frame may be restored: NULL, or the name of the first bad
// field ("cs", "rflags.IOPL", "rip", ...) with its value in *value.
const char *act_check_record(const struct act_record *r, uint64_t *value);
// The upcall target may be entered: NULL, or "entry[<reason>]" /
// "upcall_stack" with the bad value in *value.
const char *act_check_upcall(uint64_t entry, uint64_t stack, uint64_t *value);   // reason 4
const char *act_check_upcall_for(uint32_t reason, uint64_t entry, uint64_t stack, uint64_t *value);
#endif
