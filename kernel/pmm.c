// The physical frame allocator.
//
// A bitmap with one bit per frame of the direct map (set = free), searched
// from a moving hint. Not xv6's free list threaded through the frames: that
// writes every free page at boot, and a page the kernel has written is a
// page every QEMU snapshot must save and every checkpoint must consider
// (128 MiB of RAM took ~2 s to snapshot instead of ~25 ms) and that TCG
// must fault in at boot. The bitmap costs 128 KiB of .bss for 4 GiB and
// touches no free frame until it is handed out.
// The frames the boot loader's map calls usable are free, except:
//   - the low 1 MiB: real-mode leftovers, the PVH start info, the BIOS area;
//   - the kernel image, which holds the boot page tables and stacks;
//   - anything beyond the direct map, which the kernel could not reach.
// Boot information itself is copied out by bootinfo_parse before this runs.
#include "bitmap.h"
#include "memlayout.h"
#include "panic.h"
#include "pmm.h"

#define LOW_RESERVED 0x100000UL
#define NFRAMES      (DIRECT_MAP_SIZE / PAGE_SIZE)
#define NWORDS       BITMAP_WORDS(NFRAMES)

static uint64_t free_map[NWORDS];      // bit n set: frame n is free
static uint64_t hint;                  // word to start the next search at
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

static void mark_free(uint64_t pa)
{
    bitmap_set(free_map, pa / PAGE_SIZE);
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
        mark_free(pa);
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

// The first word with a free frame, searching from the hint and wrapping.
static int64_t word_with_free_frame(void)
{
    for (uint64_t i = 0; i < NWORDS; i++) {
        uint64_t w = (hint + i) % NWORDS;
        if (free_map[w])
            return (int64_t)w;
    }
    return -1;
}

uint64_t pmm_alloc(void)
{
    if (nfree == 0)
        return 0;
    int64_t w = word_with_free_frame();
    if (w < 0)
        panic("pmm: %lu frames counted free, none in the bitmap", nfree);
    uint64_t frame = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(free_map[w]);
    bitmap_clear(free_map, frame);
    hint = (uint64_t)w;
    nfree--;
    uint64_t pa = frame * PAGE_SIZE;
    fill_page(P2V(pa), 0);
    return pa;
}

uint64_t pmm_alloc_pair(void)
{
    if (nfree < 2)
        return 0;
    // Bit 2k and bit 2k+1 both set: an 8 KiB-aligned pair of free frames.
    for (uint64_t i = 0; i < NWORDS; i++) {
        uint64_t w = (hint + i) % NWORDS;
        uint64_t pairs = free_map[w] & (free_map[w] >> 1) & 0x5555555555555555UL;
        if (!pairs)
            continue;
        uint64_t frame = w * 64 + (uint64_t)__builtin_ctzll(pairs);
        bitmap_clear(free_map, frame);
        bitmap_clear(free_map, frame + 1);
        nfree -= 2;
        uint64_t pa = frame * PAGE_SIZE;
        fill_page(P2V(pa), 0);
        fill_page(P2V(pa + PAGE_SIZE), 0);
        return pa;
    }
    return 0;
}

// Bit k of the result set: bits k..k+n-1 of `word` are all set.
static uint64_t runs_of(uint64_t word, unsigned n)
{
    uint64_t runs = word;
    for (unsigned k = 1; k < n; k++)
        runs &= word >> k;
    return runs;
}

uint64_t pmm_alloc_run(unsigned n)
{
    if (n == 0 || n > 64 || nfree < n)
        return 0;
    for (uint64_t i = 0; i < NWORDS; i++) {
        uint64_t w = (hint + i) % NWORDS;
        uint64_t runs = runs_of(free_map[w], n);
        if (!runs)
            continue;
        uint64_t first = w * 64 + (uint64_t)__builtin_ctzll(runs);
        for (uint64_t f = first; f < first + n; f++) {
            bitmap_clear(free_map, f);
            fill_page(P2V(f * PAGE_SIZE), 0);
        }
        nfree -= n;
        return first * PAGE_SIZE;
    }
    return 0;
}

void pmm_free(uint64_t pa)
{
    if ((pa & (PAGE_SIZE - 1)) || pa < lowest || pa >= highest || reserved(pa))
        panic("pmm_free: bad frame 0x%lx", pa);
    if (bitmap_test(free_map, pa / PAGE_SIZE))
        panic("pmm_free: frame 0x%lx freed twice", pa);
    // Poison the frame so a use after free shows up as garbage, not as
    // plausible stale data.
    fill_page(P2V(pa), 0x6b6b6b6b6b6b6b6bUL);
    mark_free(pa);
}

uint64_t pmm_free_count(void)
{
    return nfree;
}

uint64_t pmm_total_count(void)
{
    return ntotal;
}
