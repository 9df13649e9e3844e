// Page tables.
//
// Every address space is a pair of PML4 pages (pti.h). The first, the
// kernel's view, has entries 256..511 copied from kernel_pml4 (kernmap.c)
// when it is created. Those entries point at the same lower-level tables,
// so the kernel half (direct map, kernel image) is one mapping shared by
// all; kernmap_init creates every top-level kernel entry that will ever be
// needed before the first copy, so nothing needs to be propagated later.
// The second, the user's view, has only entry 511 of the kernel half: the
// entry area (pti.c). Entries 0..255 are the environment's own and the same
// in both views: walk() writes a new top-level entry into both.
//
// User intermediate tables are PTE_P|PTE_W|PTE_U: the leaf alone decides
// the access (read-only, NX). Kernel entries never carry PTE_U, so user code
// cannot reach the kernel half at all.
#include <limits.h>
#include "abi.h"
#include "cpu.h"
#include "kernmap.h"
#include "memlayout.h"
#include "pmm.h"
#include "pti.h"
#include "string.h"
#include "syscall.h"
#include "vm.h"
#include "x86.h"

#define USER_HALF 256                   // PML4 entries below this are user space
#define TABLE_FLAGS (PTE_P | PTE_W | PTE_U)

static uint64_t *table_at(uint64_t entry)
{
    return P2V(entry & PTE_ADDR);
}

static int index_at(uint64_t va, int level)     // level 3 = PML4 ... 0 = PT
{
    return (va >> (12 + 9 * level)) & 511;
}

void vm_init(void)
{
    pti_init();         // first: it writes pti_on, which kernmap makes read-only
    kernmap_init();
}

uint64_t *vm_kernel_aspace(void)
{
    return kernel_pml4;
}

// The user's view of an address space: the second page of its pair.
static uint64_t *user_view(uint64_t *pml4)
{
    return pml4 + 512;
}

bool is_user_range(uint64_t va, uint64_t len)
{
    return len <= USER_LIMIT && va <= USER_LIMIT - len;
}

// The PTE slot for va, creating intermediate tables if `create`. NULL if
// absent (or on OOM while creating). User half only.
static uint64_t *walk(uint64_t *pml4, uint64_t va, bool create)
{
    uint64_t *table = pml4;
    for (int level = 3; level > 0; level--) {
        uint64_t *entry = &table[index_at(va, level)];
        if (!(*entry & PTE_P)) {
            if (!create)
                return NULL;
            uint64_t pa = pmm_alloc();
            if (!pa)
                return NULL;
            *entry = pa | TABLE_FLAGS;
            if (level == 3)
                user_view(pml4)[index_at(va, 3)] = *entry;
        }
        table = table_at(*entry);
    }
    return &table[index_at(va, 0)];
}

// Like walk(va, false), but when va is not mapped also says how far the
// hole around it extends (*span, aligned): loops over huge user-supplied
// ranges then skip absent tables instead of visiting every page.
static uint64_t *walk_span(uint64_t *pml4, uint64_t va, uint64_t *span)
{
    uint64_t *table = pml4;
    for (int level = 3; level > 0; level--) {
        uint64_t entry = table[index_at(va, level)];
        if (!(entry & PTE_P)) {
            *span = 1UL << (12 + 9 * level);
            return NULL;
        }
        table = table_at(entry);
    }
    *span = PAGE_SIZE;
    uint64_t *pte = &table[index_at(va, 0)];
    return *pte & PTE_P ? pte : NULL;
}

static uint64_t next_after(uint64_t va, uint64_t span)
{
    return (va & ~(span - 1)) + span;
}

uint64_t vm_lookup(uint64_t *pml4, uint64_t va)
{
    if (!is_user_range(va, 1))
        return 0;
    uint64_t *pte = walk(pml4, va, false);
    return pte && (*pte & PTE_P) ? *pte : 0;
}

uint64_t *vm_pte(uint64_t *pml4, uint64_t va)
{
    if (!is_user_range(va, 1))
        return NULL;
    uint64_t *pte = walk(pml4, va, false);
    return pte && (*pte & PTE_P) ? pte : NULL;
}

void vm_mark_dirty(uint64_t *pml4, uint64_t va)
{
    uint64_t *pte = pml4 ? vm_pte(pml4, va) : NULL;     // NULL: an address space being built or gone
    if (pte)
        *pte |= PTE_D;
}

// Descend one level of the user half; level 0 holds the leaves.
static int walk_level(uint64_t *table, int level, uint64_t base,
                      int (*fn)(uint64_t, uint64_t *, void *), void *arg)
{
    int n = level == 3 ? USER_HALF : 512;
    for (int i = 0; i < n; i++) {
        uint64_t va = base | ((uint64_t)i << (12 + 9 * level));
        if (!(table[i] & PTE_P))
            continue;
        int r = level ? walk_level(table_at(table[i]), level - 1, va, fn, arg) : fn(va, &table[i], arg);
        if (r)
            return r;
    }
    return 0;
}

int vm_walk_user(uint64_t *pml4, int (*fn)(uint64_t va, uint64_t *pte, void *arg), void *arg)
{
    return walk_level(pml4, 3, 0, fn, arg);
}

uint64_t *vm_new_aspace(void)
{
    uint64_t pa = pmm_alloc_pair();
    if (!pa)
        return NULL;
    uint64_t *pml4 = P2V(pa);
    for (int i = USER_HALF; i < 512; i++)
        pml4[i] = kernel_pml4[i];
    user_view(pml4)[511] = pti_entry_area_pml4e();
    return pml4;
}

uint64_t *vm_user_view(uint64_t *pml4)
{
    return user_view(pml4);
}

// Free a user page-table subtree: the frames it maps at level 0, the
// tables at every level.
static void free_table(uint64_t *table, int level)
{
    for (int i = 0; i < 512; i++) {
        if (!(table[i] & PTE_P))
            continue;
        if (level > 0)
            free_table(table_at(table[i]), level - 1);
        else if (!(table[i] & PTE_SHARED))     // a shared region's frame is the region's
            pmm_free(table[i] & PTE_ADDR);
    }
    pmm_free(V2P(table));
}

void vm_free_aspace(uint64_t *pml4)
{
    if (!pml4)
        return;
    for (int i = 0; i < USER_HALF; i++)
        if (pml4[i] & PTE_P)
            free_table(table_at(pml4[i]), 2);
    pmm_free(V2P(user_view(pml4)));
    pmm_free(V2P(pml4));
}

static uint64_t cr3_of(uint64_t *pml4)
{
    return pml4 == kernel_pml4 ? KV2P(kernel_pml4) : V2P(pml4);
}

void vm_switch(uint64_t *pml4)
{
    uint64_t pa = cr3_of(pml4);
    if (read_cr3() != pa)
        write_cr3(pa);
}

bool vm_loaded(uint64_t *pml4)
{
    return read_cr3() == cr3_of(pml4);
}

static uint64_t leaf_flags(int prot)
{
    uint64_t f = PTE_P | PTE_U;
    if (prot & VM_WRITE)
        f |= PTE_W;
    if (!(prot & VM_EXEC))
        f |= PTE_NX;
    return f;
}

// The range may hold user mappings: page aligned, non-empty, user space,
// clear of the activation area (the kernel owns it).
static bool mappable_range(uint64_t va, uint64_t len)
{
    if ((va | len) & (PAGE_SIZE - 1) || len == 0 || !is_user_range(va, len))
        return false;
    if (va < USER_BASE)
        return false;
    uint64_t act_start = ACT_RESTORE, act_end = ACT_SEGMENT + ACT_SEGMENT_SIZE;
    return va + len <= act_start || va >= act_end;
}

// Work one unmap call may do before it gives the CPU back: every page freed
// and every table descended into costs one (a table also costs a scan of
// its 512 entries). Measured under TCG: see docs/restart.md.
#define UNMAP_BUDGET 512

struct unmap_walk {
    uint64_t start, end;        // the range, page aligned
    long budget;                // work left
    bool loaded;                // the address space is in CR3: flush
    bool freed_table;           // a table was freed: reload CR3 at the end
};

static bool table_empty(const uint64_t *table)
{
    for (int i = 0; i < 512; i++)
        if (table[i] & PTE_P)
            return false;
    return true;
}

// Unmap what the range covers of `table` (level 2 = PDPT ... 0 = PT), which
// maps from `base`, freeing the PDs and PTs it empties. false: the budget
// ran out first (what is done stays done, every table still consistent).
static bool unmap_table(struct unmap_walk *w, uint64_t *table, int level, uint64_t base)
{
    uint64_t span = 1UL << (12 + 9 * level);
    uint64_t lo = w->start > base ? w->start : base;
    uint64_t hi = w->end - base < 512 * span ? w->end : base + 512 * span;
    for (int i = index_at(lo, level); i <= index_at(hi - 1, level); i++) {
        if (!(table[i] & PTE_P))
            continue;
        if (w->budget-- <= 0)
            return false;
        uint64_t va = base + i * span;
        if (level == 0) {
            if (!(table[i] & PTE_SHARED))
                pmm_free(table[i] & PTE_ADDR);
            table[i] = 0;
            if (w->loaded)
                invlpg(va);
            continue;
        }
        uint64_t *child = table_at(table[i]);
        bool done = unmap_table(w, child, level - 1, va);
        bool covered = w->start <= va && va + span <= w->end;
        if ((done && covered) || table_empty(child)) {
            table[i] = 0;
            pmm_free(V2P(child));
            w->freed_table = true;
        }
        if (!done)
            return false;
    }
    return true;
}

// Unmap [va, va+len), at most `budget` work; true once all of it is done.
// PML4 entries (and so the PDPTs) stay: at most 256 per address space.
static bool unmap_pages(uint64_t *pml4, uint64_t va, uint64_t len, long budget)
{
    struct unmap_walk w = { va, va + len, budget, vm_loaded(pml4), false };
    bool done = true;
    uint64_t pdpt_span = 1UL << (12 + 9 * 3);
    for (uint64_t a = va; done && a < va + len; a = next_after(a, pdpt_span)) {
        uint64_t entry = pml4[index_at(a, 3)];
        if (!(entry & PTE_P))
            continue;
        if (w.budget-- <= 0)
            done = false;
        else
            done = unmap_table(&w, table_at(entry), 2, a & ~(pdpt_span - 1));
    }
    // A freed table may still be in the paging-structure caches.
    if (w.freed_table && w.loaded)
        write_cr3(read_cr3());
    return done;
}

// Nothing is mapped in [va, va+len): skips absent tables, so the cost
// follows what is mapped, not the length.
static bool range_empty(uint64_t *pml4, uint64_t va, uint64_t len)
{
    uint64_t span;
    for (uint64_t a = va; a < va + len; a = next_after(a, span))
        if (walk_span(pml4, a, &span))
            return false;
    return true;
}

// Fill [va, va+len) with the frames `next_frame` hands out (0: none left),
// or leave nothing behind: a table created for the page that failed may
// stay empty (the next unmap over it frees it). 0 or -ENOMEM.
static int fill_range(uint64_t *pml4, uint64_t va, uint64_t len, uint64_t flags,
                      uint64_t (*next_frame)(void *), void *arg)
{
    for (uint64_t a = va; a < va + len; a += PAGE_SIZE) {
        uint64_t *pte = walk(pml4, a, true);
        uint64_t pa = pte ? next_frame(arg) : 0;
        if (!pa) {
            unmap_pages(pml4, va, a - va, LONG_MAX);
            return -ENOMEM;
        }
        // Dirty from the start: its contents (zeros, or what a loader
        // writes through the direct map) are new to any checkpoint.
        *pte = pa | flags | PTE_D;
    }
    return 0;
}

static uint64_t fresh_frame(void *arg)
{
    (void)arg;
    return pmm_alloc();
}

static int map_range(uint64_t *pml4, uint64_t va, uint64_t len, int prot)
{
    if ((prot & ~(VM_READ | VM_WRITE | VM_EXEC)) || prot == 0)
        return -EINVAL;
    // More pages than free frames can never succeed: say so before doing
    // any work (this also bounds the loops below by the size of memory).
    if (len / PAGE_SIZE > pmm_free_count())
        return -ENOMEM;
    if (!range_empty(pml4, va, len))
        return -EINVAL;
    return fill_range(pml4, va, len, leaf_flags(prot), fresh_frame, NULL);
}

int vm_map_user(uint64_t *pml4, uint64_t va, uint64_t len, int prot)
{
    if (!mappable_range(va, len))
        return -EINVAL;
    return map_range(pml4, va, len, prot);
}

int vm_map_act(uint64_t *pml4, uint64_t va, uint64_t len, int prot)
{
    uint64_t end = ACT_SEGMENT + ACT_SEGMENT_SIZE;
    if ((va | len) & (PAGE_SIZE - 1) || len == 0 || len > end - ACT_RESTORE ||
        va < ACT_RESTORE || va > end - len)
        return -EINVAL;
    return map_range(pml4, va, len, prot);
}

int vm_unmap_user(uint64_t *pml4, uint64_t va, uint64_t len)
{
    if (!mappable_range(va, len))
        return -EINVAL;
    // Out of budget: -ERESTART, the caller reruns the call, which skips
    // what is already gone (docs/restart.md).
    return unmap_pages(pml4, va, len, UNMAP_BUDGET) ? 0 : -ERESTART;
}

// The next frame of a shared region, for fill_range.
static uint64_t region_frame(void *arg)
{
    const uint64_t **next = arg;
    return *(*next)++;
}

int vm_map_frames(uint64_t *pml4, uint64_t va, const uint64_t *frames, uint64_t n, int prot)
{
    if (n > USER_LIMIT / PAGE_SIZE || (prot & ~(VM_READ | VM_WRITE | VM_EXEC)) || prot == 0)
        return -EINVAL;
    uint64_t len = n * PAGE_SIZE;
    if (!mappable_range(va, len) || !range_empty(pml4, va, len))
        return -EINVAL;
    // Rolling back on failure clears the entries without freeing the
    // frames: PTE_SHARED says they are not ours.
    return fill_range(pml4, va, len, leaf_flags(prot) | PTE_SHARED, region_frame, &frames);
}

void vm_unmap_frames(uint64_t *pml4, uint64_t va, const uint64_t *frames, uint64_t n)
{
    bool flush = vm_loaded(pml4);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t a = va + i * PAGE_SIZE;
        uint64_t *pte = is_user_range(a, PAGE_SIZE) ? walk(pml4, a, false) : NULL;
        if (!pte || !(*pte & PTE_P) || !(*pte & PTE_SHARED) || (*pte & PTE_ADDR) != frames[i])
            continue;
        *pte = 0;
        if (flush)
            invlpg(a);
    }
}

int vm_write_aspace(uint64_t *pml4, uint64_t va, const void *src, uint64_t len)
{
    if (!is_user_range(va, len))
        return -EFAULT;
    const uint8_t *s = src;
    while (len > 0) {
        uint64_t pte = vm_lookup(pml4, va);
        if (!pte)
            return -EFAULT;
        uint64_t off = va & (PAGE_SIZE - 1);
        uint64_t n = PAGE_SIZE - off;
        if (n > len)
            n = len;
        memcpy((uint8_t *)P2V(pte & PTE_ADDR) + off, s, n);
        va += n;
        s += n;
        len -= n;
    }
    return 0;
}
