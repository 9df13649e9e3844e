// Capture: turn the live system into the records of checkpoint_format.h.
//
// Called at a safe point with interrupts off, so nothing changes while it
// runs: every vproc is its saved frame (a blocked one rewound onto its
// syscall), the CPU's lazily kept FPU and segment registers have been
// written back (sched_sync_user_state), and no program runs until the
// checkpoint is over. That is the pause a program sees; it is measured and
// printed with every checkpoint.
//
// Incremental: a page is written when it is new to the checkpoint (no
// entry in the previous shadow list for its owner and address, or another
// frame there now) or its dirty bit is set, or the checkpoint is full; the
// others keep the block an earlier checkpoint wrote. Dirty bits are cleared
// as pages are captured; the caller reloads CR3 before any program runs
// again, so no TLB entry still claims a page is dirty. Pages that the
// kernel writes through the direct map (activation records and header, the
// console ring, a loader's writes) are marked dirty by those writers
// (vm_mark_dirty), and every new mapping starts dirty (vm.c).
//
// Order, so the merge with the previous shadow list is one pass: the
// environments by id, each one's pages by address, then the shared regions
// by creation number, each one's pages by offset.
#include "abi.h"
#include "activation.h"
#include "ckpt_capture.h"
#include "crc32c.h"
#include "env.h"
#include "memlayout.h"
#include "shm.h"
#include "string.h"
#include "vm.h"

#define OWNER_SHIFT 48
#define KEY(kind, id) ((uint64_t)(kind) << OWNER_SHIFT | (uint64_t)(id))
#define REGIONS_MAX (ENV_MAX * SHM_REGIONS_MAX)

int capture_section_begin(struct capture *c, int type)
{
    int r = pbuf_pad8(c->man);
    c->h->section[type] = (struct ckpt_section_desc){ .type = (uint32_t)type, .offset = c->man->len };
    return r;
}

void capture_section_end(struct capture *c, int type, uint32_t record_size)
{
    struct ckpt_section_desc *s = &c->h->section[type];
    s->record_size = record_size;
    s->bytes = c->man->len - s->offset;
    s->count = (uint32_t)(s->bytes / record_size);
}

// ------------------------------------------------------------ ordering

static int sorted_envs(struct env *out[ENV_MAX])
{
    int n = 0;
    for (int i = 0; i < ENV_MAX; i++) {
        struct env *e = env_slot(i);
        if (!e)
            continue;
        int k = n++;
        for (; k > 0 && out[k - 1]->id > e->id; k--)
            out[k] = out[k - 1];
        out[k] = e;
    }
    return n;
}

// Every region some environment holds, once, by creation number.
static int sorted_regions(struct env *envs[], int nenvs, struct shm_region *out[REGIONS_MAX])
{
    int n = 0;
    for (int i = 0; i < nenvs; i++) {
        for (int s = 0; s < SHM_REGIONS_MAX; s++) {
            struct shm_region *r = envs[i]->shm.slot[s].region;
            bool seen = !r;
            for (int k = 0; k < n && !seen; k++)
                seen = out[k] == r;
            if (seen)
                continue;
            int k = n++;
            for (; k > 0 && shm_region_serial(out[k - 1]) > shm_region_serial(r); k--)
                out[k] = out[k - 1];
            out[k] = r;
        }
    }
    return n;
}

static int region_index(struct shm_region *regions[], int n, const struct shm_region *r)
{
    for (int i = 0; i < n; i++)
        if (regions[i] == r)
            return i;
    return -1;
}

// ------------------------------------------------------------ records

static uint32_t env_flags(const struct env *e)
{
    return (e->act && e->act->used ? CKPT_ENV_ACT_USED : 0) | (e->out_direct ? CKPT_ENV_OUT_DIRECT : 0);
}

static int emit_env(struct capture *c, const struct env *e, uint32_t pages)
{
    struct ckpt_env r = {
        .id = e->id, .parent = e->parent,
        .state = e->state == ENV_LIVE ? CKPT_ENV_LIVE : CKPT_ENV_ZOMBIE,
        .status = e->status, .nthreads = (uint32_t)e->nvprocs, .flags = env_flags(e), .pages = pages,
    };
    memcpy(r.name, e->name, CKPT_NAME_MAX);
    for (int k = 0; k < WAIT_KINDS && k < 8; k++)
        r.blocked[k] = e->blocked[k];
    if (e->act) {
        r.act_pool_size = e->act->pool.size;
        r.act_seq = e->act->seq;
        r.act_event_seq = e->act->event_seq;
        _Static_assert(sizeof(struct act_stats) == sizeof(r.act_stats), "act_stats is 14 counters");
        memcpy(r.act_stats, &e->act->stats, sizeof(r.act_stats));
    }
    return pbuf_append(c->man, &r, sizeof(r));
}

static uint32_t frame_kind(uint64_t vector)
{
    switch (vector) {
    case VEC_SYSCALL: return CKPT_FRAME_SYSCALL;
    case VEC_FRESH:   return CKPT_FRAME_FRESH;
    case VEC_UPCALL:  return CKPT_FRAME_UPCALL;
    default:          return CKPT_FRAME_INTERRUPT;
    }
}

static int emit_thread(struct capture *c, const struct vproc *v)
{
    const struct trapframe *tf = &v->tf;
    struct ckpt_thread r = {
        .env_id = v->env->id, .index = (uint32_t)v->index, .frame_kind = frame_kind(tf->vector),
        .flags = (v->state == VP_BLOCKED ? CKPT_THR_BLOCKED : 0) |
                 (v->act_disabled ? CKPT_THR_ACT_DISABLED : 0) |
                 (v->act_restart_pending ? CKPT_THR_RESTART_PENDING : 0) |
                 (v->act_wake_pending ? CKPT_THR_WAKE_PENDING : 0) | (v->act_idle ? CKPT_THR_ACT_IDLE : 0),
        .wait_kind = v->state == VP_BLOCKED ? (uint32_t)v->wait_kind : 0,
        .act_resuming = v->act_resuming,
        .r15 = tf->r15, .r14 = tf->r14, .r13 = tf->r13, .r12 = tf->r12, .r11 = tf->r11,
        .r10 = tf->r10, .r9 = tf->r9, .r8 = tf->r8, .rbp = tf->rbp, .rdi = tf->rdi, .rsi = tf->rsi,
        .rdx = tf->rdx, .rcx = tf->rcx, .rbx = tf->rbx, .rax = tf->rax, .rip = tf->rip, .cs = tf->cs,
        .rflags = tf->rflags, .rsp = tf->rsp, .ss = tf->ss,
    };
    memcpy(r.seg, v->seg, sizeof(r.seg));
    memcpy(r.fpu, v->fpu, CKPT_FPU_BYTES);
    return pbuf_append(c->man, &r, sizeof(r));
}

static int emit_act_slots(struct capture *c, const struct env *e)
{
    for (uint32_t i = 0; e->act && i < e->act->pool.size; i++) {
        int state = act_record_state(e->act, i);
        if (state == SLOT_FREE)
            continue;
        struct ckpt_act_slot r = { .env_id = e->id, .index = i,
            .state = state == SLOT_BLOCKED ? CKPT_SLOT_BLOCKED :
                     state == SLOT_WOKEN ? CKPT_SLOT_WOKEN : CKPT_SLOT_HELD };
        int err = pbuf_append(c->man, &r, sizeof(r));
        if (err)
            return err;
    }
    return 0;
}

static uint32_t prot_of(uint64_t pte)
{
    return PROT_READ | (pte & PTE_W ? PROT_WRITE : 0) | (pte & PTE_NX ? 0 : PROT_EXEC);
}

static int emit_holds(struct capture *c, const struct env *e, struct shm_region *regions[], int nregions)
{
    for (int s = 0; s < SHM_REGIONS_MAX; s++) {
        const struct shm_slot *slot = &e->shm.slot[s];
        if (!slot->region)
            continue;
        uint64_t pte = slot->va ? vm_lookup(e->pml4, slot->va) : 0;
        struct ckpt_shm_hold r = {
            .env_id = e->id, .slot = (uint32_t)s, .shm = (uint32_t)region_index(regions, nregions, slot->region),
            .gen = slot->gen, .has_handle = slot->has_handle, .prot = pte ? prot_of(pte) : 0, .va = slot->va,
        };
        int err = pbuf_append(c->man, &r, sizeof(r));
        if (err)
            return err;
    }
    return 0;
}

// ------------------------------------------------------------ pages

// The previous checkpoint's entry for (key, va) if it is still the same
// frame; the cursor only moves forward (both lists are in the same order).
static bool prev_same(struct capture *c, uint64_t key, uint64_t va, uint64_t frame, struct shadow_page *old)
{
    while (c->prev_index < c->prev_count) {
        pbuf_read(c->prev, c->prev_index * sizeof(*old), old, sizeof(*old));
        if (old->key > key || (old->key == key && old->va > va))
            return false;
        c->prev_index++;
        if (old->key == key && old->va == va)
            return old->frame == frame;
    }
    return false;
}

struct page_in {
    uint32_t owner_kind;
    int32_t owner;
    uint64_t key, va, frame;
    uint32_t prot, flags;
    bool dirty;
};

static int emit_page(struct capture *c, const struct page_in *p)
{
    struct shadow_page old, s = { .key = p->key, .va = p->va, .frame = p->frame };
    struct ckpt_page r = { .owner_kind = p->owner_kind, .owner = p->owner, .va = p->va,
                           .prot = p->prot, .flags = p->flags };
    bool same = prev_same(c, p->key, p->va, p->frame, &old);
    if (c->full || p->dirty || !same) {
        s.block = blockmap_alloc(c->taken, c->committed, CKPT_FIRST_DATA_BLOCK);
        if (!s.block)
            return -ENOSPC;
        s.generation = c->generation;
        s.crc = crc32c(P2V(p->frame), PAGE_SIZE);
        int err = stager_add(c->stager, s.block, P2V(p->frame));
        if (err)
            return err;
        r.flags |= CKPT_PAGE_WRITTEN;
        c->written++;
    } else {
        s.block = old.block;
        s.generation = old.generation;
        s.crc = old.crc;
        blockmap_set(c->taken, old.block);
    }
    r.block = s.block;
    r.generation = s.generation;
    r.crc = s.crc;
    c->pages++;
    int err = pbuf_append(c->man, &r, sizeof(r));
    return err ? err : pbuf_append(c->shadow, &s, sizeof(s));
}

struct env_walk {
    struct capture *c;
    const struct env *e;
    uint32_t pages;
};

// One leaf of an environment's page table. Skipped: the restore sequence
// (kernel code, mapped again by whoever rebuilds the activation area) and
// shared-region pages (saved once, with their region).
static int env_page(uint64_t va, uint64_t *pte, void *arg)
{
    struct env_walk *w = arg;
    if ((va >= ACT_RESTORE && va < ACT_SEGMENT) || (*pte & PTE_SHARED))
        return 0;
    bool act = va >= ACT_SEGMENT && va < ACT_SEGMENT + ACT_SEGMENT_SIZE;
    struct page_in p = {
        .owner_kind = CKPT_OWNER_ENV, .owner = w->e->id, .key = KEY(CKPT_OWNER_ENV, w->e->id),
        .va = va, .frame = *pte & PTE_ADDR, .prot = prot_of(*pte),
        .flags = act ? CKPT_PAGE_ACT : 0, .dirty = (*pte & PTE_D) != 0,
    };
    *pte &= ~PTE_D;
    w->pages++;
    return emit_page(w->c, &p);
}

// Page i of a region is dirty if any mapping of it (in any environment that
// maps the region) has its dirty bit set; all of them are cleared.
static bool region_page_dirty(struct env *envs[], int nenvs, const struct shm_region *r, uint64_t i)
{
    bool dirty = false;
    for (int k = 0; k < nenvs; k++) {
        for (int s = 0; envs[k]->pml4 && s < SHM_REGIONS_MAX; s++) {
            const struct shm_slot *slot = &envs[k]->shm.slot[s];
            if (slot->region != r || !slot->va)
                continue;
            uint64_t *pte = vm_pte(envs[k]->pml4, slot->va + i * PAGE_SIZE);
            if (!pte || !(*pte & PTE_SHARED) || (*pte & PTE_ADDR) != shm_region_frame(r, i))
                continue;       // unmapped or replaced by the program since
            dirty |= (*pte & PTE_D) != 0;
            *pte &= ~PTE_D;
        }
    }
    return dirty;
}

static int emit_region(struct capture *c, struct env *envs[], int nenvs, const struct shm_region *r, int index)
{
    for (uint64_t i = 0; i < shm_region_pages(r); i++) {
        struct page_in p = {
            .owner_kind = CKPT_OWNER_SHM, .owner = index, .key = KEY(CKPT_OWNER_SHM, shm_region_serial(r)),
            .va = i * PAGE_SIZE, .frame = shm_region_frame(r, i), .prot = PROT_READ | PROT_WRITE,
            .dirty = region_page_dirty(envs, nenvs, r, i),
        };
        int err = emit_page(c, &p);
        if (err)
            return err;
    }
    return 0;
}

// ------------------------------------------------------------ sections

static int build_envs(struct capture *c, struct env *envs[], int n, const uint32_t pages[])
{
    int err = capture_section_begin(c, CKPT_SEC_ENV);
    for (int i = 0; i < n && !err; i++)
        err = emit_env(c, envs[i], pages[i]);
    capture_section_end(c, CKPT_SEC_ENV, sizeof(struct ckpt_env));
    return err;
}

static int build_threads(struct capture *c, struct env *envs[], int n)
{
    int err = capture_section_begin(c, CKPT_SEC_THREAD);
    for (int i = 0; i < n && !err; i++)
        for (int k = 0; k < envs[i]->nvprocs && !err; k++)
            err = emit_thread(c, envs[i]->vprocs[k]);
    capture_section_end(c, CKPT_SEC_THREAD, sizeof(struct ckpt_thread));
    return err;
}

static int build_act_slots(struct capture *c, struct env *envs[], int n)
{
    int err = capture_section_begin(c, CKPT_SEC_ACTSLOT);
    for (int i = 0; i < n && !err; i++)
        err = emit_act_slots(c, envs[i]);
    capture_section_end(c, CKPT_SEC_ACTSLOT, sizeof(struct ckpt_act_slot));
    return err;
}

static int build_shm(struct capture *c, struct env *envs[], int n, struct shm_region *regions[], int nregions)
{
    int err = capture_section_begin(c, CKPT_SEC_SHM);
    for (int i = 0; i < nregions && !err; i++) {
        struct ckpt_shm r = { .id = (uint32_t)i, .npages = (uint32_t)shm_region_pages(regions[i]) };
        err = pbuf_append(c->man, &r, sizeof(r));
    }
    capture_section_end(c, CKPT_SEC_SHM, sizeof(struct ckpt_shm));
    err = err ? err : capture_section_begin(c, CKPT_SEC_SHMHOLD);
    for (int i = 0; i < n && !err; i++)
        err = emit_holds(c, envs[i], regions, nregions);
    capture_section_end(c, CKPT_SEC_SHMHOLD, sizeof(struct ckpt_shm_hold));
    return err;
}

static int build_pages(struct capture *c, struct env *envs[], int n, uint32_t pages[],
                       struct shm_region *regions[], int nregions)
{
    int err = capture_section_begin(c, CKPT_SEC_PAGE);
    for (int i = 0; i < n && !err; i++) {
        struct env_walk w = { .c = c, .e = envs[i] };
        if (envs[i]->pml4)
            err = vm_walk_user(envs[i]->pml4, env_page, &w);
        pages[i] = w.pages;
    }
    for (int i = 0; i < nregions && !err; i++)
        err = emit_region(c, envs, n, regions[i], i);
    // Not flushed here: the manifest's blocks usually follow the last
    // page's, and go in the same request (pbuf_write flushes).
    capture_section_end(c, CKPT_SEC_PAGE, sizeof(struct ckpt_page));
    return err;
}

// The page section comes first in the manifest: the walk that writes the
// pages also counts each environment's, which its env record holds.
// Sections are found by their offsets, not by their order.
int capture_build(struct capture *c)
{
    static struct env *envs[ENV_MAX];
    static struct shm_region *regions[REGIONS_MAX];
    static uint32_t pages[ENV_MAX];
    int n = sorted_envs(envs), nregions = sorted_regions(envs, n, regions);
    c->envs = (uint32_t)n;
    c->pages = c->written = 0;
    c->prev_index = 0;
    c->prev_count = c->prev->len / sizeof(struct shadow_page);
    int err = build_pages(c, envs, n, pages, regions, nregions);
    err = err ? err : build_envs(c, envs, n, pages);
    err = err ? err : build_threads(c, envs, n);
    err = err ? err : build_act_slots(c, envs, n);
    return err ? err : build_shm(c, envs, n, regions, nregions);
}
