// Environments: an address space, the program in it, and its virtual
// processors. The unit of isolation: a fault kills one environment, the
// kernel and the others go on.
#ifndef ENV_H
#define ENV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sched.h"
#include "shm.h"
#include "trap.h"

#define ENV_MAX        64       // live + zombie environments at once
#define ENV_MAX_VPROCS 1        // one for now; loops below never assume it
#define ENV_NAME_MAX   32
#define INIT_ENV_ID    1

enum env_state { ENV_LIVE = 1, ENV_ZOMBIE };

struct vproc;
struct act_env;

struct env {
    int id;
    char name[ENV_NAME_MAX];
    uint64_t *pml4;             // NULL once the environment has ended
    enum env_state state;
    int status;                 // exit status (kernel/abi.h: 0..255, or STATUS_KILLED_*)
    int parent;                 // parent env id, 0 for none (init, orphans)
    int nvprocs;
    struct vproc *vprocs[ENV_MAX_VPROCS];
    struct act_env *act;        // activation state (activation.c), NULL once ended
    struct shm_table shm;       // shared regions held (shm.c), empty once ended
    uint32_t blocked[WAIT_KINDS];   // blocking calls rewound, by enum wait_kind (sched_block)
    bool out_direct;            // outcommit(OUTCOMMIT_OFF): its output is not held (outcommit.c)
};

// Create an environment running `image` (an ELF, loaded by elf_load) with
// the SysV initial stack: rsp -> argc, argv[0..argc-1], NULL, envp NULL,
// auxv AT_NULL. Returns the new id > 0, or -ENOMEM, -ENOEXEC (printed:
// "elf: <name>: rejected: <why>"), -E2BIG (arguments too large).
int env_spawn(const char *name, const uint8_t *image, uint64_t len, int argc,
              char *const argv[], int parent_id);
// The environment ends by its own request: "env <id> (<name>) exited status=<n>",
// after "rewind: env <id> (<name>) rewound=<n> wait=<n> sleep=<n>" if one of
// its blocking calls was ever rewound (each one was rerun, or it could not exit).
void env_exit(struct env *e, int status);
// The kernel ends it: "env <id> (<name>) killed: <why>", status STATUS_KILLED_OTHER.
void env_kill(struct env *e, const char *why);
// A CPU exception in user mode: the report line, status STATUS_KILLED(vector).
void env_kill_fault(struct env *e, const struct trapframe *tf, uint64_t fault_addr);

static inline struct env *env_current(void)
{
    struct vproc *v = sched_current();
    return v ? v->env : NULL;
}
struct env *env_find(int id);
// The environment in table slot i (0..ENV_MAX-1), live or zombie, or NULL:
// for walks over every environment (restart.c).
struct env *env_slot(int i);
// The id the next spawn will get (ids are never reused): checkpoints save it.
int env_next_id(void);

// wait(): reap a zombie child of `e` (id, or any for -1) into *status_uva;
// returns its id, -ECHILD if there is no such child, -ERESTART (blocked,
// the caller rewinds) if it has not ended yet, -EFAULT (nothing reaped).
long env_wait(struct env *e, long id, uint64_t status_uva);
// Restore (restore.c), before anything runs. An environment with the id,
// name and parent a checkpoint names: live with an empty address space (no
// vproc, no activation state yet), or a zombie holding `status`. NULL: no
// free slot, the id is taken or impossible, or no memory.
struct env *env_restore_new(int id, const char *name, int parent, bool zombie, int status);
// A new vproc of live e (not yet runnable): 0, -EINVAL (too many), -ENOMEM.
int env_restore_vproc(struct env *e, struct vproc **out);
// The next spawn gets id `next`; without a live init, the last environment
// to end powers off.
void env_restore_ids(int next);
// A restore failed half-way: free every environment quietly (nothing ran,
// nothing is reported, no poweroff), as if none had been made.
void env_discard_all(void);
// poweroff() from init: power off once every environment has ended.
long env_poweroff(struct env *e, bool ok);
#endif
