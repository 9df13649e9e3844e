// Environments: creation (spawn), the end of one (exit, kill, fault), and
// the parent's side of it (wait), plus the init/poweroff rules:
//   - init (env 1) calling poweroff(ok) ends init; the machine powers off
//     with `ok` once every other environment has ended too;
//   - init ending any other way powers off at once, ok iff its status is 0.
// An environment's memory is freed when it ends; a zombie keeps only its
// struct env (id, name, status) until its parent reaps it with wait().
// Orphans are reaped by nobody: they are freed as soon as they end.
#include <limits.h>
#include "abi.h"
#include "activation.h"
#include "console.h"
#include "cpu.h"
#include "elf.h"
#include "env.h"
#include "gdt.h"
#include "kalloc.h"
#include "memlayout.h"
#include "power.h"
#include "printf.h"
#include "sched.h"
#include "string.h"
#include "syscall.h"
#include "vm.h"
#include "x86.h"

#define USER_RFLAGS 0x202       // IF, and the always-one bit; IOPL 0
#define STACK_ARGS_MAX (USER_STACK_SIZE / 2)

static struct env *envs[ENV_MAX];
static int next_id = INIT_ENV_ID;
static int live;                // environments not yet ended
static bool poweroff_requested, poweroff_ok;

struct env *env_find(int id)
{
    for (int i = 0; i < ENV_MAX; i++)
        if (envs[i] && envs[i]->id == id)
            return envs[i];
    return NULL;
}

int env_next_id(void)
{
    return next_id;
}

struct env *env_slot(int i)
{
    return i >= 0 && i < ENV_MAX ? envs[i] : NULL;
}

static int free_slot(void)
{
    for (int i = 0; i < ENV_MAX; i++)
        if (!envs[i])
            return i;
    return -1;
}

// Only for environments that have ended (no vprocs, no memory).
static void env_free(struct env *e)
{
    for (int i = 0; i < ENV_MAX; i++)
        if (envs[i] == e)
            envs[i] = NULL;
    kfree(e);
}

// The SysV initial stack, built at the top of the user stack: argument
// strings, then (16-byte aligned) argc, argv[], NULL, envp NULL, AT_NULL.
// Returns the initial rsp, or 0 if the arguments do not fit.
static uint64_t build_stack(uint64_t *pml4, int argc, char *const argv[])
{
    uint64_t sp = USER_STACK_TOP;
    uint64_t uargv[argc + 1];
    for (int i = argc - 1; i >= 0; i--) {
        uint64_t n = strlen(argv[i]) + 1;
        if (USER_STACK_TOP - sp + n > STACK_ARGS_MAX)
            return 0;
        sp -= n;
        if (vm_write_aspace(pml4, sp, argv[i], n) < 0)
            return 0;
        uargv[i] = sp;
    }
    uargv[argc] = 0;
    uint64_t words = 1 + (argc + 1) + 1 + 2;
    sp = (sp - words * 8) & ~15UL;
    uint64_t head[3] = { (uint64_t)argc };
    if (vm_write_aspace(pml4, sp, head, 8) < 0 ||
        vm_write_aspace(pml4, sp + 8, uargv, (argc + 1) * 8) < 0)
        return 0;
    uint64_t tail[3] = { 0, 0, 0 };     // envp NULL, auxv AT_NULL (type, value)
    if (vm_write_aspace(pml4, sp + 8 + (argc + 1) * 8, tail, sizeof(tail)) < 0)
        return 0;
    return sp;
}

static void start_frame(struct trapframe *tf, uint64_t entry, uint64_t rsp)
{
    memset(tf, 0, sizeof(*tf));
    tf->rip = entry;
    tf->rsp = rsp;
    tf->rflags = USER_RFLAGS;
    tf->cs = USER_CS;
    tf->ss = USER_DS;
    tf->vector = VEC_FRESH;
}

// Load the program and its stack into a fresh address space; 0 or -errno.
static int load(struct env *e, const uint8_t *image, uint64_t len, int argc,
                char *const argv[], uint64_t *entry, uint64_t *rsp)
{
    char why[96] = "";
    int r = elf_load(e->pml4, image, len, entry, why, sizeof(why));
    if (r < 0) {
        if (r == -ENOEXEC)
            kprintf("elf: %s: rejected: %s\n", e->name, why);
        return r;
    }
    r = vm_map_user(e->pml4, USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_SIZE,
                    VM_READ | VM_WRITE);
    if (r < 0)
        return r == -EINVAL ? -ENOEXEC : r;     // the program sits where the stack goes
    *rsp = build_stack(e->pml4, argc, argv);
    return *rsp ? 0 : -E2BIG;
}

int env_spawn(const char *name, const uint8_t *image, uint64_t len, int argc,
              char *const argv[], int parent_id)
{
    // Ids are never reused (a stale id in a parent field or a wait must not
    // name a newcomer); once they run out, spawn says -ENOMEM rather than
    // overflow into 0 (no parent) or -1 (wait's "any child").
    if (next_id == INT_MAX)
        return -ENOMEM;
    int slot = free_slot();
    if (slot < 0 || argc < 0)
        return slot < 0 ? -ENOMEM : -EINVAL;
    struct env *e = kmalloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    strlcpy(e->name, name, sizeof(e->name));
    e->pml4 = vm_new_aspace();
    struct vproc *v = e->pml4 ? vproc_new(e) : NULL;
    if (!v) {
        vm_free_aspace(e->pml4);
        kfree(e);
        return -ENOMEM;
    }
    uint64_t entry, rsp;
    e->act = NULL;
    int r = load(e, image, len, argc, argv, &entry, &rsp);
    if (r == 0)
        r = act_env_create(e);
    if (r < 0) {
        act_env_destroy(e);
        vproc_destroy(v);
        vm_free_aspace(e->pml4);
        kfree(e);
        return r;
    }
    start_frame(&v->tf, entry, rsp);
    v->index = e->nvprocs;
    e->vprocs[e->nvprocs++] = v;
    e->id = next_id++;
    e->state = ENV_LIVE;
    e->parent = parent_id;
    envs[slot] = e;
    live++;
    kprintf("env %d (%s) started\n", e->id, e->name);
    sched_make_runnable(v);
    return e->id;
}

// Common end of an environment, however it ends.
static void env_end(struct env *e, int status)
{
    console_env_ended(e);   // its ring goes with it; the console goes back to init
    act_env_destroy(e);     // prints its stats line, if the program used activations
    for (int i = 0; i < e->nvprocs; i++)
        vproc_destroy(e->vprocs[i]);
    e->nvprocs = 0;
    // Never free the page tables CR3 is using.
    if (vm_loaded(e->pml4))
        vm_switch(vm_kernel_aspace());
    vm_free_aspace(e->pml4);
    e->pml4 = NULL;
    shm_env_release(e);     // after the address space: its mappings never free a region's frames
    e->status = status;
    live--;

    for (int i = 0; i < ENV_MAX; i++) {
        struct env *c = envs[i];
        if (c && c->parent == e->id) {
            if (c->state == ENV_ZOMBIE)
                env_free(c);
            else
                c->parent = 0;
        }
    }
    bool was_init = e->id == INIT_ENV_ID;
    struct env *parent = e->parent ? env_find(e->parent) : NULL;
    if (parent) {
        e->state = ENV_ZOMBIE;
        sched_wake(WAIT_CHILD, (uint64_t)parent->id);
    } else {
        env_free(e);
    }
    if (was_init && !poweroff_requested)
        power_off(status == 0);
    if (poweroff_requested && live == 0)
        power_off(poweroff_ok);
}

void env_exit(struct env *e, int status)
{
    uint32_t wait = e->blocked[WAIT_CHILD], sleep = e->blocked[WAIT_SLEEP];
    if (wait + sleep)
        kprintf("rewind: env %d (%s) rewound=%u wait=%u sleep=%u\n", e->id, e->name,
                wait + sleep, wait, sleep);
    kprintf("env %d (%s) exited status=%d\n", e->id, e->name, status);
    env_end(e, status);
}

void env_kill(struct env *e, const char *why)
{
    kprintf("env %d (%s) killed: %s\n", e->id, e->name, why);
    env_end(e, STATUS_KILLED_OTHER);
}

void env_kill_fault(struct env *e, const struct trapframe *tf, uint64_t fault_addr)
{
    kprintf("env %d (%s) killed: %s (vector %lu) rip=0x%016lx addr=0x%016lx err=0x%lx\n",
            e->id, e->name, trap_name(tf->vector), tf->vector, tf->rip, fault_addr, tf->error);
    env_end(e, STATUS_KILLED(tf->vector));
}

long env_wait(struct env *e, long id, uint64_t status_uva)
{
    bool any = false;
    for (int i = 0; i < ENV_MAX; i++) {
        struct env *c = envs[i];
        if (!c || c->parent != e->id || (id != -1 && c->id != id))
            continue;
        any = true;
        if (c->state != ENV_ZOMBIE)
            continue;
        // Copy first, reap second: a bad pointer leaves the child unreaped.
        if (status_uva && copyout(status_uva, &c->status, sizeof(c->status)) < 0)
            return -EFAULT;
        int cid = c->id;
        env_free(c);
        return cid;
    }
    if (!any)
        return -ECHILD;
    sched_block(sched_current(), WAIT_CHILD, (uint64_t)e->id);
    return -ERESTART;
}

// ------------------------------------------------------------ restore
// restore.c rebuilds environments from a checkpoint with the ids it names;
// these are the only ways it touches the table.

struct env *env_restore_new(int id, const char *name, int parent, bool zombie, int status)
{
    int slot = free_slot();
    if (slot < 0 || id < INIT_ENV_ID || env_find(id))
        return NULL;
    struct env *e = kmalloc(sizeof(*e));
    if (!e)
        return NULL;
    strlcpy(e->name, name, sizeof(e->name));
    e->id = id;
    e->parent = parent;
    e->act = NULL;
    if (zombie) {
        e->state = ENV_ZOMBIE;
        e->status = status;
    } else {
        e->pml4 = vm_new_aspace();
        if (!e->pml4) {
            kfree(e);
            return NULL;
        }
        e->state = ENV_LIVE;
        live++;
    }
    envs[slot] = e;
    return e;
}

int env_restore_vproc(struct env *e, struct vproc **out)
{
    if (e->state != ENV_LIVE || e->nvprocs >= ENV_MAX_VPROCS)
        return -EINVAL;
    struct vproc *v = vproc_new(e);
    if (!v)
        return -ENOMEM;
    v->index = e->nvprocs;
    e->vprocs[e->nvprocs++] = v;
    *out = v;
    return 0;
}

void env_restore_ids(int next)
{
    next_id = next;
    // A checkpoint taken after init asked for the poweroff: the last
    // environment to end powers the machine off (its verdict is not saved).
    struct env *init = env_find(INIT_ENV_ID);
    if (!init || init->state != ENV_LIVE) {
        poweroff_requested = true;
        poweroff_ok = true;
    }
}

void env_discard_all(void)
{
    vm_switch(vm_kernel_aspace());
    for (int i = 0; i < ENV_MAX; i++) {
        struct env *e = envs[i];
        if (!e)
            continue;
        act_env_discard(e);
        for (int k = 0; k < e->nvprocs; k++)
            vproc_destroy(e->vprocs[k]);
        vm_free_aspace(e->pml4);    // NULL for a zombie: nothing
        shm_env_release(e);
        envs[i] = NULL;
        kfree(e);
    }
    next_id = INIT_ENV_ID;
    live = 0;
    poweroff_requested = false;
}

long env_poweroff(struct env *e, bool ok)
{
    if (e->id != INIT_ENV_ID)
        return -EPERM;
    poweroff_requested = true;
    poweroff_ok = ok;
    if (live > 1)
        kprintf("revenant: poweroff requested; waiting for %d environment(s)\n", live - 1);
    env_exit(e, ok ? 0 : 1);
    return 0;
}
