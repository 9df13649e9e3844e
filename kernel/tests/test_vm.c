// Page tables in a scratch address space, and the address predicates.
#include "abi.h"
#include "ktest.h"
#include "memlayout.h"
#include "pmm.h"
#include "syscall.h"
#include "vm.h"

#define VA 0x500000UL

static void canonical_addresses(struct ktest *t)
{
    KEXPECT_TRUE(t, is_canonical(0));
    KEXPECT_TRUE(t, is_canonical(0x00007fffffffffffUL));
    KEXPECT_FALSE(t, is_canonical(0x0000800000000000UL));
    KEXPECT_FALSE(t, is_canonical(0xffff7fffffffffffUL));
    KEXPECT_TRUE(t, is_canonical(0xffff800000000000UL));
    KEXPECT_TRUE(t, is_canonical(0xffffffffffffffffUL));
    KEXPECT_FALSE(t, is_canonical(0x8000000000000000UL));
}

static void user_ranges(struct ktest *t)
{
    KEXPECT_TRUE(t, is_user_range(USER_BASE, PAGE_SIZE));
    KEXPECT_TRUE(t, is_user_range(USER_LIMIT - 8, 8));
    KEXPECT_FALSE(t, is_user_range(USER_LIMIT - 8, 9));
    KEXPECT_FALSE(t, is_user_range(USER_LIMIT, 1));
    KEXPECT_FALSE(t, is_user_range(0x0000800000000000UL, 1));   // non-canonical
    KEXPECT_FALSE(t, is_user_range(KERNEL_BASE, 1));
    KEXPECT_FALSE(t, is_user_range(DIRECT_MAP, 1));
    KEXPECT_FALSE(t, is_user_range(0x1000, ~0UL));              // wraps
    KEXPECT_FALSE(t, is_user_range(~0UL, 2));
}

static void kernel_half_is_shared(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    uint64_t *k = vm_kernel_aspace();
    bool same = true, user_empty = true;
    for (int i = 256; i < 512; i++)
        same &= as[i] == k[i];
    for (int i = 0; i < 256; i++)
        user_empty &= as[i] == 0;
    KEXPECT_TRUE(t, same);
    KEXPECT_TRUE(t, user_empty);
    vm_free_aspace(as);
}

static void map_lookup_unmap(struct ktest *t)
{
    uint64_t before = pmm_free_count();
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA, 3 * PAGE_SIZE, VM_READ | VM_WRITE), 0);
    for (int i = 0; i < 3; i++) {
        uint64_t pte = vm_lookup(as, VA + i * PAGE_SIZE);
        KEXPECT_TRUE(t, (pte & (PTE_P | PTE_U | PTE_W | PTE_NX)) == (PTE_P | PTE_U | PTE_W | PTE_NX));
    }
    KEXPECT_EQ(t, vm_lookup(as, VA + 3 * PAGE_SIZE), 0);
    KEXPECT_EQ(t, vm_unmap_user(as, VA + PAGE_SIZE, PAGE_SIZE), 0);
    KEXPECT_EQ(t, vm_lookup(as, VA + PAGE_SIZE), 0);
    KEXPECT_TRUE(t, vm_lookup(as, VA) != 0);
    // Unmapping a hole is fine; remapping it works.
    KEXPECT_EQ(t, vm_unmap_user(as, VA, 3 * PAGE_SIZE), 0);
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);
    vm_free_aspace(as);
    KEXPECT_EQ(t, pmm_free_count(), before);
}

static void protections(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);
    KEXPECT_EQ(t, vm_map_user(as, VA + PAGE_SIZE, PAGE_SIZE, VM_READ | VM_EXEC), 0);
    uint64_t ro = vm_lookup(as, VA), rx = vm_lookup(as, VA + PAGE_SIZE);
    KEXPECT_FALSE(t, ro & PTE_W);
    KEXPECT_TRUE(t, ro & PTE_NX);
    KEXPECT_FALSE(t, rx & PTE_NX);
    KEXPECT_TRUE(t, rx & PTE_U);
    vm_free_aspace(as);
}

static void map_rejects_bad_ranges(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA + 1, PAGE_SIZE, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, VA, 100, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, VA, 0, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, 0, PAGE_SIZE, VM_READ), -EINVAL);          // below USER_BASE
    KEXPECT_EQ(t, vm_map_user(as, USER_LIMIT, PAGE_SIZE, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, KERNEL_BASE, PAGE_SIZE, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, 0x0000800000000000UL, PAGE_SIZE, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, ACT_SEGMENT, PAGE_SIZE, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, ACT_RESTORE - PAGE_SIZE, 2 * PAGE_SIZE, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, VA, ~0UL & ~0xfffUL, VM_READ), -EINVAL);  // wraps
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, 0), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, 8), -EINVAL);
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);
    KEXPECT_EQ(t, vm_map_user(as, VA - PAGE_SIZE, 2 * PAGE_SIZE, VM_READ), -EINVAL);   // overlap
    KEXPECT_EQ(t, vm_lookup(as, VA - PAGE_SIZE), 0);
    KEXPECT_EQ(t, vm_unmap_user(as, VA + 1, PAGE_SIZE), -EINVAL);
    KEXPECT_EQ(t, vm_unmap_user(as, ACT_SEGMENT, PAGE_SIZE), -EINVAL);
    vm_free_aspace(as);
}

// The activation area, ACT_RESTORE .. ACT_SEGMENT + ACT_SEGMENT_SIZE, is the
// kernel's to its last page: map() and unmap() refuse every page of it and
// every range that touches it from either side; the pages around it are
// ordinary.
static void activation_area_is_refused_to_its_last_page(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    const uint64_t start = ACT_RESTORE, end = ACT_SEGMENT + ACT_SEGMENT_SIZE;
    const struct { uint64_t va, len; } inside[] = {
        { start, PAGE_SIZE },                           // the restore page
        { start + PAGE_SIZE, PAGE_SIZE },               // between it and the segment
        { ACT_SEGMENT - PAGE_SIZE, PAGE_SIZE },
        { ACT_SEGMENT, PAGE_SIZE },                     // the header
        { end - PAGE_SIZE, PAGE_SIZE },                 // the last page
        { end - PAGE_SIZE, 2 * PAGE_SIZE },             // crossing the end
        { end - 2 * PAGE_SIZE, 3 * PAGE_SIZE },
        { start - PAGE_SIZE, 2 * PAGE_SIZE },           // crossing the start
        { start - PAGE_SIZE, end - start + 2 * PAGE_SIZE },     // all of it and more
    };
    for (unsigned i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
        int m = vm_map_user(as, inside[i].va, inside[i].len, VM_READ);
        int u = vm_unmap_user(as, inside[i].va, inside[i].len);
        if (m != -EINVAL || u != -EINVAL)
            ktest_fail(t, __FILE__, __LINE__, "range 0x%lx len 0x%lx: map %d, unmap %d, want -EINVAL (%d)",
                       inside[i].va, inside[i].len, m, u, -EINVAL);
    }
    KEXPECT_EQ(t, vm_map_user(as, start - PAGE_SIZE, PAGE_SIZE, VM_READ), 0);     // just before
    KEXPECT_EQ(t, vm_map_user(as, end, PAGE_SIZE, VM_READ), 0);                   // just after
    KEXPECT_EQ(t, vm_unmap_user(as, start - PAGE_SIZE, PAGE_SIZE), 0);
    KEXPECT_EQ(t, vm_unmap_user(as, end, PAGE_SIZE), 0);
    vm_free_aspace(as);
}

static void write_aspace(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA, 2 * PAGE_SIZE, VM_READ), 0);
    const char msg[] = "across the page boundary";
    KEXPECT_EQ(t, vm_write_aspace(as, VA + PAGE_SIZE - 6, msg, sizeof(msg)), 0);
    const char *first = (const char *)P2V(vm_lookup(as, VA) & PTE_ADDR) + PAGE_SIZE - 6;
    const char *second = P2V(vm_lookup(as, VA + PAGE_SIZE) & PTE_ADDR);
    KEXPECT_EQ(t, memcmp(first, msg, 6), 0);
    KEXPECT_STREQ(t, second, msg + 6);
    KEXPECT_EQ(t, vm_write_aspace(as, VA + 2 * PAGE_SIZE - 1, msg, 2), -EFAULT);
    KEXPECT_EQ(t, vm_write_aspace(as, KERNEL_BASE, msg, 1), -EFAULT);
    vm_free_aspace(as);
}

// Hostile sizes must cost time proportional to what is mapped, not to the
// range: the whole user half in one call.
static void huge_ranges_are_cheap(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    uint64_t whole = ACT_RESTORE - USER_BASE;
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);
    KEXPECT_EQ(t, vm_map_user(as, 0x40000000UL, USER_LIMIT - 0x40000000UL, VM_READ), -ENOMEM);
    KEXPECT_EQ(t, vm_unmap_user(as, 0x40000000UL, USER_LIMIT - 0x40000000UL), 0);
    KEXPECT_EQ(t, vm_unmap_user(as, USER_BASE, whole), 0);
    KEXPECT_EQ(t, vm_lookup(as, VA), 0);
    vm_free_aspace(as);
}

#define GIB (1UL << 30)

// Unmap until the call completes, as a rewound system call would; how many
// calls it took (0: a call failed otherwise, or one made no progress).
static int unmap_to_the_end(uint64_t *as, uint64_t va, uint64_t len)
{
    for (int calls = 1; calls < 1000; calls++) {
        uint64_t free_before = pmm_free_count();
        int r = vm_unmap_user(as, va, len);
        if (r == 0)
            return calls;
        if (r != -ERESTART || pmm_free_count() <= free_before)
            return 0;
    }
    return 0;
}

// An unmap frees the PTs and PDs it empties (PDPTs stay with their PML4
// entry): map/unmap cycles leave no tables behind.
static void unmap_frees_empty_tables(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);     // PML4[0]'s PDPT exists now
    uint64_t base = pmm_free_count();
    // One page in each of many 2 MiB regions, in several GiB (several PDs).
    for (uint64_t va = 4 * GIB; va < 4 * GIB + 3 * GIB; va += 2 * 1024 * 1024 * 7) {
        KEXPECT_EQ(t, vm_map_user(as, va, PAGE_SIZE, VM_READ), 0);
        KEXPECT_EQ(t, vm_unmap_user(as, va, PAGE_SIZE), 0);
    }
    KEXPECT_EQ(t, pmm_free_count(), base);
    // A range across a PT and a PD boundary, unmapped in two pieces.
    uint64_t edge = 2 * GIB - 4 * PAGE_SIZE;
    KEXPECT_EQ(t, vm_map_user(as, edge, 8 * PAGE_SIZE, VM_READ | VM_WRITE), 0);
    KEXPECT_EQ(t, vm_unmap_user(as, edge + 2 * PAGE_SIZE, 6 * PAGE_SIZE), 0);
    KEXPECT_TRUE(t, vm_lookup(as, edge + PAGE_SIZE) != 0);
    KEXPECT_EQ(t, vm_unmap_user(as, edge, 2 * PAGE_SIZE), 0);
    KEXPECT_EQ(t, pmm_free_count(), base);
    // The first page's PT and PD go too; the PDPT stays.
    KEXPECT_EQ(t, vm_unmap_user(as, USER_BASE, ACT_RESTORE - USER_BASE), 0);
    KEXPECT_EQ(t, pmm_free_count(), base + 3);
    KEXPECT_TRUE(t, as[0] & PTE_P);
    KEXPECT_EQ(t, ((uint64_t *)P2V(as[0] & PTE_ADDR))[0], 0);
    // Untouched neighbours keep their mappings.
    KEXPECT_EQ(t, vm_map_user(as, VA, 2 * PAGE_SIZE, VM_READ), 0);
    KEXPECT_EQ(t, vm_unmap_user(as, VA + PAGE_SIZE, PAGE_SIZE), 0);
    KEXPECT_TRUE(t, vm_lookup(as, VA) != 0);
    vm_free_aspace(as);
}

// More work than one call may do: -ERESTART with progress made, until a
// rerun completes; then nothing is left.
static void big_unmap_restarts_and_converges(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);
    uint64_t base = pmm_free_count();
    KEXPECT_EQ(t, vm_map_user(as, 4 * GIB, 4096 * PAGE_SIZE, VM_READ), 0);   // 16 MiB, full PTs
    for (uint64_t n = 0; n < 4096; n++)                                        // a PT per page
        KEXPECT_EQ(t, vm_map_user(as, 8 * GIB + (n << 21), PAGE_SIZE, VM_READ), 0);
    int calls = unmap_to_the_end(as, 4 * GIB, 12 * GIB);
    KEXPECT_TRUE(t, calls >= 2);
    KEXPECT_EQ(t, pmm_free_count(), base);
    KEXPECT_EQ(t, vm_lookup(as, 8 * GIB + (4095UL << 21)), 0);
    KEXPECT_TRUE(t, vm_lookup(as, VA) != 0);
    vm_free_aspace(as);
}

// A PDPT under every user PML4 entry: a rerun walks them all again before
// it reaches new work, and must still get on.
static void restarts_converge_with_every_pdpt_present(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    uint64_t slot = 512 * GIB;
    for (uint64_t i = 1; i < 256; i++)
        KEXPECT_EQ(t, vm_map_user(as, i * slot - 4 * PAGE_SIZE, 8 * PAGE_SIZE, VM_READ), 0);
    uint64_t base = pmm_free_count();
    int calls = unmap_to_the_end(as, ACT_SEGMENT + ACT_SEGMENT_SIZE,
                                 USER_LIMIT - ACT_SEGMENT - ACT_SEGMENT_SIZE);
    KEXPECT_TRUE(t, calls >= 1);
    // 8 pages, 2 PTs and 2 PDs per boundary; the 256 PDPTs stay.
    KEXPECT_EQ(t, pmm_free_count(), base + 255 * 12);
    vm_free_aspace(as);
}

// Frames mapped with vm_map_frames belong to someone else (a shared
// region): no way of unmapping them frees them, and vm_unmap_frames
// clears only the entries that still hold them.
static void shared_frames_are_never_freed_by_the_mapping(struct ktest *t)
{
    uint64_t before = pmm_free_count();
    uint64_t frames[3] = { pmm_alloc(), pmm_alloc(), pmm_alloc() };
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);
    KEXPECT_EQ(t, vm_map_frames(as, VA, frames, 3, VM_READ), -EINVAL);          // overlap
    KEXPECT_EQ(t, vm_map_frames(as, ACT_SEGMENT, frames, 3, VM_READ), -EINVAL); // activation area
    KEXPECT_EQ(t, vm_map_frames(as, VA + PAGE_SIZE + 8, frames, 3, VM_READ), -EINVAL);
    KEXPECT_EQ(t, vm_map_frames(as, VA + PAGE_SIZE, frames, 3, VM_READ | VM_WRITE | VM_EXEC), 0);
    uint64_t pte = vm_lookup(as, VA + 2 * PAGE_SIZE);
    KEXPECT_EQ(t, pte & PTE_ADDR, frames[1]);
    KEXPECT_TRUE(t, (pte & (PTE_SHARED | PTE_W | PTE_U)) == (PTE_SHARED | PTE_W | PTE_U));
    // A plain unmap of one page leaves its frame alone ...
    KEXPECT_EQ(t, vm_unmap_user(as, VA + 2 * PAGE_SIZE, PAGE_SIZE), 0);
    KEXPECT_EQ(t, vm_lookup(as, VA + 2 * PAGE_SIZE), 0);
    // ... and an anonymous page in its place is not the region's to clear.
    KEXPECT_EQ(t, vm_map_user(as, VA + 2 * PAGE_SIZE, PAGE_SIZE, VM_READ), 0);
    vm_unmap_frames(as, VA + PAGE_SIZE, frames, 3);
    KEXPECT_EQ(t, vm_lookup(as, VA + PAGE_SIZE), 0);
    KEXPECT_TRUE(t, vm_lookup(as, VA + 2 * PAGE_SIZE) != 0);
    KEXPECT_EQ(t, vm_lookup(as, VA + 3 * PAGE_SIZE), 0);
    // The end of the address space frees its own pages and tables only.
    KEXPECT_EQ(t, vm_map_frames(as, 4 * GIB, frames, 3, VM_READ), 0);
    vm_free_aspace(as);
    KEXPECT_EQ(t, pmm_free_count(), before - 3);    // only the region's frames are still taken
    for (int i = 0; i < 3; i++)
        pmm_free(frames[i]);
}

KTEST_SUITE(vm,
            KTEST_CASE(canonical_addresses),
            KTEST_CASE(user_ranges),
            KTEST_CASE(kernel_half_is_shared),
            KTEST_CASE(map_lookup_unmap),
            KTEST_CASE(protections),
            KTEST_CASE(map_rejects_bad_ranges),
            KTEST_CASE(activation_area_is_refused_to_its_last_page),
            KTEST_CASE(write_aspace),
            KTEST_CASE(huge_ranges_are_cheap),
            KTEST_CASE(unmap_frees_empty_tables),
            KTEST_CASE(big_unmap_restarts_and_converges),
            KTEST_CASE(restarts_converge_with_every_pdpt_present),
            KTEST_CASE(shared_frames_are_never_freed_by_the_mapping));
