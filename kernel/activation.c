// Activations: a timer interrupt is delivered to the program's own
// scheduler as an upcall, with the interrupted thread saved in a record of
// the environment's activation segment (docs/activations.md).
//
// The segment is user-writable, so nothing the kernel decides rests on it:
// which records are in use, which one is being restored, whether the
// virtual processor is disabled, and every counter live in kernel memory
// (struct act_env, struct vproc). The kernel reads exactly three things from
// the segment, and validates each at the moment it reads it: the upcall
// entry, the upcall stack, and the frame of a record being resumed (copied
// first, then checked, so it cannot change between the two).
//
// The life of a record:
//   FREE --timer, vproc enabled--> IN USE --act_resume--> RESUMING
//   RESUMING --next entry from outside the restore range--> FREE
//   RESUMING --interrupt inside the restore range--> IN USE (re-delivered)
// RESUMING is "in use and vproc->act_resuming names it": at most one per
// vproc. While a vproc is disabled (its scheduler runs) interrupts save
// into the vproc's own frame in kernel memory and resume it directly, so
// records in use never exceed the preempted threads plus one.
//
// Blocking calls (docs/activations.md, "Blocking calls"). In use, a record
// is HELD (the program's), BLOCKED or WOKEN (struct act_slot):
//   a call that must wait, vproc enabled --> BLOCKED, with the wait's
//       (kind, key, deadline), and a blocked upcall: the vproc runs on
//   BLOCKED --the wait's wake (sched_wake, a deadline)--> WOKEN
//   WOKEN --unblocked upcall, or act_wait's result--> HELD
//   BLOCKED or WOKEN --restart--> HELD (the restarted upcall says so)
//   BLOCKED or WOKEN --act_resume--> HELD (cancelled): the call reruns
// The record's frame is the rewound one, so resuming it, whenever, runs
// the call again from scratch: nothing a program does with its records can
// make a call complete without the kernel having completed it.
#include "abi.h"
#include "activation.h"
#include "bitmap.h"
#include "checkpoint.h"
#include "env.h"
#include "gdt.h"
#include "kalloc.h"
#include "memlayout.h"
#include "printf.h"
#include "sched.h"
#include "string.h"
#include "syscall.h"
#include "timer.h"
#include "vm.h"
#include <stddef.h>

#define RFLAGS_ALWAYS1 (1UL << 1)
#define RFLAGS_TF   (1UL << 8)
#define RFLAGS_RF   (1UL << 16)
#define RFLAGS_AC   (1UL << 18)
// What a program may set: the arithmetic flags, DF and ID (popf can set them
// all at CPL 3 anyway); IF and bit 1 must be set.
#define RFLAGS_USER (0x8d5UL | (1UL << 10) | (1UL << 21))
#define UPCALL_RFLAGS (RFLAGS_IF | RFLAGS_ALWAYS1)

// actrestore.S addresses these fields by offset.
_Static_assert(offsetof(struct act_record, rax) == 112 && offsetof(struct act_record, rip) == 120 &&
               offsetof(struct act_record, rflags) == 136 && offsetof(struct act_record, rsp) == 144,
               "actrestore.S offsets");

extern const uint8_t act_restore_code[], act_restore_end[];    // actrestore.S

static uint32_t pool_size = ACT_POOL_DEFAULT;
// BLOCKED records in every environment: the wake paths skip their walk at 0.
// Of those, `timed` have a deadline, none before `soonest` (a bound that
// only the tick's walk tightens): most ticks look at two words.
static uint64_t waiting, timed, soonest;

void act_init(unsigned long n)
{
    if (n < 1)
        n = 1;
    if (n > ACT_POOL_MAX)
        n = ACT_POOL_MAX;
    pool_size = (uint32_t)n;
}

// ------------------------------------------------------------ pure parts

void act_pool_init(struct act_pool *p, uint64_t *bits, uint32_t size)
{
    p->size = size;
    p->nfree = size;
    p->used = bits;
    memset(bits, 0, BITMAP_WORDS(size) * sizeof(uint64_t));
}

int act_pool_alloc(struct act_pool *p)
{
    size_t i = bitmap_find_zero(p->used, p->size);
    if (i >= p->size)
        return -1;
    bitmap_set(p->used, i);
    p->nfree--;
    return (int)i;
}

bool act_pool_in_use(const struct act_pool *p, uint32_t i)
{
    return i < p->size && bitmap_test(p->used, i);
}

bool act_pool_free(struct act_pool *p, uint32_t i)
{
    if (!act_pool_in_use(p, i))
        return false;
    bitmap_clear(p->used, i);
    p->nfree++;
    return true;
}

uint64_t act_restore_len(void)
{
    return (uint64_t)(act_restore_end - act_restore_code);
}

bool act_in_restore(uint64_t rip)
{
    return rip >= ACT_RESTORE && rip - ACT_RESTORE < act_restore_len();
}

static bool user_address(uint64_t va)
{
    return va < USER_LIMIT;         // implies canonical and not the kernel half
}

const char *act_check_record(const struct act_record *r, uint64_t *value)
{
    uint64_t f = r->rflags;
    struct { bool bad; const char *field; uint64_t value; } checks[] = {
        { r->cs != USER_CS, "cs", r->cs },
        { r->ss != USER_DS, "ss", r->ss },
        { !(f & RFLAGS_IF), "rflags.IF", f },
        { f & RFLAGS_IOPL, "rflags.IOPL", f },
        { f & RFLAGS_TF, "rflags.TF", f },
        { f & RFLAGS_NT, "rflags.NT", f },
        { f & RFLAGS_AC, "rflags.AC", f },
        { f & RFLAGS_VM, "rflags.VM", f },
        { f & RFLAGS_RF, "rflags.RF", f },
        { f & ~(RFLAGS_USER | RFLAGS_IF | RFLAGS_ALWAYS1 | RFLAGS_TF | RFLAGS_IOPL |
                RFLAGS_NT | RFLAGS_RF | RFLAGS_VM | RFLAGS_AC), "rflags.reserved", f },
        { !user_address(r->rip), "rip", r->rip },
        { !user_address(r->rsp), "rsp", r->rsp },
    };
    for (unsigned i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        if (checks[i].bad) {
            *value = checks[i].value;
            return checks[i].field;
        }
    }
    return NULL;
}

const char *act_check_upcall(uint64_t entry, uint64_t stack, uint64_t *value)
{
    return act_check_upcall_for(ACT_PREEMPTED, entry, stack, value);
}

const char *act_check_upcall_for(uint32_t reason, uint64_t entry, uint64_t stack, uint64_t *value)
{
    static const char *const entry_names[ACT_NENTRIES] = {
        "entry[0]", "entry[1]", "entry[2]", "entry[3]",
        "entry[4]", "entry[5]", "entry[6]", "entry[7]",
    };
    if (entry < USER_BASE || !user_address(entry)) {
        *value = entry;
        return entry_names[reason % ACT_NENTRIES];
    }
    // The handler's first push lands below stack - 8: the whole stack must
    // be user space, 16-aligned for the SysV call convention.
    if (stack <= USER_BASE || stack > USER_LIMIT || (stack & 15)) {
        *value = stack;
        return "upcall_stack";
    }
    return NULL;
}

// ------------------------------------------------------- the segment

static uint64_t record_uva(uint32_t i)
{
    return ACT_RECORDS + (uint64_t)i * ACT_RECORD_SIZE;
}

// The kernel's view of record i, through the direct map: no SMAP window,
// and it cannot fault (the pool is mapped from creation to exit and
// unmap() refuses the activation area).
static struct act_record *record_kva(struct env *e, uint32_t i)
{
    uint64_t va = record_uva(i);
    uint64_t *slot = vm_pte(e->pml4, va);
    if (slot)
        *slot |= PTE_D;                 // written behind the CPU's back: checkpoints must see it
    uint64_t pte = slot ? *slot : 0;
    return (struct act_record *)((uint8_t *)P2V(pte & PTE_ADDR) + (va & (PAGE_SIZE - 1)));
}

static struct act_slot *slot(struct act_env *a, uint32_t i)
{
    return &a->slots[i / ACT_SLOTS_PER_CHUNK][i % ACT_SLOTS_PER_CHUNK];
}

int act_record_state(const struct act_env *a, uint32_t i)
{
    if (i >= a->pool.size || !act_pool_in_use(&a->pool, i))
        return SLOT_FREE;
    return a->slots[i / ACT_SLOTS_PER_CHUNK][i % ACT_SLOTS_PER_CHUNK].state;
}

// The pool's bitmap says in use; the slot says how.
static int record_alloc(struct act_env *a)
{
    int i = act_pool_alloc(&a->pool);
    if (i >= 0)
        *slot(a, (uint32_t)i) = (struct act_slot){ .state = SLOT_HELD, .next = ACT_NONE };
    return i;
}

static void record_free(struct act_env *a, uint32_t i)
{
    if (act_pool_free(&a->pool, i))
        slot(a, i)->state = SLOT_FREE;
}

// The header's copy of the counters, for the program to read. Never read
// back by the kernel.
static void mirror(struct act_env *a, struct vproc *v)
{
    struct act_header *h = a->header;
    h->disabled = v->act_disabled;
    h->delivered = a->stats.delivered;
    h->redelivered = a->stats.redelivered;
    h->resumed = a->stats.resumed;
    h->freed = a->stats.freed;
    h->disabled_saves = a->stats.disabled_saves;
    h->free_records = a->pool.nfree;
    if (checkpoint_enabled())           // a page walk per upcall, only when someone looks at D
        vm_mark_dirty(v->env->pml4, ACT_SEGMENT);   // through the direct map: checkpoints must see it
}

static int map_segment(struct env *e, uint32_t pool_size, struct act_header **header)
{
    uint64_t pool_bytes = (uint64_t)pool_size * ACT_RECORD_SIZE;
    uint64_t pool_pages = (pool_bytes + PAGE_SIZE - 1) / PAGE_SIZE;
    int r = vm_map_act(e->pml4, ACT_RESTORE, PAGE_SIZE, VM_READ | VM_EXEC);
    if (r == 0)
        r = vm_map_act(e->pml4, ACT_SEGMENT, ACT_HEADER_SIZE + pool_pages * PAGE_SIZE,
                       VM_READ | VM_WRITE);
    if (r < 0)
        return r;
    // The restore page: the sequence, then int3 to the end of the page.
    uint8_t *code = P2V(vm_lookup(e->pml4, ACT_RESTORE) & PTE_ADDR);
    memset(code, 0xcc, PAGE_SIZE);
    memcpy(code, act_restore_code, act_restore_len());
    *header = P2V(vm_lookup(e->pml4, ACT_SEGMENT) & PTE_ADDR);
    return 0;
}

static void free_slots(struct act_env *a)
{
    for (unsigned k = 0; k < ACT_SLOT_CHUNKS; k++) {
        kfree(a->slots[k]);
        a->slots[k] = NULL;
    }
}

// One act_slot per record, in chunks of at most a page (kmalloc's limit).
static int alloc_slots(struct act_env *a, uint32_t pool_size)
{
    for (uint32_t first = 0; first < pool_size; first += ACT_SLOTS_PER_CHUNK) {
        uint32_t n = pool_size - first < ACT_SLOTS_PER_CHUNK ? pool_size - first
                                                             : (uint32_t)ACT_SLOTS_PER_CHUNK;
        a->slots[first / ACT_SLOTS_PER_CHUNK] = kmalloc(n * sizeof(struct act_slot));
        if (!a->slots[first / ACT_SLOTS_PER_CHUNK]) {
            free_slots(a);
            return -ENOMEM;
        }
    }
    return 0;
}

// e's activation state with a pool of `size` records (1..ACT_POOL_MAX).
static int create_sized(struct env *e, uint32_t size)
{
    struct act_env *a = kmalloc(sizeof(*a) + BITMAP_WORDS(size) * sizeof(uint64_t));
    if (!a)
        return -ENOMEM;
    int r = alloc_slots(a, size);   // kmalloc zeroes: every slot FREE
    if (r == 0)
        r = map_segment(e, size, &a->header);
    if (r < 0) {
        free_slots(a);
        kfree(a);
        return r;
    }
    act_pool_init(&a->pool, a->bits, size);
    memset(&a->stats, 0, sizeof(a->stats));
    a->seq = 0;
    a->event_seq = 0;
    a->blocked_head = a->woken_head = a->woken_tail = ACT_NONE;
    a->nblocked = 0;
    a->used = false;
    a->header->magic = ACT_MAGIC;
    a->header->version = ACT_VERSION;
    a->header->pool_size = size;
    a->header->free_records = size;
    e->act = a;
    return 0;
}

int act_env_create(struct env *e)
{
    return create_sized(e, pool_size);
}

static void fill_stats(const struct act_env *a, struct act_stats *s)
{
    *s = a->stats;
    s->pool_size = a->pool.size;
    s->free_records = a->pool.nfree;
    s->blocked_now = a->nblocked;
}

void act_env_destroy(struct env *e)
{
    struct act_env *a = e->act;
    if (!a)
        return;
    struct act_stats s;
    fill_stats(a, &s);
    // Every program registers through crt0; only one that was actually
    // interrupted has numbers worth a line in the log.
    if (a->used && (s.delivered || s.redelivered || s.disabled_saves || s.idle_waits))
        kprintf("act: env %d (%s) stats pool=%lu free=%lu delivered=%lu redelivered=%lu "
                "resumed=%lu freed=%lu disabled_saves=%lu blocked=%lu blocked_upcalls=%lu "
                "unblocked_upcalls=%lu unblocked_waits=%lu idle_waits=%lu cancelled=%lu "
                "blocked_now=%lu\n", e->id, e->name,
                s.pool_size, s.free_records, s.delivered, s.redelivered, s.resumed, s.freed,
                s.disabled_saves, s.blocked, s.blocked_upcalls, s.unblocked_upcalls,
                s.unblocked_waits, s.idle_waits, s.cancelled, s.blocked_now);
    waiting -= a->nblocked;     // its waits end with it
    timed -= a->ntimed;
    free_slots(a);
    kfree(a);
    e->act = NULL;
}

// ------------------------------------------------------------ delivery

static void kill_hostile_record(struct env *e, uint32_t i, const char *field, uint64_t value)
{
    char why[96];
    snprintf(why, sizeof(why), "hostile activation record %u: %s 0x%lx", i, field, value);
    env_kill(e, why);
}

bool act_settle(struct vproc *v)
{
    // A syscall frame's rip is the instruction *after* `syscall`: a program
    // whose own code ends at ACT_RESTORE - 2 with a syscall would look as if
    // it entered from inside the sequence, and the record would never be
    // freed. Judge the syscall instruction itself (the sequence holds none).
    uint64_t at = v->tf.rip;
    if (v->tf.vector == VEC_SYSCALL)
        at -= 2;
    if (act_in_restore(at))
        return true;
    struct act_env *a = v->env->act;
    record_free(a, (uint32_t)v->act_resuming);
    v->act_resuming = ACT_NONE;
    a->stats.freed++;
    mirror(a, v);
    return false;
}

// Save the interrupted user state (the vproc's frame) into record r.
static void save_frame(struct act_record *r, const struct trapframe *tf)
{
    r->r15 = tf->r15; r->r14 = tf->r14; r->r13 = tf->r13; r->r12 = tf->r12;
    r->r11 = tf->r11; r->r10 = tf->r10; r->r9 = tf->r9; r->r8 = tf->r8;
    r->rbp = tf->rbp; r->rdi = tf->rdi; r->rsi = tf->rsi; r->rdx = tf->rdx;
    r->rcx = tf->rcx; r->rbx = tf->rbx; r->rax = tf->rax;
    r->rip = tf->rip; r->cs = tf->cs; r->rflags = tf->rflags; r->rsp = tf->rsp; r->ss = tf->ss;
}

// The frame part of a record (what act_check_record judges), word by word:
// the kernel's memcpy goes byte by byte, and this is on the resume path.
static void copy_frame(struct act_record *dst, const struct act_record *src)
{
    const volatile uint64_t *s = (const volatile uint64_t *)src;
    uint64_t *d = (uint64_t *)dst;
    for (unsigned k = 0; k < offsetof(struct act_record, reason) / 8; k++)
        d[k] = s[k];
}

// Turn v's frame into the entry of its scheduler. rcx and r11 are dead
// there (VEC_UPCALL), so it may leave through sysret.
static void enter_upcall(struct vproc *v, uint64_t entry, uint64_t stack, uint64_t record,
                         uint32_t reason)
{
    struct trapframe *tf = &v->tf;
    tf->rip = entry;
    tf->rsp = stack - 8;            // as if called: rsp % 16 == 8
    tf->rflags = UPCALL_RFLAGS;
    tf->rdi = record;
    tf->rsi = reason;
    tf->rdx = (uint64_t)v->index;
    tf->rbp = 0;                    // user backtraces end here
    tf->vector = VEC_UPCALL;
}

// The entry the program registered for `reason`, read once, or 0.
static uint64_t registered(struct act_env *a, uint32_t reason)
{
    return *(volatile uint64_t *)&a->header->entry[reason];
}

// The upcall target for `reason`, each word read once and judged: 1 and
// *entry, *stack; 0 if nothing is registered and `required` is false; -1
// if the environment was killed (hostile header).
static int upcall_target(struct env *e, uint32_t reason, bool required, uint64_t *entry,
                         uint64_t *stack)
{
    struct act_env *a = e->act;
    *entry = registered(a, reason);
    if (!*entry && !required)
        return 0;
    *stack = *(volatile uint64_t *)&a->header->upcall_stack;
    a->used = true;
    uint64_t bad;
    const char *field = act_check_upcall_for(reason, *entry, *stack, &bad);
    if (field) {
        char why[80];
        snprintf(why, sizeof(why), "hostile activation header: %s 0x%lx", field, bad);
        env_kill(e, why);
        return -1;
    }
    return 1;
}

// The record that holds the thread v's frame holds for an upcall: `reuse`
// (a record holding it already: a restore cut short, or one being resumed)
// or a new one filled from the frame; *r: it, through the direct map. -1:
// the pool is exhausted (killed).
static int hold_thread(struct vproc *v, int reuse, struct act_record **r)
{
    struct env *e = v->env;
    struct act_env *a = e->act;
    if (reuse != ACT_NONE) {
        // The record is intact (the restore sequence only reads it) and
        // still holds the whole thread. Hand it back.
        if (v->act_resuming == reuse)
            v->act_resuming = ACT_NONE;
        a->stats.redelivered++;
        *r = record_kva(e, (uint32_t)reuse);
        return reuse;
    }
    int i = record_alloc(a);
    if (i < 0) {
        char why[80];
        snprintf(why, sizeof(why), "activation record pool exhausted (%u records in use)",
                 a->pool.size);
        env_kill(e, why);
        return -1;
    }
    *r = record_kva(e, (uint32_t)i);
    save_frame(*r, &v->tf);
    a->stats.delivered++;
    return i;
}

// Label record i (r, its kernel view) for an upcall with `reason`.
static void label(struct vproc *v, struct act_record *r, uint32_t i, uint32_t reason, uint64_t seq)
{
    r->reason = reason;
    r->index = i;
    r->vproc = (uint32_t)v->index;
    r->flags = 0;
    r->seq = seq;
}

// Enter v's scheduler at `entry` with record i (r), disabled.
static void upcall(struct vproc *v, uint32_t reason, uint32_t i, struct act_record *r,
                   uint64_t entry, uint64_t stack)
{
    struct act_env *a = v->env->act;
    label(v, r, i, reason, ++a->seq);
    // An upcall that changes which threads may run: an idle act_wait
    // that has not seen it returns at once.
    if (reason == ACT_UNBLOCKED || reason == ACT_RESTARTED)
        a->event_seq = a->seq;
    v->act_disabled = true;
    enter_upcall(v, entry, stack, record_uva(i), reason);
    mirror(a, v);
}

// Enter v's scheduler at entry[reason] with the thread v's frame holds.
// `reuse` is a record that holds that thread already (a restore cut short,
// or a record being resumed), ACT_NONE to save the frame into a new one.
// 1: delivered; 0: nothing registered for `reason` (v untouched); -1: the
// environment was killed (hostile header, pool exhausted).
static int deliver(struct vproc *v, uint32_t reason, int reuse)
{
    uint64_t entry, stack;
    int t = upcall_target(v->env, reason, false, &entry, &stack);
    if (t <= 0)
        return t;
    struct act_record *r;
    int i = hold_thread(v, reuse, &r);
    if (i < 0)
        return -1;
    upcall(v, reason, (uint32_t)i, r, entry, stack);
    return 1;
}

bool act_preempt(struct vproc *v, bool cut_short)
{
    struct act_env *a = v->env->act;
    if (v->act_disabled) {
        a->stats.disabled_saves++;
        mirror(a, v);
        return true;                // resume directly from the vproc's frame
    }
    // No scheduler registered: plain preemption (a restore cut short just
    // goes on, and the next entry settles it).
    return deliver(v, ACT_PREEMPTED, cut_short ? v->act_resuming : ACT_NONE) >= 0;
}

int act_restart(struct vproc *v)
{
    struct act_env *a = v->env->act;
    if (!a || !registered(a, ACT_RESTARTED))
        return 0;                   // the rewound call just reruns
    if (v->act_disabled) {
        // Its scheduler runs on the upcall stack, which a new upcall would
        // take from under it: deliver once it lets go (act_resume, act_enable).
        v->act_restart_pending = true;
        return 0;
    }
    bool cut_short = v->act_resuming != ACT_NONE && act_settle(v);
    return deliver(v, ACT_RESTARTED, cut_short ? v->act_resuming : ACT_NONE);
}


// ------------------------------------------------------- blocking calls

// The blocked list (unordered) and the woken FIFO are linked through
// act_slot.next; a record is on at most one of them.
static void blocked_push(struct act_env *a, uint32_t i)
{
    struct act_slot *s = slot(a, i);
    s->next = a->blocked_head;
    a->blocked_head = (int32_t)i;
    a->nblocked++;
    waiting++;
    if (s->deadline) {
        a->ntimed++;
        if (!timed++ || s->deadline < soonest)
            soonest = s->deadline;
    }
}

// Unlink i, whose predecessor on the blocked list is prev (or ACT_NONE).
static void blocked_unlink(struct act_env *a, int32_t prev, uint32_t i)
{
    struct act_slot *s = slot(a, i);
    if (prev == ACT_NONE)
        a->blocked_head = s->next;
    else
        slot(a, (uint32_t)prev)->next = s->next;
    a->nblocked--;
    waiting--;
    if (s->deadline) {
        a->ntimed--;
        timed--;
    }
}

static void woken_append(struct act_env *a, uint32_t i)
{
    slot(a, i)->next = ACT_NONE;
    if (a->woken_tail == ACT_NONE)
        a->woken_head = (int32_t)i;
    else
        slot(a, (uint32_t)a->woken_tail)->next = (int32_t)i;
    a->woken_tail = (int32_t)i;
}

// Every vproc of e knows whether there is something to hand back.
static void set_wake_pending(struct env *e, bool pending)
{
    for (int k = 0; k < e->nvprocs; k++)
        e->vprocs[k]->act_wake_pending = pending;
}

// The first woken record, now HELD (the caller hands it back), or ACT_NONE.
static int32_t woken_pop(struct env *e)
{
    struct act_env *a = e->act;
    int32_t i = a->woken_head;
    if (i == ACT_NONE)
        return ACT_NONE;
    struct act_slot *s = slot(a, (uint32_t)i);
    a->woken_head = s->next;
    if (a->woken_head == ACT_NONE) {
        a->woken_tail = ACT_NONE;
        set_wake_pending(e, false);
    }
    s->state = SLOT_HELD;
    s->next = ACT_NONE;
    return i;
}

// Forget the wait (derived state: a rerun computes it again).
static void drop_wait(struct act_slot *s, enum act_slot_state to)
{
    s->state = (uint8_t)to;
    s->kind = WAIT_NONE;
    s->key = s->deadline = 0;
}

// BLOCKED i (after prev on the list) is woken: queue it to be handed back,
// and wake e's vproc if it idles in act_wait for exactly this.
static void wake_record(struct env *e, int32_t prev, uint32_t i)
{
    struct act_env *a = e->act;
    blocked_unlink(a, prev, i);
    drop_wait(slot(a, i), SLOT_WOKEN);
    woken_append(a, i);
    set_wake_pending(e, true);
    for (int k = 0; k < e->nvprocs; k++) {
        struct vproc *v = e->vprocs[k];
        if (v->state == VP_BLOCKED && v->wait_kind == WAIT_ACT)
            sched_make_runnable(v);     // its act_wait reruns and returns the record
    }
}

// Take record i off whichever list it is on, HELD: act_resume before the
// wake. Nothing is lost: its frame is rewound, so the call reruns.
static void cancel_wait(struct env *e, uint32_t i)
{
    struct act_env *a = e->act;
    struct act_slot *s = slot(a, i);
    if (s->state == SLOT_BLOCKED) {
        int32_t prev = ACT_NONE;
        for (int32_t k = a->blocked_head; k != (int32_t)i; prev = k, k = slot(a, (uint32_t)k)->next)
            ;
        blocked_unlink(a, prev, i);
    } else {
        int32_t prev = ACT_NONE;
        for (int32_t k = a->woken_head; k != (int32_t)i; prev = k, k = slot(a, (uint32_t)k)->next)
            ;
        if (prev == ACT_NONE)
            a->woken_head = s->next;
        else
            slot(a, (uint32_t)prev)->next = s->next;
        if (a->woken_tail == (int32_t)i)
            a->woken_tail = prev;
        if (a->woken_head == ACT_NONE)
            set_wake_pending(e, false);
    }
    drop_wait(s, SLOT_HELD);
    s->next = ACT_NONE;
    a->stats.cancelled++;
}

// v's call has just blocked v (sched_block) and been rewound: if v's
// program takes blocked upcalls, the record takes the wait instead and v
// enters entry[ACT_BLOCKED]. 1: so; 0: v stays blocked (no activations, an
// idle act_wait, or v disabled: its scheduler has the upcall stack);
// -1: killed.
static int act_block(struct vproc *v)
{
    struct env *e = v->env;
    struct act_env *a = e->act;
    if (!a || v->act_disabled || v->wait_kind == WAIT_ACT || !registered(a, ACT_UNBLOCKED))
        return 0;
    uint64_t entry, stack;
    int t = upcall_target(e, ACT_BLOCKED, false, &entry, &stack);
    if (t <= 0)
        return t;
    struct act_record *r;
    int i = hold_thread(v, ACT_NONE, &r);
    if (i < 0)
        return -1;
    struct act_slot *s = slot(a, (uint32_t)i);
    s->state = SLOT_BLOCKED;
    s->kind = (uint8_t)v->wait_kind;
    s->key = v->wait_key;
    s->deadline = v->wait_kind == WAIT_SLEEP ? v->wait_key : v->wait_deadline;
    blocked_push(a, (uint32_t)i);       // after the deadline: it counts the timed ones
    // The vproc itself never waited: it goes on into the scheduler.
    v->state = VP_RUNNING;
    v->wait_kind = WAIT_NONE;
    v->wait_deadline = 0;
    a->stats.blocked_upcalls++;
    upcall(v, ACT_BLOCKED, (uint32_t)i, r, entry, stack);
    return 1;
}

int act_deliver_unblocked(struct vproc *v)
{
    struct env *e = v->env;
    struct act_env *a = e->act;
    if (!a || a->woken_head == ACT_NONE) {
        v->act_wake_pending = false;
        return 0;
    }
    // It blocked with both entries registered: one gone now is hostile.
    uint64_t entry, stack;
    if (upcall_target(e, ACT_UNBLOCKED, true, &entry, &stack) < 0)
        return -1;
    // The thread v holds: a record being resumed holds it already (its
    // restore has not begun), else the frame goes into a new one.
    struct act_record *r;
    int w = hold_thread(v, v->act_resuming, &r);
    if (w < 0)
        return -1;
    uint32_t i = (uint32_t)woken_pop(e);
    a->stats.unblocked_upcalls++;
    upcall(v, ACT_UNBLOCKED, (uint32_t)w, r, entry, stack);
    label(v, record_kva(e, i), i, ACT_UNBLOCKED, a->seq);
    v->tf.r10 = record_uva(i);      // the record handed back
    return 1;
}

int act_syscall_exit(struct vproc *v)
{
    if (v->state == VP_BLOCKED) {
        int r = act_block(v);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    if (v->state == VP_RUNNING && v->act_wake_pending && !v->act_disabled)
        return act_deliver_unblocked(v) < 0 ? -1 : 0;
    return 0;
}

// Live environments with blocked records, in table order.
static struct env *next_waiting_env(int *x)
{
    for (; *x < ENV_MAX; (*x)++) {
        struct env *e = env_slot(*x);
        if (e && e->state == ENV_LIVE && e->act && e->act->nblocked) {
            (*x)++;
            return e;
        }
    }
    return NULL;
}

long act_wake(int kind, uint64_t key, uint64_t n)
{
    long woken = 0;
    int x = 0;
    struct env *e;
    while (waiting && (uint64_t)woken < n && (e = next_waiting_env(&x))) {
        struct act_env *a = e->act;
        int32_t prev = ACT_NONE;
        for (int32_t i = a->blocked_head; i != ACT_NONE && (uint64_t)woken < n;) {
            struct act_slot *s = slot(a, (uint32_t)i);
            int32_t next = s->next;
            if (s->kind == kind && s->key == key) {
                wake_record(e, prev, (uint32_t)i);
                woken++;
            } else {
                prev = i;
            }
            i = next;
        }
    }
    return woken;
}

void act_tick(void)
{
    if (!timed)
        return;
    uint64_t now = timer_ns();
    if (!sched_deadline_passed(soonest, now))
        return;
    uint64_t next_soonest = UINT64_MAX;
    int x = 0;
    struct env *e;
    while ((e = next_waiting_env(&x))) {
        struct act_env *a = e->act;
        int32_t prev = ACT_NONE;
        for (int32_t i = a->blocked_head; i != ACT_NONE;) {
            struct act_slot *s = slot(a, (uint32_t)i);
            int32_t next = s->next;
            if (s->deadline && sched_deadline_passed(s->deadline, now)) {
                wake_record(e, prev, (uint32_t)i);
            } else {
                if (s->deadline && s->deadline < next_soonest)
                    next_soonest = s->deadline;
                prev = i;
            }
            i = next;
        }
    }
    soonest = next_soonest;
}

int act_drop_waits(int *dropped)
{
    int total = 0;
    int x = 0;
    struct env *e;
    while ((e = next_waiting_env(&x))) {
        struct act_env *a = e->act;
        // A program with the restarted upcall learns from it that every
        // record is back (it resumes them all); any other gets each one
        // handed back as woken (a spurious wakeup).
        bool told = registered(a, ACT_RESTARTED) != 0;
        while (a->blocked_head != ACT_NONE) {
            uint32_t i = (uint32_t)a->blocked_head;
            dropped[slot(a, i)->kind]++;
            total++;
            if (told) {
                blocked_unlink(a, ACT_NONE, i);
                drop_wait(slot(a, i), SLOT_HELD);
                slot(a, i)->next = ACT_NONE;
            } else {
                wake_record(e, ACT_NONE, i);
            }
        }
    }
    // Woken records not yet handed back are back with the restarted upcall
    // too: never handed back twice.
    for (int k = 0; k < ENV_MAX; k++) {
        e = env_slot(k);
        if (e && e->state == ENV_LIVE && e->act && registered(e->act, ACT_RESTARTED))
            while (woken_pop(e) != ACT_NONE)
                ;
    }
    return total;
}

long sys_act_wait(uint64_t deadline, uint64_t seen)
{
    struct vproc *v = sched_current();
    struct env *e = v->env;
    struct act_env *a = e->act;
    a->used = true;
    v->act_idle = false;
    // Disabled, no upcall could end the wait: its scheduler has the stack.
    if (v->act_disabled)
        return -EINVAL;
    int32_t i = woken_pop(e);
    if (i != ACT_NONE) {
        a->stats.unblocked_waits++;
        label(v, record_kva(e, (uint32_t)i), (uint32_t)i, ACT_UNBLOCKED, ++a->seq);
        mirror(a, v);
        return (long)record_uva((uint32_t)i);
    }
    if (a->event_seq > seen || (deadline && timer_ns() >= deadline))
        return 0;
    sched_block(v, WAIT_ACT, 0);
    v->wait_deadline = deadline;
    v->act_idle = true;
    a->stats.idle_waits++;
    return -ERESTART;
}

// ------------------------------------------------------------ syscalls

long sys_act_resume(uint64_t uva)
{
    struct vproc *v = sched_current();
    struct env *e = v->env;
    struct act_env *a = e->act;
    a->used = true;
    // Only a record the kernel handed out, at its start, may be resumed:
    // anything else means the program's scheduler is broken or hostile.
    // <i> in the message is the slot the address falls in, or pool_size
    // for an address outside the pool.
    uint64_t off = uva - ACT_RECORDS;
    uint32_t i = uva >= ACT_RECORDS && off / ACT_RECORD_SIZE < a->pool.size
                     ? (uint32_t)(off / ACT_RECORD_SIZE) : a->pool.size;
    if (off % ACT_RECORD_SIZE || !act_pool_in_use(&a->pool, i)) {
        kill_hostile_record(e, i, "address", uva);
        return 0;
    }
    // Copy once, then judge the copy. The restore sequence pops the record
    // itself, at CPL 3: should it change after this check (only another
    // vproc could do that), the CPU's own rules still hold: iretq at CPL 3
    // cannot raise privilege, set IOPL or clear IF, and a bad selector or
    // address faults in user mode, which kills only this environment.
    struct act_record r;
    copy_frame(&r, record_kva(e, i));
    uint64_t bad;
    const char *field = act_check_record(&r, &bad);
    if (field) {
        kill_hostile_record(e, i, field, bad);
        return 0;
    }
    // A record still waiting (its wake not come, or not handed back): the
    // call reruns, and blocks again if it must.
    uint8_t state = slot(a, i)->state;
    if (state == SLOT_BLOCKED || state == SLOT_WOKEN)
        cancel_wait(e, i);
    if (v->act_restart_pending) {
        // A restart came while the scheduler ran: it gets the thread it
        // was about to resume back, in a restarted upcall.
        v->act_restart_pending = false;
        if (deliver(v, ACT_RESTARTED, (int)i) != 0)
            return 0;               // delivered, or the environment was killed
    }
    v->act_resuming = (int)i;
    v->act_disabled = false;
    a->stats.resumed++;
    mirror(a, v);
    // Leave through the restore sequence, with rsp at the record. The other
    // registers are the sequence's to pop: rcx/r11 are dead, sysret is fine.
    v->tf.rip = ACT_RESTORE;
    v->tf.rsp = uva;
    v->tf.rflags = UPCALL_RFLAGS;
    return 0;
}

long sys_act_enable(void)
{
    struct vproc *v = sched_current();
    struct act_env *a = v->env->act;
    a->used = true;
    v->act_disabled = false;
    mirror(a, v);
    if (v->act_restart_pending) {
        // A restart came while the scheduler ran: the thread it switched
        // to (this frame, the call complete) goes to a restarted upcall.
        v->act_restart_pending = false;
        v->tf.rax = 0;
        deliver(v, ACT_RESTARTED, ACT_NONE);
    }
    return 0;
}

long sys_act_stats(uint64_t stats_uva)
{
    struct act_env *a = env_current()->act;
    a->used = true;
    struct act_stats s;
    fill_stats(a, &s);
    return copyout(stats_uva, &s, sizeof(s)) < 0 ? -EFAULT : 0;
}

// ------------------------------------------------------------ restore

int act_env_restore(struct env *e, uint32_t size, uint64_t seq, uint64_t event_seq,
                    const struct act_stats *stats, bool used)
{
    // A checkpoint's pool keeps its size (its records are numbered in it),
    // whatever act_pool= this boot has.
    if (size < 1 || size > ACT_POOL_MAX)
        return -EINVAL;
    int r = create_sized(e, size);
    if (r < 0)
        return r;
    struct act_env *a = e->act;
    a->seq = seq;
    a->event_seq = event_seq > seq ? seq : event_seq;
    a->stats = *stats;
    a->used = used;
    return 0;
}

int act_restore_record(struct env *e, uint32_t i, bool woken)
{
    struct act_env *a = e->act;
    if (!a || i >= a->pool.size || act_pool_in_use(&a->pool, i))
        return -EINVAL;
    a->pool.nfree--;
    bitmap_set(a->pool.used, i);
    *slot(a, i) = (struct act_slot){ .state = SLOT_HELD, .next = ACT_NONE };
    // A wait is derived state: the record is the program's again, told by
    // the restarted upcall or (without one) handed back as woken.
    if (woken && !registered(a, ACT_RESTARTED)) {
        slot(a, i)->state = SLOT_WOKEN;
        woken_append(a, i);
        set_wake_pending(e, true);
    }
    return 0;
}

bool act_record_in_use(const struct env *e, uint32_t i)
{
    return e->act && i < e->act->pool.size && act_pool_in_use(&e->act->pool, i);
}

void act_restore_done(struct env *e, struct vproc *v)
{
    struct act_env *a = e->act;
    // The kernel's words of the header are the kernel's, whatever the disk said.
    a->header->magic = ACT_MAGIC;
    a->header->version = ACT_VERSION;
    a->header->pool_size = a->pool.size;
    mirror(a, v);
}

void act_env_discard(struct env *e)
{
    if (e->act)
        e->act->used = false;   // nothing ran: no stats line
    act_env_destroy(e);
}
