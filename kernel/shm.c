// Shared memory regions.
//
// A region is a set of frames plus a count of the slots, in all
// environments, that hold it. Each environment has a small table of slots
// (struct shm_table, in struct env); a slot holds a region by a handle, by a
// mapping, or both, and goes when neither is left. When the last slot goes
// the frames are freed. Mapped pages carry PTE_SHARED (vm.h): unmap() and
// the end of an address space clear them without freeing the frame, which
// stays the region's.
//
// Everything a program passes in is checked against its own table, so a
// handle means something only to the environment that holds it: a forged
// or stale handle (its slot's generation has moved on) is -EBADF, and one
// copied from another environment names, at most, a region of the caller's
// own. What a program can make the kernel hold is bounded per environment
// (SHM_REGIONS_MAX slots, SHM_BYTES_MAX bytes), and every limit is checked
// before anything is allocated.
#include "abi.h"
#include "env.h"
#include "kalloc.h"
#include "memlayout.h"
#include "pmm.h"
#include "shm.h"
#include "string.h"
#include "vm.h"

#define GEN_BITS   22                  // handle = (gen + 1) << 8 | slot, below 2^31
#define SLOT_BITS  8

struct shm_region {
    uint64_t serial;            // creation number: its identity for incremental checkpoints
    int refs;                   // slots holding it, in every environment
    uint64_t npages;
    uint64_t frames[];          // npages physical addresses
};

_Static_assert(sizeof(struct shm_region) + (SHM_REGION_MAX / PAGE_SIZE) * sizeof(uint64_t) <=
               KMALLOC_MAX, "a region's frame list fits one kmalloc block");
_Static_assert(SHM_REGIONS_MAX <= (1 << SLOT_BITS), "slot numbers fit a handle");

// ------------------------------------------------------------ pure parts

uint64_t shm_handle(int slot, uint32_t gen)
{
    return ((uint64_t)(gen % (1U << GEN_BITS)) + 1) << SLOT_BITS | (uint64_t)slot;
}

int shm_handle_slot(uint64_t handle, uint32_t *gen)
{
    uint64_t slot = handle & ((1U << SLOT_BITS) - 1), g = handle >> SLOT_BITS;
    if (slot >= SHM_REGIONS_MAX || g == 0 || g > (1U << GEN_BITS))
        return -1;
    *gen = (uint32_t)(g - 1);
    return (int)slot;
}

// ------------------------------------------------------------ regions

uint64_t shm_region_serial(const struct shm_region *r)
{
    return r->serial;
}

uint64_t shm_region_pages(const struct shm_region *r)
{
    return r->npages;
}

uint64_t shm_region_frame(const struct shm_region *r, uint64_t i)
{
    return i < r->npages ? r->frames[i] : 0;
}

static uint64_t region_bytes(const struct shm_region *r)
{
    return r->npages * PAGE_SIZE;
}

static struct shm_region *region_new(uint64_t npages)
{
    struct shm_region *r = kmalloc(sizeof(*r) + npages * sizeof(uint64_t));
    if (!r)
        return NULL;
    static uint64_t serials;
    r->serial = ++serials;
    r->refs = 0;
    r->npages = npages;
    for (uint64_t i = 0; i < npages; i++) {
        r->frames[i] = pmm_alloc();     // zeroed: a region starts with nothing of anyone's
        if (!r->frames[i]) {
            while (i-- > 0)
                pmm_free(r->frames[i]);
            kfree(r);
            return NULL;
        }
    }
    return r;
}

static void region_put(struct shm_region *r)
{
    if (--r->refs > 0)
        return;
    for (uint64_t i = 0; i < r->npages; i++)
        pmm_free(r->frames[i]);
    kfree(r);
}

// ------------------------------------------------------------ slots

static struct shm_table *table(void)
{
    return &env_current()->shm;
}

static int free_slot(const struct shm_table *t)
{
    for (int i = 0; i < SHM_REGIONS_MAX; i++)
        if (!t->slot[i].region)
            return i;
    return -1;
}

static void slot_hold(struct shm_table *t, int i, struct shm_region *r)
{
    struct shm_slot *s = &t->slot[i];
    s->region = r;
    s->has_handle = true;
    s->va = 0;
    r->refs++;
    t->bytes += region_bytes(r);
}

// The slot holds nothing any more (no handle, no mapping): let go.
static void slot_release(struct shm_table *t, struct shm_slot *s)
{
    t->bytes -= region_bytes(s->region);
    region_put(s->region);
    s->region = NULL;
}

// The caller's slot for `handle`, or NULL (forged, stale, closed).
static struct shm_slot *lookup(struct shm_table *t, uint64_t handle)
{
    uint32_t gen;
    int i = shm_handle_slot(handle, &gen);
    if (i < 0)
        return NULL;
    struct shm_slot *s = &t->slot[i];
    return s->region && s->has_handle && s->gen % (1U << GEN_BITS) == gen ? s : NULL;
}

// ------------------------------------------------------------ system calls

long sys_shm_create(uint64_t size)
{
    if (size == 0 || size > SHM_REGION_MAX)
        return -EINVAL;
    uint64_t npages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
    struct shm_table *t = table();
    int i = free_slot(t);
    if (i < 0 || t->bytes + npages * PAGE_SIZE > SHM_BYTES_MAX)
        return -ENOSPC;
    struct shm_region *r = region_new(npages);
    if (!r)
        return -ENOMEM;
    slot_hold(t, i, r);
    return (long)shm_handle(i, t->slot[i].gen);
}

long sys_shm_map(uint64_t handle, uint64_t va, uint64_t prot)
{
    struct shm_slot *s = lookup(table(), handle);
    if (!s)
        return -EBADF;
    // Never executable: one environment must not place code in another.
    if (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE))
        return -EINVAL;
    if (s->va)
        return -EBUSY;
    struct shm_region *r = s->region;
    int err = vm_map_frames(env_current()->pml4, va, r->frames, r->npages,
                            prot & PROT_WRITE ? VM_READ | VM_WRITE : VM_READ);
    if (err < 0)
        return err;
    s->va = va;
    return (long)region_bytes(r);
}

long sys_shm_unmap(uint64_t va)
{
    struct shm_table *t = table();
    for (int i = 0; i < SHM_REGIONS_MAX; i++) {
        struct shm_slot *s = &t->slot[i];
        if (!s->region || !s->va || s->va != va)
            continue;
        vm_unmap_frames(env_current()->pml4, va, s->region->frames, s->region->npages);
        s->va = 0;
        if (!s->has_handle)
            slot_release(t, s);
        return 0;
    }
    return -EINVAL;
}

long sys_shm_close(uint64_t handle)
{
    struct shm_table *t = table();
    struct shm_slot *s = lookup(t, handle);
    if (!s)
        return -EBADF;
    s->has_handle = false;
    s->gen++;
    if (!s->va)
        slot_release(t, s);
    return 0;
}

long shm_gift_check(struct env *e, uint64_t handles_uva, uint64_t n,
                    struct shm_region *gift[SHM_REGIONS_MAX])
{
    if (n > SHM_REGIONS_MAX)
        return -E2BIG;
    uint64_t handles[SHM_REGIONS_MAX], bytes = 0;
    if (n && copyin(handles, handles_uva, n * sizeof(handles[0])) < 0)
        return -EFAULT;
    for (uint64_t i = 0; i < n; i++) {
        struct shm_slot *s = lookup(&e->shm, handles[i]);
        if (!s)
            return -EBADF;
        gift[i] = s->region;
        bytes += region_bytes(s->region);
    }
    return bytes > SHM_BYTES_MAX ? -ENOSPC : (long)n;
}

void shm_gift_give(struct env *child, struct shm_region *gift[], uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        slot_hold(&child->shm, (int)i, gift[i]);
}

void shm_env_release(struct env *e)
{
    for (int i = 0; i < SHM_REGIONS_MAX; i++)
        if (e->shm.slot[i].region)
            slot_release(&e->shm, &e->shm.slot[i]);
}

// ------------------------------------------------------------ restore

struct shm_region *shm_restore_region(uint64_t npages)
{
    if (npages == 0 || npages > SHM_REGION_MAX / PAGE_SIZE)
        return NULL;
    struct shm_region *r = region_new(npages);
    if (r)
        r->refs = 1;            // the restore's own hold, until shm_restore_put
    return r;
}

void shm_restore_put(struct shm_region *r)
{
    region_put(r);
}

int shm_restore_hold(struct env *e, uint32_t i, struct shm_region *r, uint32_t gen,
                     bool has_handle, uint64_t va, uint64_t prot)
{
    struct shm_table *t = &e->shm;
    if (i >= SHM_REGIONS_MAX || t->slot[i].region || (!has_handle && !va))
        return -EINVAL;
    if (t->bytes + region_bytes(r) > SHM_BYTES_MAX)
        return -ENOSPC;
    if (va) {
        if (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE))
            return -EINVAL;
        int err = vm_map_frames(e->pml4, va, r->frames, r->npages,
                                prot & PROT_WRITE ? VM_READ | VM_WRITE : VM_READ);
        if (err < 0)
            return err;
    }
    slot_hold(t, (int)i, r);
    t->slot[i].gen = gen;
    t->slot[i].has_handle = has_handle;
    t->slot[i].va = va;
    return 0;
}
