// Activations: interrupts delivered to the program's own scheduler
// (docs/activations.md). The user-visible layout is in abi.h.
#ifndef ACTIVATION_H
#define ACTIVATION_H
#include <stdbool.h>
#include <stdint.h>
#include "abi.h"

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

// One environment's activation state, all of it in kernel memory.
struct act_env {
    struct act_pool pool;
    struct act_header *header;  // the segment's header page, through the direct map
    struct act_stats stats;
    uint64_t seq;               // deliveries so far (records carry it)
    bool used;                  // registered or called an act_* syscall: report at exit
    uint64_t bits[];            // pool.used points here
};

// Boot: records per environment (the act_pool=N option), clamped to
// 1..ACT_POOL_MAX.
void act_init(unsigned long pool_size);

// Map the restore page, the header and the pool into e's address space and
// set up e->act. 0 or -ENOMEM (the caller frees the address space).
int act_env_create(struct env *e);
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

// The system calls.
long sys_act_resume(uint64_t record);
long sys_act_enable(void);
long sys_act_stats(uint64_t stats_uva);

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
