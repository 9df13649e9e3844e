// Restore at boot: rebuild the system a checkpoint describes.
//
// A checkpoint holds user state only (docs/persistence.md, "Format"):
// environments, their pages, shared regions and who maps them where,
// threads as register frames (a blocked one rewound onto its `syscall`),
// activation records in use, the console holder and the clock. Everything
// else is derived and rebuilt here by the running kernel, whatever build
// wrote the disk: page tables, the kernel's entry area, the activation
// restore page, kmalloc'd structures, run queues. Waits are not saved at
// all: a blocked thread comes back runnable at its rewound call and runs
// it again, exactly as after an in-place restart (restart.c), and every
// environment that registered one gets a *restarted* upcall.
//
// The disk is hostile input (restore_check.c judges every record). The
// manifest is read through a one-block window by offset and length, each
// checked against the manifest's size, so nothing on the disk ever indexes
// kernel memory; its CRC32C is verified in a first pass before any record
// is used, and each page's CRC32C as the page is read. Environments are
// rebuilt one record at a time; should any record be refused or memory run
// out half-way, everything built so far is discarded before anything has
// run (env_discard_all), and the other slot is tried, then a clean boot.
#include <stddef.h>
#include "abi.h"
#include "activation.h"
#include "blk.h"
#include "checkpoint.h"
#include "cmdline.h"
#include "console.h"
#include "crc32c.h"
#include "env.h"
#include "memlayout.h"
#include "outcommit.h"
#include "printf.h"
#include "restore.h"
#include "restore_check.h"
#include "sched.h"
#include "shm.h"
#include "string.h"
#include "timer.h"
#include "uart.h"
#include "vm.h"
#include "x86.h"

#define SECTORS_PER_BLOCK CKPT_SECTORS_PER_BLOCK
#define FXSAVE_MXCSR_MASK 28
#define MXCSR_MASK_DEFAULT 0xffbf   // fxsave's mask field 0: the SDM's default
#define SHM_MAX (ENV_MAX * SHM_REGIONS_MAX)

static const char slot_name[CKPT_SLOTS] = { 'A', 'B' };

// The restore under way: the header it follows, the manifest window, the
// regions made so far (their ids are checkpoint-local indices), the counts
// for the line, and why it failed.
static struct {
    struct ckpt_header h;
    uint64_t window_block;          // the manifest block in window[], or UINT64_MAX
    uint8_t window[CKPT_BLOCK] __attribute__((aligned(16)));
    struct shm_region *region[SHM_MAX];
    uint32_t nregions;
    uint64_t pages;
    uint32_t envs;
    bool finished;                  // a valid checkpoint of a system with nothing left running
    char why[112];
} rs;

// Refuse the checkpoint: the reason for the line; always false.
static bool refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool refuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rs.why, sizeof(rs.why), fmt, ap);
    va_end(ap);
    return false;
}

static bool refuse_field(const char *what, const char *field, uint64_t value)
{
    return refuse("%s: %s 0x%lx", what, field, value);
}

static int read_blocks(uint64_t block, void *buf, uint32_t n)
{
    return blk_read(block * SECTORS_PER_BLOCK, buf, n * SECTORS_PER_BLOCK);
}

// ------------------------------------------------------------ the manifest

// Manifest block `block` (absolute) in the window: false (refused) if unreadable.
static bool window_load(uint64_t block)
{
    if (block == rs.window_block)
        return true;
    rs.window_block = UINT64_MAX;
    if (read_blocks(block, rs.window, 1) < 0)
        return refuse("manifest: block %lu unreadable", block);
    rs.window_block = block;
    return true;
}

// Copy [off, off + len) of the manifest into dst: false (refused) if any
// of it lies outside the manifest or cannot be read.
static bool manifest_get(uint64_t off, void *dst, uint64_t len)
{
    if (off > rs.h.manifest_bytes || len > rs.h.manifest_bytes - off)
        return refuse("manifest: read past its end at 0x%lx", off);
    uint8_t *d = dst;
    while (len) {
        if (!window_load(rs.h.manifest_block + off / CKPT_BLOCK))
            return false;
        uint64_t in = off % CKPT_BLOCK, n = CKPT_BLOCK - in < len ? CKPT_BLOCK - in : len;
        memcpy(d, rs.window + in, n);
        d += n;
        off += n;
        len -= n;
    }
    return true;
}

// Record i of section sec (bounds from the checked section table).
static bool record(int sec, uint32_t i, void *dst)
{
    const struct ckpt_section_desc *s = &rs.h.section[sec];
    if (i >= s->count)
        return refuse("section %d: record %u of %u", sec, i, s->count);
    return manifest_get(s->offset + (uint64_t)i * s->record_size, dst, s->record_size);
}

// The whole manifest against its CRC32C, before any record of it is used.
static bool manifest_crc_ok(void)
{
    uint32_t crc = 0;
    for (uint64_t off = 0; off < rs.h.manifest_bytes; off += CKPT_BLOCK) {
        uint64_t left = rs.h.manifest_bytes - off, n = left < CKPT_BLOCK ? left : CKPT_BLOCK;
        if (!window_load(rs.h.manifest_block + off / CKPT_BLOCK))
            return false;
        crc = crc32c_update(crc, rs.window, n);
    }
    return crc == rs.h.manifest_crc || refuse_field("manifest", "manifest_crc", rs.h.manifest_crc);
}

// ------------------------------------------------------------ environments

static bool restore_env(const struct ckpt_env *ce)
{
    uint64_t bad;
    const char *field = ckpt_check_env(ce, &rs.h, &bad);
    if (field)
        return refuse_field("env record", field, bad);
    if (env_find(ce->id))
        return refuse("env %d: saved twice", ce->id);
    char name[CKPT_NAME_MAX + 1];
    memcpy(name, ce->name, CKPT_NAME_MAX);
    name[CKPT_NAME_MAX] = '\0';
    bool zombie = ce->state == CKPT_ENV_ZOMBIE;
    struct env *e = env_restore_new(ce->id, name, ce->parent, zombie, ce->status);
    if (!e)
        return refuse("env %d: no room or no memory", ce->id);
    rs.envs++;
    e->out_direct = ce->flags & CKPT_ENV_OUT_DIRECT;
    _Static_assert(WAIT_KINDS <= sizeof(ce->blocked) / sizeof(ce->blocked[0]), "blocked counters");
    for (int k = 0; k < WAIT_KINDS; k++)
        e->blocked[k] = ce->blocked[k];     // counters for its exit line, nothing else
    if (zombie)
        return true;
    _Static_assert(sizeof(struct act_stats) == sizeof(ce->act_stats), "act_stats as saved");
    struct act_stats stats;
    memcpy(&stats, ce->act_stats, sizeof(stats));
    int r = act_env_restore(e, ce->act_pool_size, ce->act_seq, ce->act_event_seq, &stats,
                            ce->flags & CKPT_ENV_ACT_USED);
    return r == 0 || refuse("env %d: activation segment: error %d", ce->id, r);
}

// A parent is an environment of the checkpoint, and a zombie's is live
// (zombies exist only until their parent reaps them).
static bool parents_ok(void)
{
    for (int i = 0; i < ENV_MAX; i++) {
        struct env *e = env_slot(i);
        if (!e || !e->parent)
            continue;
        struct env *p = env_find(e->parent);
        if (!p || (e->state == ENV_ZOMBIE && p->state != ENV_LIVE))
            return refuse("env %d: parent %d not in the checkpoint", e->id, e->parent);
    }
    return true;
}

static bool restore_envs(void)
{
    for (uint32_t i = 0; i < rs.h.section[CKPT_SEC_ENV].count; i++) {
        struct ckpt_env ce;
        if (!record(CKPT_SEC_ENV, i, &ce) || !restore_env(&ce))
            return false;
    }
    return parents_ok();
}

static struct env *live_env(int32_t id)
{
    struct env *e = env_find(id);
    return e && e->state == ENV_LIVE ? e : NULL;
}

// ------------------------------------------------------------ shared memory

static bool restore_regions(void)
{
    for (uint32_t i = 0; i < rs.h.section[CKPT_SEC_SHM].count; i++) {
        struct ckpt_shm cs;
        if (!record(CKPT_SEC_SHM, i, &cs))
            return false;
        if (cs.id != i || cs.reserved)
            return refuse_field("shm record", cs.id != i ? "id" : "reserved", cs.id);
        struct shm_region *r = shm_restore_region(cs.npages);
        if (!r)
            return refuse_field("shm record", "npages", cs.npages);
        rs.region[rs.nregions++] = r;
    }
    return true;
}

static bool restore_holds(void)
{
    for (uint32_t i = 0; i < rs.h.section[CKPT_SEC_SHMHOLD].count; i++) {
        struct ckpt_shm_hold ch;
        if (!record(CKPT_SEC_SHMHOLD, i, &ch))
            return false;
        struct env *e = live_env(ch.env_id);
        if (!e || ch.shm >= rs.nregions || ch.has_handle > 1)
            return refuse_field("shm hold", !e ? "env_id" : ch.shm >= rs.nregions ? "shm"
                                : "has_handle", !e ? (uint64_t)(int64_t)ch.env_id : ch.shm);
        int r = shm_restore_hold(e, ch.slot, rs.region[ch.shm], ch.gen, ch.has_handle, ch.va,
                                 ch.prot);
        if (r < 0)
            return refuse("shm hold: env %d slot %u va 0x%lx: error %d", ch.env_id, ch.slot,
                          ch.va, r);
    }
    return true;
}

// ------------------------------------------------------------ pages

static bool in_act_area(uint64_t va)
{
    return va >= ACT_RESTORE && va < ACT_SEGMENT + ACT_SEGMENT_SIZE;
}

// Where the page's 4096 bytes go: a frame of the environment's (mapped
// now with the saved protection) or of a region; 0 and refused otherwise.
// *skip: the page is derived (the restore page: always this kernel's own).
static uint64_t page_frame(const struct ckpt_page *p, bool *skip)
{
    *skip = false;
    if (p->owner_kind == CKPT_OWNER_SHM) {
        uint64_t pa = (uint32_t)p->owner < rs.nregions
                          ? shm_region_frame(rs.region[p->owner], p->va / PAGE_SIZE) : 0;
        return pa ? pa : (refuse("page: region %d offset 0x%lx", p->owner, p->va), 0);
    }
    struct env *e = live_env(p->owner);
    if (!e)
        return refuse_field("page", "owner", (uint64_t)(int64_t)p->owner), 0;
    if (p->va == ACT_RESTORE) {
        *skip = true;
        return 0;
    }
    if (in_act_area(p->va)) {
        // Only the segment activation.c mapped (header and pool) takes data.
        uint64_t pte = vm_lookup(e->pml4, p->va);
        if (!(pte & PTE_P) || !(pte & PTE_W))
            return refuse_field("page: activation area", "va", p->va), 0;
        return pte & PTE_ADDR;
    }
    int prot = (p->prot & PROT_READ ? VM_READ : 0) | (p->prot & PROT_WRITE ? VM_WRITE : 0) |
               (p->prot & PROT_EXEC ? VM_EXEC : 0);
    int r = vm_map_user(e->pml4, p->va, PAGE_SIZE, prot);
    if (r < 0)
        return refuse("page: env %d va 0x%lx: error %d", p->owner, p->va, r), 0;
    return vm_lookup(e->pml4, p->va) & PTE_ADDR;
}

static bool restore_page(const struct ckpt_page *p)
{
    uint64_t bad;
    const char *field = ckpt_check_page(p, &rs.h, &bad);
    if (field)
        return refuse_field("page record", field, bad);
    bool skip;
    uint64_t pa = page_frame(p, &skip);
    if (skip)
        return true;
    if (!pa || pa >= DIRECT_MAP_SIZE)
        return false;
    uint8_t *dst = P2V(pa);
    if (read_blocks(p->block, dst, 1) < 0)
        return refuse("page: block %lu unreadable", p->block);
    if (crc32c(dst, PAGE_SIZE) != p->crc)
        return refuse("page: va 0x%lx block %lu: checksum", p->va, p->block);
    rs.pages++;
    return true;
}

static bool restore_pages(void)
{
    for (uint32_t i = 0; i < rs.h.section[CKPT_SEC_PAGE].count; i++) {
        struct ckpt_page p;
        if (!record(CKPT_SEC_PAGE, i, &p) || !restore_page(&p))
            return false;
    }
    return true;
}

// ------------------------------------------------------------ threads

static uint32_t cpu_mxcsr_mask(void)
{
    static uint8_t area[512] __attribute__((aligned(16)));
    asm volatile("fxsave64 %0" : "=m"(area));
    uint32_t mask;
    memcpy(&mask, area + FXSAVE_MXCSR_MASK, sizeof(mask));
    return mask ? mask : MXCSR_MASK_DEFAULT;
}

static uint64_t frame_vector(uint32_t kind)
{
    switch (kind) {
    case CKPT_FRAME_SYSCALL: return VEC_SYSCALL;
    case CKPT_FRAME_FRESH:   return VEC_FRESH;
    case CKPT_FRAME_UPCALL:  return VEC_UPCALL;
    default:                 return T_TIMER;    // every register live: leaves by iretq
    }
}

static void load_frame(struct vproc *v, const struct ckpt_thread *t)
{
    struct trapframe *tf = &v->tf;
    memset(tf, 0, sizeof(*tf));
    tf->r15 = t->r15; tf->r14 = t->r14; tf->r13 = t->r13; tf->r12 = t->r12;
    tf->r11 = t->r11; tf->r10 = t->r10; tf->r9 = t->r9; tf->r8 = t->r8;
    tf->rbp = t->rbp; tf->rdi = t->rdi; tf->rsi = t->rsi; tf->rdx = t->rdx;
    tf->rcx = t->rcx; tf->rbx = t->rbx; tf->rax = t->rax;
    tf->rip = t->rip; tf->cs = t->cs; tf->rflags = t->rflags; tf->rsp = t->rsp; tf->ss = t->ss;
    tf->vector = frame_vector(t->frame_kind);
    memcpy(v->fpu, t->fpu, sizeof(v->fpu));
    for (int k = 0; k < 4; k++)
        v->seg[k] = t->seg[k];
    v->act_disabled = t->flags & CKPT_THR_ACT_DISABLED;
    v->act_restart_pending = t->flags & CKPT_THR_RESTART_PENDING;
    v->act_idle = t->flags & CKPT_THR_ACT_IDLE;
    v->act_resuming = t->act_resuming;      // judged once the records are back
}

static bool restore_thread(const struct ckpt_thread *t, uint32_t mxcsr_mask)
{
    uint64_t bad;
    const char *field = ckpt_check_thread(t, mxcsr_mask, &bad);
    if (field)
        return refuse_field("thread record", field, bad);
    struct env *e = live_env(t->env_id);
    if (!e || t->index != (uint32_t)e->nvprocs)
        return refuse_field("thread record", !e ? "env_id" : "index",
                            !e ? (uint64_t)(int64_t)t->env_id : t->index);
    struct vproc *v;
    int r = env_restore_vproc(e, &v);
    if (r < 0)
        return refuse("thread: env %d: error %d", t->env_id, r);
    load_frame(v, t);
    return true;
}

static bool restore_threads(void)
{
    uint32_t mask = cpu_mxcsr_mask();
    for (uint32_t i = 0; i < rs.h.section[CKPT_SEC_THREAD].count; i++) {
        struct ckpt_thread t;
        if (!record(CKPT_SEC_THREAD, i, &t) || !restore_thread(&t, mask))
            return false;
    }
    return true;
}

static bool restore_act_slots(void)
{
    for (uint32_t i = 0; i < rs.h.section[CKPT_SEC_ACTSLOT].count; i++) {
        struct ckpt_act_slot s;
        if (!record(CKPT_SEC_ACTSLOT, i, &s))
            return false;
        struct env *e = live_env(s.env_id);
        if (!e || s.state < CKPT_SLOT_HELD || s.state > CKPT_SLOT_WOKEN || s.reserved)
            return refuse_field("activation record", !e ? "env_id" : "state", s.state);
        if (act_restore_record(e, s.index, s.state != CKPT_SLOT_HELD) < 0)
            return refuse_field("activation record", "index", s.index);
    }
    return true;
}

// Every live environment got its threads, and a record being resumed is one in use.
static bool threads_complete(void)
{
    for (int i = 0; i < ENV_MAX; i++) {
        struct env *e = env_slot(i);
        if (!e || e->state != ENV_LIVE)
            continue;
        if (e->nvprocs == 0)
            return refuse("env %d: no thread", e->id);
        for (int k = 0; k < e->nvprocs; k++) {
            int32_t r = e->vprocs[k]->act_resuming;
            if (r != ACT_NONE && !act_record_in_use(e, (uint32_t)r))
                return refuse_field("thread record", "act_resuming", (uint64_t)(int64_t)r);
        }
    }
    return true;
}

// ------------------------------------------------------------ the whole

static bool rebuild(void)
{
    rs.window_block = UINT64_MAX;
    rs.nregions = 0;
    rs.pages = 0;
    rs.envs = 0;
    uint64_t bad;
    const char *field = ckpt_check_sections(&rs.h, &bad);
    if (field)
        return refuse_field("header", field, bad);
    if (!manifest_crc_ok() || !restore_envs() || !restore_regions() || !restore_holds() ||
        !restore_pages() || !restore_threads() || !restore_act_slots() || !threads_complete())
        return false;
    long r = console_restore(rs.h.console_holder, rs.h.console_give_next, rs.h.console_ring_va,
                             rs.h.console_ring_size, rs.h.console_head);
    return r == 0 || refuse("console: holder %d ring 0x%lx: error %ld", rs.h.console_holder,
                            rs.h.console_ring_va, r);
}

// Drop the restore's own hold on every region: those no environment holds go.
static void put_regions(void)
{
    for (uint32_t i = 0; i < rs.nregions; i++)
        shm_restore_put(rs.region[i]);
    rs.nregions = 0;
}

static void discard(void)
{
    env_discard_all();
    put_regions();
    console_restore(INIT_ENV_ID, false, 0, 0, 0);
}

// Everything is in place: let it run. Each thread comes back at its frame
// (a blocked one at its rewound call); each environment that registered
// one gets its restarted upcall, as after an in-place restart.
static void start_all(void)
{
    for (int i = 0; i < ENV_MAX; i++) {
        struct env *e = env_slot(i);
        for (int k = 0; e && e->state == ENV_LIVE && k < e->nvprocs; k++) {
            struct vproc *v = e->vprocs[k];
            act_restore_done(e, v);
            sched_make_runnable(v);
            if (act_restart(v) < 0)
                break;          // killed (hostile header): e is gone
        }
    }
}

// ------------------------------------------------------------ held output

// The release mark (block 2): how much output the console has shown since
// the first boot, as far as the disk knows; 0 if the mark is absent or bad.
static uint64_t released_mark(void)
{
    struct ckpt_release m;
    if (read_blocks(CKPT_RELEASE_BLOCK, rs.window, 1) < 0)
        return 0;
    rs.window_block = UINT64_MAX;
    memcpy(&m, rs.window, sizeof(m));
    bool ok = m.magic == CKPT_RELEASE_MAGIC && m.version == CKPT_VERSION &&
              m.crc == crc32c(&m, offsetof(struct ckpt_release, crc));
    return ok ? m.released_seq : 0;
}

static void write_mark(uint64_t generation, uint64_t seq)
{
    if (checkpoint_write_release_mark(generation, seq) < 0)
        kprintf("restore: release mark not written: a restore may print this output again\n");
}

// The checkpoint's held output was committed with it: what the console has
// not shown yet (the release mark says how far it got) goes out now, before
// any program runs, exactly once (docs/persistence.md, "Output commit").
static void release_held_output(void)
{
    const struct ckpt_section_desc *out = &rs.h.section[CKPT_SEC_OUTPUT];
    uint64_t first = rs.h.output_seq, held = out->bytes, shown = released_mark();
    uint64_t skip = shown <= first ? 0 : shown - first < held ? shown - first : held;
    char chunk[256];
    for (uint64_t off = skip; off < held; off += sizeof(chunk)) {
        uint64_t n = held - off < sizeof(chunk) ? held - off : sizeof(chunk);
        if (!manifest_get(out->offset + off, chunk, n))
            break;              // read before, under the manifest's CRC: cannot fail but on I/O
        uart_write(chunk, n);
    }
    outcommit_restore(first + held);
    if (skip < held)
        write_mark(rs.h.generation, first + held);
}

static bool read_header(int slot, struct ckpt_header *h)
{
    static uint8_t sector[CKPT_SECTOR] __attribute__((aligned(16)));
    if (blk_read((uint64_t)slot * SECTORS_PER_BLOCK, sector, 1) < 0)
        return false;
    memcpy(h, sector, sizeof(*h));
    return true;
}

static bool is_blank(const struct ckpt_header *h)
{
    const uint8_t *b = (const uint8_t *)h;
    for (size_t i = 0; i < sizeof(*h); i++)
        if (b[i])
            return false;
    return true;
}

// Judge one slot's header: NULL if it may be tried, else why not (in why[]).
static const char *judge_slot(int slot, struct ckpt_header *h, char *why, size_t len)
{
    if (!read_header(slot, h))
        return snprintf(why, len, "unreadable"), why;
    if (is_blank(h))
        return snprintf(why, len, "empty"), why;
    uint64_t bad;
    const char *field = ckpt_check_header(h, slot, blk_sectors() / SECTORS_PER_BLOCK, &bad);
    if (field)
        return snprintf(why, len, "header: %s 0x%lx", field, bad), why;
    return NULL;
}

static bool anything_live(void)
{
    for (int i = 0; i < ENV_MAX; i++)
        if (env_slot(i) && env_slot(i)->state == ENV_LIVE)
            return true;
    return false;
}

static bool try_slot(int slot, const struct ckpt_header *h)
{
    uint64_t t0 = timer_ns();
    rs.h = *h;
    rs.finished = false;
    if (!rebuild()) {
        discard();
        return false;
    }
    if (!anything_live()) {
        // The system had finished (every program ended) when this was taken:
        // nothing to go on with, and an older checkpoint must not bring a
        // finished run back. What it had printed but not shown goes out.
        rs.finished = true;
        release_held_output();
        discard();
        kprintf("restore: generation %lu from slot %c: no program was running: clean boot\n",
                rs.h.generation, slot_name[slot]);
        return false;
    }
    put_regions();
    env_restore_ids(rs.h.next_env_id);
    uint64_t ns = timer_ns() - t0;
    // From here the clock goes on from the checkpoint's: never back.
    timer_advance_to(rs.h.clock_ns);
    checkpoint_adopt(rs.h.generation);      // the next checkpoint is newer, and spares this one
    kprintf("restore: generation %lu from slot %c, %u envs, %lu pages, %lu.%lu ms\n",
            rs.h.generation, slot_name[slot], rs.envs, rs.pages, ns / 1000000,
            ns / 100000 % 10);
    release_held_output();
    start_all();
    return true;
}

bool restore_boot(void)
{
    if (!blk_present())
        return false;
    const char *how = cmdline_get("restore");   // on or off: cmdline_report named anything else
    if (how && !strcmp(how, "off")) {
        kprintf("restore: off (restore=off): clean boot; the checkpoints on the disk stay\n");
        return false;
    }
    struct ckpt_header h[CKPT_SLOTS];
    char why[CKPT_SLOTS][112];
    const char *bad[CKPT_SLOTS];
    for (int s = 0; s < CKPT_SLOTS; s++)
        bad[s] = judge_slot(s, &h[s], why[s], sizeof(why[s]));
    if (bad[0] && bad[1]) {
        if (!strcmp(bad[0], "empty") && !strcmp(bad[1], "empty"))
            kprintf("restore: no checkpoint on the disk: clean boot\n");
        else
            kprintf("restore: no valid checkpoint (slot A: %s; slot B: %s): clean boot\n",
                    bad[0], bad[1]);
        return false;
    }
    // A slot that cannot even be tried says so first (an empty one is no news).
    for (int s = 0; s < CKPT_SLOTS; s++)
        if (bad[s] && strcmp(bad[s], "empty"))
            kprintf("restore: slot %c rejected: %s\n", slot_name[s], bad[s]);
    // The newest first; the older one if the newest cannot be restored.
    int first = bad[0] ? 1 : bad[1] ? 0 : h[1].generation > h[0].generation ? 1 : 0;
    int order[CKPT_SLOTS] = { first, 1 - first };
    for (int k = 0; k < CKPT_SLOTS; k++) {
        int s = order[k];
        if (bad[s])
            continue;
        if (try_slot(s, &h[s]))
            return true;
        if (rs.finished)
            return false;
        kprintf("restore: slot %c (generation %lu) rejected: %s\n", slot_name[s],
                h[s].generation, rs.why);
    }
    kprintf("restore: no valid checkpoint: clean boot\n");
    return false;
}
