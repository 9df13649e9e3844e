// Storage helpers for the checkpoint writer: see ckpt_store.h.
//
// The page buffer exists because a manifest can be larger than the one page
// kmalloc gives, and the kernel has no allocator for contiguous frames; the
// manifest only has to be contiguous on the disk, where pbuf_write puts
// its frames one block after the other.
#include "abi.h"
#include "blk.h"
#include "checkpoint_format.h"
#include "ckpt_store.h"
#include "crc32c.h"
#include "kalloc.h"
#include "memlayout.h"
#include "pmm.h"
#include "string.h"

_Static_assert(PBUF_PAGES * sizeof(uint64_t) <= KMALLOC_MAX, "pbuf frame list fits kmalloc");
_Static_assert(CKPT_BLOCK == PAGE_SIZE, "a block is a page");

int pbuf_init(struct pbuf *b)
{
    b->frames = kmalloc(PBUF_PAGES * sizeof(uint64_t));
    b->nframes = 0;
    b->len = 0;
    return b->frames ? 0 : -ENOMEM;
}

void pbuf_clear(struct pbuf *b)
{
    b->len = 0;
}

void pbuf_free(struct pbuf *b)
{
    for (uint32_t i = 0; i < b->nframes; i++)
        pmm_free(b->frames[i]);
    kfree(b->frames);
    b->frames = NULL;
    b->nframes = 0;
    b->len = 0;
}

static uint8_t *pbuf_at(const struct pbuf *b, uint64_t off)
{
    return (uint8_t *)P2V(b->frames[off / PAGE_SIZE]) + off % PAGE_SIZE;
}

// memcpy (kernel/lib) goes a byte at a time; records and their shadow
// entries are copied for every page of every checkpoint, so eight bytes at
// a time here (what the rest do not fill, a byte at a time).
static void copy(void *dst, const void *src, uint64_t n)
{
    uint64_t words = n / 8, rest = n % 8;
    asm volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(words) : : "memory");
    asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(rest) : : "memory");
}

int pbuf_append(struct pbuf *b, const void *src, uint64_t n)
{
    const uint8_t *s = src;
    while (n) {
        uint64_t page = b->len / PAGE_SIZE;
        if (page >= PBUF_PAGES)
            return -E2BIG;
        if (page >= b->nframes) {
            uint64_t pa = pmm_alloc();
            if (!pa)
                return -ENOMEM;
            b->frames[b->nframes++] = pa;
        }
        uint64_t room = PAGE_SIZE - b->len % PAGE_SIZE, k = n < room ? n : room;
        copy(pbuf_at(b, b->len), s, k);
        b->len += k;
        s += k;
        n -= k;
    }
    return 0;
}

int pbuf_pad8(struct pbuf *b)
{
    static const uint8_t zeros[8];
    return pbuf_append(b, zeros, (8 - b->len % 8) % 8);
}

void pbuf_read(const struct pbuf *b, uint64_t off, void *dst, uint64_t n)
{
    uint8_t *d = dst;
    while (n) {
        uint64_t room = PAGE_SIZE - off % PAGE_SIZE, k = n < room ? n : room;
        copy(d, pbuf_at(b, off), k);
        d += k;
        off += k;
        n -= k;
    }
}

uint32_t pbuf_crc(const struct pbuf *b)
{
    uint32_t crc = 0;
    for (uint64_t off = 0; off < b->len; off += PAGE_SIZE) {
        uint64_t k = b->len - off < PAGE_SIZE ? b->len - off : PAGE_SIZE;
        crc = crc32c_update(crc, pbuf_at(b, off), k);
    }
    return crc;
}

void pbuf_swap(struct pbuf *a, struct pbuf *b)
{
    struct pbuf t = *a;
    *a = *b;
    *b = t;
}

uint64_t pbuf_blocks(const struct pbuf *b)
{
    return (b->len + PAGE_SIZE - 1) / PAGE_SIZE;
}

int pbuf_write(const struct pbuf *b, uint64_t block, struct stager *s)
{
    uint64_t n = pbuf_blocks(b);
    if (n && b->len % PAGE_SIZE)        // the tail of the last frame goes to disk: no stale bytes
        memset(pbuf_at(b, b->len), 0, PAGE_SIZE - b->len % PAGE_SIZE);
    for (uint64_t i = 0; i < n; i++) {
        int r = stager_add(s, block + i, P2V(b->frames[i]));
        if (r < 0)
            return r;
    }
    return stager_flush(s);
}

// ------------------------------------------------------------ block maps

#define BITS_PER_FRAME (PAGE_SIZE * 8)

int blockmap_init(struct blockmap *m, uint64_t nblocks)
{
    memset(m, 0, sizeof(*m));
    m->nblocks = nblocks < STORE_MAX_BLOCKS ? nblocks : STORE_MAX_BLOCKS;
    for (uint64_t i = 0; i * BITS_PER_FRAME < m->nblocks; i++) {
        uint64_t pa = pmm_alloc();
        if (!pa)
            return -ENOMEM;
        m->words[i] = P2V(pa);
    }
    return 0;
}

void blockmap_clear(struct blockmap *m)
{
    for (uint64_t i = 0; i * BITS_PER_FRAME < m->nblocks; i++)
        memset(m->words[i], 0, PAGE_SIZE);
    m->cursor = 0;
}

void blockmap_free(struct blockmap *m)
{
    for (int i = 0; i < 4; i++)
        if (m->words[i])
            pmm_free(V2P(m->words[i]));
    memset(m, 0, sizeof(*m));
}

static uint64_t *word_of(const struct blockmap *m, uint64_t block, uint64_t *bit)
{
    *bit = 1UL << (block % 64);
    return &m->words[block / BITS_PER_FRAME][(block % BITS_PER_FRAME) / 64];
}

void blockmap_set(struct blockmap *m, uint64_t block)
{
    uint64_t bit;
    if (block < m->nblocks)
        *word_of(m, block, &bit) |= bit;
}

bool blockmap_test(const struct blockmap *m, uint64_t block)
{
    uint64_t bit;
    return block < m->nblocks && (*word_of(m, block, &bit) & bit);
}

static bool block_free(const struct blockmap *taken, const struct blockmap *committed, uint64_t b)
{
    return !blockmap_test(taken, b) && !blockmap_test(committed, b);
}

uint64_t blockmap_alloc_run(struct blockmap *taken, const struct blockmap *committed,
                            uint64_t first, uint64_t n)
{
    uint64_t total = taken->nblocks, start = taken->cursor < first ? first : taken->cursor;
    // Two passes: from the cursor to the end, then from `first` (next fit).
    for (int pass = 0; pass < 2; pass++) {
        uint64_t run = 0;
        for (uint64_t b = start; b < total; b++) {
            run = block_free(taken, committed, b) ? run + 1 : 0;
            if (run == n) {
                uint64_t s = b + 1 - n;
                for (uint64_t k = s; k <= b; k++)
                    blockmap_set(taken, k);
                taken->cursor = b + 1;
                return s;
            }
        }
        start = first;
    }
    return 0;
}

uint64_t blockmap_alloc(struct blockmap *taken, const struct blockmap *committed, uint64_t first)
{
    return blockmap_alloc_run(taken, committed, first, 1);
}

void blockmap_swap(struct blockmap *a, struct blockmap *b)
{
    struct blockmap t = *a;
    *a = *b;
    *b = t;
}

// ------------------------------------------------------------ stager

int stager_init(struct stager *s)
{
    uint64_t pa = pmm_alloc_run(STAGE_PAGES);
    s->buf = pa ? P2V(pa) : NULL;
    s->n = 0;
    return pa ? 0 : -ENOMEM;
}

int stager_flush(struct stager *s)
{
    if (!s->n)
        return 0;
    int err = blk_write(s->first * CKPT_SECTORS_PER_BLOCK, s->buf, s->n * CKPT_SECTORS_PER_BLOCK);
    s->n = 0;
    return err;
}

int stager_add(struct stager *s, uint64_t block, const void *page)
{
    if (s->n && (s->n == STAGE_PAGES || block != s->first + s->n)) {
        int err = stager_flush(s);
        if (err)
            return err;
    }
    if (!s->n)
        s->first = block;
    copy(s->buf + (uint64_t)s->n * PAGE_SIZE, page, PAGE_SIZE);
    s->n++;
    return 0;
}

// ------------------------------------------------------------ disk

int store_read_block(uint64_t block, void *buf)
{
    return blk_read(block * CKPT_SECTORS_PER_BLOCK, (void *)buf, CKPT_SECTORS_PER_BLOCK);
}
