// Page-table isolation: the user view of an address space (pti.h) and the
// rights of the kernel's own mappings (kernmap.c).
#include "abi.h"
#include "kernmap.h"
#include "ktest.h"
#include "memlayout.h"
#include "pmm.h"
#include "pti.h"
#include "vm.h"

#define VA 0x500000UL

static void pml4_pair_is_8k_aligned(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, V2P(as) & (2 * PAGE_SIZE - 1), 0);
    KEXPECT_EQ(t, V2P(vm_user_view(as)), V2P(as) + PTI_USER_PML4);
    KEXPECT_EQ(t, KV2P(kernel_pml4) & PTI_USER_PML4, 0);
    vm_free_aspace(as);
}

// Every CR3 the kernel ever loads has bit 12 clear unless it is a program's
// view: the NMI handler clears the bit when it finds it set, and an NMI can
// come while the boot tables are still live (boot/entry.S).
static void boot_tables_do_not_look_like_a_user_view(struct ktest *t)
{
    KEXPECT_EQ(t, KV2P(boot_pml4) & PTI_USER_PML4, 0);
}

static void user_view_has_only_the_entry_area(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    uint64_t *uv = vm_user_view(as);
    int kernel_entries = 0;
    for (int i = 256; i < 512; i++)
        kernel_entries += (uv[i] & PTE_P) != 0;
    KEXPECT_EQ(t, kernel_entries, 1);
    KEXPECT_EQ(t, uv[511], pti_entry_area_pml4e());
    KEXPECT_TRUE(t, uv[511] != as[511]);       // not the kernel's own PML4 entry
    vm_free_aspace(as);
}

static void user_half_is_the_same_in_both_views(struct ktest *t)
{
    uint64_t *as = vm_new_aspace();
    KEXPECT_EQ(t, vm_map_user(as, VA, PAGE_SIZE, VM_READ), 0);
    KEXPECT_EQ(t, vm_map_user(as, 0x7f0000000000UL, PAGE_SIZE, VM_READ), 0);
    uint64_t *uv = vm_user_view(as);
    bool same = true;
    for (int i = 0; i < 256; i++)
        same &= uv[i] == as[i];
    KEXPECT_TRUE(t, same);
    KEXPECT_TRUE(t, (uv[0] & PTE_P) && (uv[254] & PTE_P));
    vm_free_aspace(as);
}

static void freeing_an_address_space_returns_both_pml4_pages(struct ktest *t)
{
    uint64_t before = pmm_free_count();
    vm_free_aspace(vm_new_aspace());
    KEXPECT_EQ(t, pmm_free_count(), before);
}

static void kernel_image_rights_are_w_xor_x(struct ktest *t)
{
    KEXPECT_EQ(t, kernmap_image_flags((uint64_t)__text_start), PTE_P);
    KEXPECT_EQ(t, kernmap_image_flags((uint64_t)__entry_text_start), PTE_P);
    KEXPECT_EQ(t, kernmap_image_flags((uint64_t)__rodata_start), PTE_P | PTE_NX);
    KEXPECT_EQ(t, kernmap_image_flags((uint64_t)__entry_ro_start), PTE_P | PTE_NX);
    KEXPECT_EQ(t, kernmap_image_flags((uint64_t)__data_start + PAGE_SIZE * 2), PTE_P | PTE_W | PTE_NX);
    KEXPECT_EQ(t, kernmap_image_flags((uint64_t)__entry_stack_start), PTE_P | PTE_W | PTE_NX);
    KEXPECT_EQ(t, kernmap_image_flags((uint64_t)__bss_end - 1), PTE_P | PTE_W | PTE_NX);
}

KTEST_SUITE(pti,
            KTEST_CASE(pml4_pair_is_8k_aligned),
            KTEST_CASE(boot_tables_do_not_look_like_a_user_view),
            KTEST_CASE(user_view_has_only_the_entry_area),
            KTEST_CASE(user_half_is_the_same_in_both_views),
            KTEST_CASE(freeing_an_address_space_returns_both_pml4_pages),
            KTEST_CASE(kernel_image_rights_are_w_xor_x));
