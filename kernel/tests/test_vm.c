// Page tables in a scratch address space, and the address predicates.
#include "abi.h"
#include "ktest.h"
#include "memlayout.h"
#include "pmm.h"
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

KTEST_SUITE(vm,
            KTEST_CASE(canonical_addresses),
            KTEST_CASE(user_ranges),
            KTEST_CASE(kernel_half_is_shared),
            KTEST_CASE(map_lookup_unmap),
            KTEST_CASE(protections),
            KTEST_CASE(map_rejects_bad_ranges),
            KTEST_CASE(write_aspace),
            KTEST_CASE(huge_ranges_are_cheap));
