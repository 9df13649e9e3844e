// The frame allocator and the heap: accounting, zeroing, reserved ranges,
// and exhaustion as an error rather than a panic.
#include "kalloc.h"
#include "ktest.h"
#include "memlayout.h"
#include "pmm.h"
#include "vm.h"
#include "abi.h"

static bool page_is_zero(uint64_t pa)
{
    const uint64_t *p = P2V(pa);
    for (int i = 0; i < PAGE_SIZE / 8; i++)
        if (p[i])
            return false;
    return true;
}

static void alloc_free_accounting(struct ktest *t)
{
    uint64_t before = pmm_free_count();
    uint64_t a = pmm_alloc(), b = pmm_alloc();
    KEXPECT_TRUE(t, a && b && a != b);
    KEXPECT_EQ(t, pmm_free_count(), before - 2);
    pmm_free(a);
    pmm_free(b);
    KEXPECT_EQ(t, pmm_free_count(), before);
    KEXPECT_TRUE(t, pmm_total_count() >= before);
}

static void frames_are_aligned_zeroed_and_not_reserved(struct ktest *t)
{
    uint64_t kstart = KV2P(__kernel_start), kend = KV2P(__kernel_end);
    uint64_t got[64];
    for (int i = 0; i < 64; i++) {
        got[i] = pmm_alloc();
        KEXPECT_EQ(t, got[i] & (PAGE_SIZE - 1), 0);
        KEXPECT_TRUE(t, got[i] >= 0x100000);
        KEXPECT_TRUE(t, got[i] + PAGE_SIZE <= kstart || got[i] >= kend);
        KEXPECT_TRUE(t, page_is_zero(got[i]));
    }
    for (int i = 0; i < 64; i++)
        pmm_free(got[i]);
    // Freed frames are poisoned, reallocated ones zeroed again.
    uint64_t again = pmm_alloc();
    KEXPECT_TRUE(t, page_is_zero(again));
    pmm_free(again);
}

// Take every frame: allocation then fails cleanly at every layer, and
// giving them back restores the count exactly.
static void exhaustion_is_an_error(struct ktest *t)
{
    uint64_t before = pmm_free_count();
    uint64_t chain = 0, n = 0, pa;
    while ((pa = pmm_alloc()) != 0) {
        *(uint64_t *)P2V(pa) = chain;     // a list threaded through the frames
        chain = pa;
        n++;
    }
    KEXPECT_EQ(t, n, before);
    KEXPECT_EQ(t, pmm_free_count(), 0);
    KEXPECT_TRUE(t, vm_new_aspace() == NULL);
    KEXPECT_TRUE(t, kmalloc(KMALLOC_MAX) == NULL);
    while (chain) {
        uint64_t next = *(uint64_t *)P2V(chain);
        pmm_free(chain);
        chain = next;
    }
    KEXPECT_EQ(t, pmm_free_count(), before);
}

static void map_fails_with_enomem_and_leaves_nothing(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_TRUE(t, as != NULL);
    // Leave exactly a few frames: enough for the tables, not for 8 pages.
    uint64_t chain = 0, pa;
    while (pmm_free_count() > 5 && (pa = pmm_alloc()) != 0) {
        *(uint64_t *)P2V(pa) = chain;
        chain = pa;
    }
    uint64_t left = pmm_free_count();
    KEXPECT_EQ(t, vm_map_user(as, 0x800000, 8 * PAGE_SIZE, VM_READ | VM_WRITE), -ENOMEM);
    KEXPECT_EQ(t, vm_lookup(as, 0x800000), 0);
    // Only the intermediate tables (3) may stay; the pages came back.
    KEXPECT_TRUE(t, pmm_free_count() + 3 >= left);
    while (chain) {
        uint64_t next = *(uint64_t *)P2V(chain);
        pmm_free(chain);
        chain = next;
    }
    vm_free_aspace(as);
}

static void kmalloc_basics(struct ktest *t)
{
    void *p[40];
    for (int i = 0; i < 40; i++) {
        size_t size = 1 + (size_t)i * 97;
        p[i] = kmalloc(size);
        KEXPECT_TRUE(t, p[i] != NULL);
        KEXPECT_EQ(t, (uint64_t)p[i] & 15, 0);
        const uint8_t *b = p[i];
        bool zero = true;
        for (size_t j = 0; j < size; j++)
            zero &= b[j] == 0;
        KEXPECT_TRUE(t, zero);
        memset(p[i], 0xa5, size);
    }
    for (int i = 1; i < 40; i++)
        KEXPECT_TRUE(t, p[i] != p[i - 1]);
    for (int i = 0; i < 40; i++)
        kfree(p[i]);
    void *q = kmalloc(100);
    KEXPECT_TRUE(t, q != NULL);
    kfree(q);
    KEXPECT_TRUE(t, kmalloc(0) == NULL);
    KEXPECT_TRUE(t, kmalloc(KMALLOC_MAX + 1) == NULL);
    void *big = kmalloc(KMALLOC_MAX);
    KEXPECT_TRUE(t, big != NULL);
    kfree(big);
}

static void kmalloc_reuses_freed_blocks(struct ktest *t)
{
    void *a = kmalloc(200);
    kfree(a);
    void *b = kmalloc(200);
    KEXPECT_TRUE(t, a == b);
    kfree(b);
    // Churn must not grow the heap without bound.
    uint64_t before = pmm_free_count();
    for (int i = 0; i < 1000; i++)
        kfree(kmalloc(64));
    KEXPECT_TRUE(t, pmm_free_count() + 1 >= before);
}

// A run is n frames that were all free, side by side: with every other
// frame of a stretch held, the allocator must look past the holes.
static void alloc_run_takes_only_free_neighbours(struct ktest *t)
{
    enum { HELD = 192 };
    uint64_t held[HELD];
    for (int i = 0; i < HELD; i++)
        held[i] = pmm_alloc();
    for (int i = 0; i < HELD; i += 2)           // holes of one frame between held ones
        pmm_free(held[i]);
    uint64_t before = pmm_free_count();
    uint64_t run = pmm_alloc_run(3);
    KEXPECT_TRUE(t, run != 0);
    KEXPECT_EQ(t, pmm_free_count(), before - 3);
    for (int i = 1; i < HELD; i += 2)
        KEXPECT_TRUE(t, held[i] < run || held[i] >= run + 3 * PAGE_SIZE);
    for (uint64_t f = 0; f < 3; f++)
        KEXPECT_TRUE(t, page_is_zero(run + f * PAGE_SIZE));
    KEXPECT_EQ(t, pmm_alloc_run(0), 0);
    KEXPECT_EQ(t, pmm_alloc_run(65), 0);
    for (uint64_t f = 0; f < 3; f++)
        pmm_free(run + f * PAGE_SIZE);
    for (int i = 1; i < HELD; i += 2)
        pmm_free(held[i]);
    KEXPECT_EQ(t, pmm_free_count(), before + HELD / 2);
}

KTEST_SUITE(pmm,
            KTEST_CASE(alloc_free_accounting),
            KTEST_CASE(frames_are_aligned_zeroed_and_not_reserved),
            KTEST_CASE(exhaustion_is_an_error),
            KTEST_CASE(map_fails_with_enomem_and_leaves_nothing),
            KTEST_CASE(kmalloc_basics),
            KTEST_CASE(kmalloc_reuses_freed_blocks),
            KTEST_CASE(alloc_run_takes_only_free_neighbours));
