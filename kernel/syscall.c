// System calls: the MSR setup, the dispatcher, and the calls themselves.
//
// Numbers, errnos and limits are in abi.h (shared with user space). Every
// handler takes the six argument registers and returns the result or a
// negative errno. Arguments are hostile: user pointers go through
// copyin/copyout only, lengths are bounded before anything is allocated.
//
// Blocking calls (wait, sleep_until) follow the rewind rule: if the call
// cannot complete now, the handler blocks the vproc and returns -ERESTART;
// the dispatcher then moves the frame's rip back over the 2-byte `syscall`
// instruction (rax still holds the number, the arguments are untouched).
// When the vproc is woken it simply executes `syscall` again. No call keeps
// a continuation in the kernel, and a call that completes has had its whole
// effect at one instant. For a program with the blocked upcall, that same
// rewound frame goes into an activation record which waits instead of the
// vproc (act_syscall_exit): one place for every blocking call.
#include "abi.h"
#include "activation.h"
#include "cmdline.h"
#include "checkpoint.h"
#include "console.h"
#include "cpu.h"
#include "env.h"
#include "futex.h"
#include "gdt.h"
#include "initrd.h"
#include "kalloc.h"
#include "memlayout.h"
#include "outcommit.h"
#include "sched.h"
#include "shm.h"
#include "string.h"
#include "syscall.h"
#include "timer.h"
#include "uart.h"
#include "vm.h"
#include "x86.h"

#define RFLAGS_TF (1UL << 8)
#define RFLAGS_DF (1UL << 10)
#define RFLAGS_AC (1UL << 18)

#define SYSCALL_INSN_LEN 2      // 0f 05
#define SPAWN_MAX_ARGS   32
#define SPAWN_ARG_BYTES  2048   // all argv strings together, NULs included
#define WRITE_CHUNK      256

extern char syscall_entry[];

_Static_assert(USER_CS == (0x20 | 3) && USER_DS == (0x18 | 3), "syscallasm.S selectors");
_Static_assert(VEC_SYSCALL == 0x100, "syscallasm.S VEC_SYSCALL");

void syscall_init(void)
{
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
    // syscall: CS = KERNEL_CS, SS = KERNEL_CS + 8. sysretq: SS = base + 8,
    // CS = base + 16 with RPL 3, base = KERNEL_DS (gdt.h explains the order).
    wrmsr(MSR_STAR, ((uint64_t)(KERNEL_DS | 3) << 48) | ((uint64_t)KERNEL_CS << 32));
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    // Cleared on entry: no single-step trap, string ops forward, no
    // interrupts until the kernel stack is in place, SMAP enforced, and no
    // stale nested-task flag.
    wrmsr(MSR_FMASK, RFLAGS_TF | RFLAGS_IF | RFLAGS_DF | RFLAGS_AC | RFLAGS_NT);
}

static long sys_exit(uint64_t status)
{
    env_exit(env_current(), (int)(status & 0xff));
    return 0;   // nobody to return to: the dispatcher sees no current vproc
}

// Whole-buffer check first, so a write either happens entirely or not at
// all (the copy itself still has fault recovery).
static bool user_readable(uint64_t va, uint64_t len)
{
    uint64_t *pml4 = env_current()->pml4;
    if (!is_user_range(va, len))
        return false;
    for (uint64_t p = va & ~(uint64_t)(PAGE_SIZE - 1); p < va + len; p += PAGE_SIZE)
        if (!(vm_lookup(pml4, p) & PTE_U))
            return false;
    return true;
}

static long sys_write(uint64_t fd, uint64_t buf, uint64_t len)
{
    if (fd != 1 && fd != 2)
        return -EBADF;
    if (len > WRITE_MAX)
        return -EINVAL;
    if (!user_readable(buf, len))
        return -EFAULT;
    if (outcommit_holds(env_current()))
        return outcommit_write(buf, len);   // held until the next checkpoint commits
    char chunk[WRITE_CHUNK];
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done < WRITE_CHUNK ? len - done : WRITE_CHUNK;
        if (copyin(chunk, buf + done, n) < 0)
            return -EFAULT;
        uart_write(chunk, n);       // (held output takes the other path, above)
        done += n;
    }
    return (long)len;
}

static long sys_yield(void)
{
    struct vproc *v = sched_current();
    if (sched_others_waiting())
        sched_make_runnable(v);     // to the back of the queue
    return 0;
}

static long sys_getpid(void)
{
    return env_current()->id;
}

static long sys_clock_ns(void)
{
    return (long)timer_ns();
}

static long sys_map(uint64_t va, uint64_t len, uint64_t prot)
{
    if (prot & ~(uint64_t)(PROT_READ | PROT_WRITE | PROT_EXEC))
        return -EINVAL;
    // W^X: a page a program can both write and run is an injected-code
    // page; the ELF loader refuses such segments for the same reason.
    if ((prot & PROT_WRITE) && (prot & PROT_EXEC))
        return -EINVAL;
    // Bounded work per kernel entry (docs/restart.md): a program must not
    // hold the CPU for more than a tick, and zeroing is the cost here.
    if (len > MAP_MAX)
        return -E2BIG;
    long over = checkpoint_quota_check(env_current()->pml4, len);
    return over ? over : vm_map_user(env_current()->pml4, va, len, (int)prot);
}

// Restartable (docs/restart.md): a range with more to free than one call
// may do gives -ERESTART; the dispatcher rewinds and the rerun goes on
// where the last one stopped, since what is unmapped already is skipped.
static long sys_unmap(uint64_t va, uint64_t len)
{
    return vm_unmap_user(env_current()->pml4, va, len);
}

// Copy argv (argc user pointers to strings) into `strings`; args[i] point
// into it. 0 or -errno.
static long copy_argv(uint64_t argv_uva, long argc, char *args[], char *strings)
{
    long used = 0;
    for (long i = 0; i < argc; i++) {
        uint64_t p;
        if (copyin(&p, argv_uva + 8 * i, sizeof(p)) < 0)
            return -EFAULT;
        long n = strncpy_from_user(strings + used, p, SPAWN_ARG_BYTES - used);
        if (n == -ENAMETOOLONG)
            return -E2BIG;
        if (n < 0)
            return n;
        args[i] = strings + used;
        used += n + 1;
    }
    return 0;
}

static long sys_spawn(uint64_t name_uva, uint64_t argv_uva, uint64_t argc)
{
    char name[ENV_NAME_MAX];
    long r = strncpy_from_user(name, name_uva, sizeof(name));
    if (r < 0)
        return r == -ENAMETOOLONG ? -ENOENT : r;
    if ((long)argc < 0 || (long)argc > SPAWN_MAX_ARGS)
        return -E2BIG;
    const struct user_image *img = initrd_find(name);
    if (!img)
        return -ENOENT;
    char *strings = kmalloc(SPAWN_ARG_BYTES);
    if (!strings)
        return -ENOMEM;
    char *args[SPAWN_MAX_ARGS];
    r = copy_argv(argv_uva, (long)argc, args, strings);
    if (r == 0)
        r = env_spawn(name, img->data, img->len, (int)argc, args, env_current()->id);
    kfree(strings);
    if (r > 0)
        console_spawned(env_current(), (int)r);     // console_give(CONSOLE_NEXT_CHILD)
    return r;
}

// spawn with shared regions: the child holds them as its handles
// SHM_GIVEN(0..n-1) from its first instruction (it cannot run before this
// call returns: the kernel runs with interrupts off).
static long sys_spawn_shared(uint64_t name_uva, uint64_t argv_uva, uint64_t argc,
                             uint64_t handles_uva, uint64_t n)
{
    struct shm_region *gift[SHM_REGIONS_MAX];
    long r = shm_gift_check(env_current(), handles_uva, n, gift);
    if (r < 0)
        return r;
    r = sys_spawn(name_uva, argv_uva, argc);
    if (r > 0)
        shm_gift_give(env_find((int)r), gift, n);
    return r;
}

static long sys_wait(uint64_t id, uint64_t status_uva)
{
    return env_wait(env_current(), (long)id, status_uva);
}

static long sys_poweroff(uint64_t ok)
{
    return env_poweroff(env_current(), ok != 0);
}

static long sys_sleep_until(uint64_t deadline)
{
    if (timer_ns() >= deadline)
        return 0;
    sched_block(sched_current(), WAIT_SLEEP, deadline);
    return -ERESTART;
}

// snprintf-like: copies at most len bytes, NUL-terminated if len > 0;
// returns the full length of the command line.
static long sys_cmdline(uint64_t buf, uint64_t len)
{
    const char *text = cmdline_text();
    uint64_t full = strlen(text);
    if (len == 0)
        return (long)full;
    uint64_t n = full < len - 1 ? full : len - 1;
    if (copyout(buf, text, n) < 0 || copyout(buf + n, "", 1) < 0)
        return -EFAULT;
    return (long)full;
}

typedef long (*syscall_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

#define CALL(nr, fn) [nr] = (syscall_fn)(void (*)(void))fn

static const syscall_fn syscalls[SYS_COUNT] = {
    CALL(SYS_exit, sys_exit),
    CALL(SYS_write, sys_write),
    CALL(SYS_yield, sys_yield),
    CALL(SYS_getpid, sys_getpid),
    CALL(SYS_clock_ns, sys_clock_ns),
    CALL(SYS_map, sys_map),
    CALL(SYS_unmap, sys_unmap),
    CALL(SYS_spawn, sys_spawn),
    CALL(SYS_wait, sys_wait),
    CALL(SYS_poweroff, sys_poweroff),
    CALL(SYS_sleep_until, sys_sleep_until),
    CALL(SYS_cmdline, sys_cmdline),
    CALL(SYS_act_resume, sys_act_resume),
    CALL(SYS_act_enable, sys_act_enable),
    CALL(SYS_act_stats, sys_act_stats),
    CALL(SYS_futex_wait, sys_futex_wait),
    CALL(SYS_futex_wake, sys_futex_wake),
    CALL(SYS_shm_create, sys_shm_create),
    CALL(SYS_shm_map, sys_shm_map),
    CALL(SYS_shm_unmap, sys_shm_unmap),
    CALL(SYS_shm_close, sys_shm_close),
    CALL(SYS_spawn_shared, sys_spawn_shared),
    CALL(SYS_console_attach, sys_console_attach),
    CALL(SYS_console_wait, sys_console_wait),
    CALL(SYS_console_give, sys_console_give),
    CALL(SYS_act_wait, sys_act_wait),
    CALL(SYS_checkpoint, sys_checkpoint),
    CALL(SYS_outcommit, sys_outcommit),
};

void syscall_dispatch(struct trapframe *tf)
{
    struct cpu *c = mycpu();
    struct vproc *v = c->vproc;
    // An activation record whose restore completed is freed at the next
    // kernel entry. The restore sequence holds no syscall instruction, so
    // act_settle judges a syscall frame by rip - 2, never by rip (which is
    // ACT_RESTORE for a syscall in the last two bytes before the sequence).
    if (__builtin_expect(v->act_resuming != ACT_NONE, 0))
        act_settle(v);
    uint64_t nr = tf->rax;
    long r = -ENOSYS;
    if (nr < SYS_COUNT && syscalls[nr])
        r = syscalls[nr](tf->rdi, tf->rsi, tf->rdx, tf->r10, tf->r8, tf->r9);
    if (!c->vproc)
        schedule();     // the caller ended (exit, poweroff, killed): tf is gone with it
    if (r == -ERESTART)
        tf->rip -= SYSCALL_INSN_LEN;    // rax still holds nr
    else
        tf->rax = (uint64_t)r;
    // Activations, on the way out: a call that must wait becomes a blocked
    // upcall (the record, rewound as above, takes the wait), and woken
    // records are handed back (activation.c). Off the fast path.
    if (__builtin_expect(v->state != VP_RUNNING || v->act_wake_pending, 0) &&
        act_syscall_exit(v) < 0)
        schedule();     // killed: a hostile header, or the record pool exhausted
    if (v->state == VP_RUNNING && sysret_safe(tf))
        user_return_sysret(tf);    // the same vproc goes on: nothing to switch
    if (v->state == VP_RUNNING)
        vproc_resume(v);
    schedule();
}
