// The kernel's page tables, built once at boot to replace the boot code's
// (which map 2 GiB of everything read-write-execute).
//
// W^X everywhere, in 4 KiB pages where a 2 MiB page would mix rights:
//   kernel image (KERNEL_BASE + 1 MiB ...):
//       .text                     R-X
//       .rodata (initrd included) R--
//       entry area, read-only part (GDT, IDT, TSS, pti_on)  R--
//       .data, .bss (page tables, stacks, the entry stacks)  RW-
//   direct map of physical 0..4 GiB (DIRECT_MAP): RW- in 2 MiB pages, except
//       the 2 MiB regions holding the kernel image, which are split so that
//       the alias of each image page is no more permissive than the page
//       itself (text and rodata R--, never executable).
// Nothing else is mapped in the kernel half: not low memory at KERNEL_BASE,
// not the rest of the 2 GiB the boot tables mapped there.
//
// No page is global: with isolation on, a CR3 switch to a user view must
// drop every kernel translation (pti.h).
#include "kernmap.h"
#include "memlayout.h"
#include "panic.h"
#include "pmm.h"
#include "printf.h"
#include "vm.h"
#include "x86.h"

#define TABLE_KFLAGS (PTE_P | PTE_W)    // leaves decide the rights
#define LARGE_PAGE   (512UL * PAGE_SIZE)

// 8 KiB aligned like every PML4 pair (pti.h): CR3 bit 12 clear means "kernel view".
uint64_t kernel_pml4[512] __attribute__((aligned(2 * PAGE_SIZE)));

static uint64_t *next_table(uint64_t *entry)
{
    if (!(*entry & PTE_P)) {
        uint64_t pa = pmm_alloc();
        if (!pa)
            panic("kernmap: out of memory for page tables");
        *entry = pa | TABLE_KFLAGS;
    }
    if (*entry & PTE_PS)
        panic("kernmap: 4 KiB page inside a large page");
    return P2V(*entry & PTE_ADDR);
}

// The entry for va at `level` (1 = page directory, 0 = page table).
static uint64_t *kernel_entry(uint64_t *pml4, uint64_t va, int level)
{
    uint64_t *table = pml4;
    for (int l = 3; l > level; l--)
        table = next_table(&table[(va >> (12 + 9 * l)) & 511]);
    return &table[(va >> (12 + 9 * level)) & 511];
}

void kmap_page(uint64_t *pml4, uint64_t va, uint64_t pa, uint64_t flags)
{
    *kernel_entry(pml4, va, 0) = pa | flags;
}

static bool within(uint64_t va, const char *start, const char *end)
{
    return va >= (uint64_t)start && va < (uint64_t)end;
}

uint64_t kernmap_image_flags(uint64_t va)
{
    if (within(va, __text_start, __rodata_start))
        return PTE_P;
    if (within(va, __rodata_start, __data_start) || within(va, __entry_ro_start, __entry_ro_end))
        return PTE_P | PTE_NX;
    return PTE_P | PTE_W | PTE_NX;
}

static void map_image(void)
{
    for (uint64_t va = (uint64_t)__kernel_start; va < (uint64_t)__kernel_end; va += PAGE_SIZE)
        kmap_page(kernel_pml4, va, KV2P(va), kernmap_image_flags(va));
}

static bool holds_image(uint64_t pa)    // pa: a 2 MiB region
{
    return pa < KV2P(__kernel_end) && pa + LARGE_PAGE > KV2P(__kernel_start);
}

static void map_direct(void)
{
    uint64_t kstart = KV2P(__kernel_start), kend = KV2P(__kernel_end);
    for (uint64_t pa = 0; pa < DIRECT_MAP_SIZE; pa += LARGE_PAGE) {
        uint64_t va = (uint64_t)P2V(pa);
        if (!holds_image(pa)) {
            *kernel_entry(kernel_pml4, va, 1) = pa | PTE_P | PTE_W | PTE_PS | PTE_NX;
            continue;
        }
        for (uint64_t p = pa; p < pa + LARGE_PAGE; p += PAGE_SIZE) {
            uint64_t flags = PTE_P | PTE_W | PTE_NX;
            if (p >= kstart && p < kend)
                flags = kernmap_image_flags(p + KERNEL_BASE) | PTE_NX;
            kmap_page(kernel_pml4, (uint64_t)P2V(p), p, flags);
        }
    }
}

void kernmap_init(void)
{
    map_image();
    map_direct();
    write_cr3(KV2P(kernel_pml4));
    kprintf("vm: kernel W^X (text r-x, rodata r--, data rw-), direct map rw- nx\n");
}
