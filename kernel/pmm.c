// The physical frame allocator.
//
// A LIFO free list threaded through the free frames themselves (reached
// through the direct map), as in xv6's kalloc: O(1) both ways and no
// metadata to size up front. The frames the boot loader's map calls usable
// are added one by one, except:
//   - the low 1 MiB: real-mode leftovers, the PVH start info, the BIOS area;
//   - the kernel image, which holds the boot page tables and stacks;
//   - anything beyond the direct map, which the kernel could not reach.
// Boot information itself is copied out by bootinfo_parse before this runs.
#include "memlayout.h"
#include "panic.h"
#include "pmm.h"

#define LOW_RESERVED 0x100000UL

struct free_frame {
    struct free_frame *next;
};

static struct free_frame *free_list;
static uint64_t nfree, ntotal;
// Bounds of what pmm_free accepts, to catch wild frees early.
static uint64_t lowest = ~0UL, highest;

// rep stos: one instruction per page instead of a byte loop; frames are
// zeroed on every allocation, so this is on the spawn and map paths.
static void fill_page(void *page, uint64_t pattern)
{
    void *d = page;
    uint64_t n = PAGE_SIZE / 8;
    asm volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(pattern) : "memory");
}

static uint64_t align_up(uint64_t x)
{
    return (x + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
}

static void push(uint64_t pa)
{
    struct free_frame *f = P2V(pa);
    f->next = free_list;
    free_list = f;
    nfree++;
}

static bool reserved(uint64_t pa)
{
    uint64_t kstart = KV2P(__kernel_start), kend = KV2P(__kernel_end);
    if (pa < LOW_RESERVED)
        return true;
    return pa + PAGE_SIZE > kstart && pa < kend;
}

static void add_region(uint64_t base, uint64_t length)
{
    uint64_t start = align_up(base);
    uint64_t end = (base + length) & ~(uint64_t)(PAGE_SIZE - 1);
    if (end > DIRECT_MAP_SIZE)
        end = DIRECT_MAP_SIZE;
    for (uint64_t pa = start; pa < end; pa += PAGE_SIZE) {
        if (reserved(pa))
            continue;
        push(pa);
        ntotal++;
        if (pa < lowest)
            lowest = pa;
        if (pa + PAGE_SIZE > highest)
            highest = pa + PAGE_SIZE;
    }
}

void pmm_init(const struct memmap *mm)
{
    for (int i = 0; i < mm->n; i++)
        if (mm->region[i].type == MEM_USABLE)
            add_region(mm->region[i].base, mm->region[i].length);
}

uint64_t pmm_alloc(void)
{
    struct free_frame *f = free_list;
    if (!f)
        return 0;
    free_list = f->next;
    nfree--;
    fill_page(f, 0);
    return V2P(f);
}

void pmm_free(uint64_t pa)
{
    if ((pa & (PAGE_SIZE - 1)) || pa < lowest || pa >= highest || reserved(pa))
        panic("pmm_free: bad frame 0x%lx", pa);
    // Poison the frame so a use after free shows up as garbage, not as
    // plausible stale data.
    fill_page(P2V(pa), 0x6b6b6b6b6b6b6b6bUL);
    push(pa);
}

uint64_t pmm_free_count(void)
{
    return nfree;
}

uint64_t pmm_total_count(void)
{
    return ntotal;
}
