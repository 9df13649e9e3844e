// The kernel heap: power-of-two size classes carved out of single frames.
//
// Every block starts with a 16-byte header naming its class, so kfree needs
// no size and blocks stay 16-byte aligned (struct vproc relies on that for
// its trapframe and FPU area). Free blocks of each class wait on a list;
// a class with an empty list takes a fresh frame (via the direct map) and
// cuts it up. Frames are never returned to the page allocator: the heap
// holds small, long-lived kernel objects (environments, vprocs), so its
// size is bounded by their peak number.
//
// Nothing larger than a page is needed yet; a request above KMALLOC_MAX
// fails like an out-of-memory, so callers handle it the same way.
#include <stdint.h>
#include "kalloc.h"
#include "memlayout.h"
#include "panic.h"
#include "pmm.h"
#include "string.h"

#define MIN_SHIFT 5         // 32-byte blocks: 16 header + 16 payload
#define MAX_SHIFT 12        // one whole frame
#define NCLASSES (MAX_SHIFT - MIN_SHIFT + 1)
#define HEADER_MAGIC 0x6b616c6cU     // "kall"

struct header {
    uint32_t magic;
    uint32_t shift;     // block size is 1 << shift
    union {
        struct header *next_free;   // while free
        uint64_t pad;
    };
};

_Static_assert(sizeof(struct header) == 16, "header keeps payloads 16-aligned");

static struct header *free_blocks[NCLASSES];

static int class_for(size_t size)
{
    size_t need = size + sizeof(struct header);
    int shift = MIN_SHIFT;
    while (((size_t)1 << shift) < need)
        shift++;
    return shift;
}

// Cut a fresh frame into blocks of class `shift`. False on OOM.
static bool refill(int shift)
{
    uint64_t pa = pmm_alloc();
    if (!pa)
        return false;
    uint8_t *frame = P2V(pa);
    size_t size = (size_t)1 << shift;
    for (size_t off = 0; off < PAGE_SIZE; off += size) {
        struct header *h = (struct header *)(frame + off);
        h->magic = 0;
        h->shift = shift;
        h->next_free = free_blocks[shift - MIN_SHIFT];
        free_blocks[shift - MIN_SHIFT] = h;
    }
    return true;
}

void *kmalloc(size_t size)
{
    if (size == 0 || size > KMALLOC_MAX)
        return NULL;
    int shift = class_for(size);
    struct header **list = &free_blocks[shift - MIN_SHIFT];
    if (!*list && !refill(shift))
        return NULL;
    struct header *h = *list;
    *list = h->next_free;
    h->magic = HEADER_MAGIC;
    h->pad = 0;
    void *p = h + 1;
    memset(p, 0, ((size_t)1 << shift) - sizeof(struct header));
    return p;
}

void kfree(void *p)
{
    if (!p)
        return;
    struct header *h = (struct header *)p - 1;
    if (h->magic != HEADER_MAGIC || h->shift < MIN_SHIFT || h->shift > MAX_SHIFT)
        panic("kfree: 0x%lx is not a live heap block", (uint64_t)p);
    h->magic = 0;       // a second kfree of the same block panics above
    h->next_free = free_blocks[h->shift - MIN_SHIFT];
    free_blocks[h->shift - MIN_SHIFT] = h;
}
