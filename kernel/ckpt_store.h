// The checkpoint writer's storage helpers (checkpoint.c): growable byte
// buffers made of separate frames (the kernel has no contiguous allocator
// beyond a page), the two block bitmaps of the shadow-paging allocator, and
// whole-block disk I/O.
#ifndef CKPT_STORE_H
#define CKPT_STORE_H
#include <stdbool.h>
#include <stdint.h>

// A byte buffer of up to PBUF_PAGES frames. Not zeroed beyond len.
#define PBUF_PAGES 500                  // the page list fits one kmalloc block
struct pbuf {
    uint64_t *frames;                   // physical addresses, PBUF_PAGES of them
    uint32_t nframes;
    uint64_t len;
};
int pbuf_init(struct pbuf *b);          // 0 or -ENOMEM
void pbuf_clear(struct pbuf *b);        // len 0, frames kept for reuse
void pbuf_free(struct pbuf *b);
int pbuf_append(struct pbuf *b, const void *src, uint64_t n);   // 0, -ENOMEM, -E2BIG
int pbuf_pad8(struct pbuf *b);
void pbuf_read(const struct pbuf *b, uint64_t off, void *dst, uint64_t n);
uint32_t pbuf_crc(const struct pbuf *b);
void pbuf_swap(struct pbuf *a, struct pbuf *b);
struct stager;
// Write the buffer's blocks to the disk from `block` on (its last block
// zero-padded), through the stager (see below). 0 or -errno.
int pbuf_write(const struct pbuf *b, uint64_t block, struct stager *s);
uint64_t pbuf_blocks(const struct pbuf *b);

// The shadow-paging allocator: `committed` marks every block the newest
// committed checkpoint references, `taken` the blocks the checkpoint being
// written uses (new or shared). A new block is one in neither.
#define STORE_MAX_BLOCKS (4UL * 4096 * 8 * 8)   // 4 frames per bitmap: 1 GiB of disk used at most
struct blockmap {
    uint64_t *words[4];
    uint64_t nblocks;                   // usable blocks: min(disk, STORE_MAX_BLOCKS)
    uint64_t cursor;                    // next-fit search start
};
int blockmap_init(struct blockmap *m, uint64_t nblocks);        // 0 or -ENOMEM
void blockmap_clear(struct blockmap *m);
void blockmap_free(struct blockmap *m);
void blockmap_set(struct blockmap *m, uint64_t block);           // ignores blocks past the end
bool blockmap_test(const struct blockmap *m, uint64_t block);
// A block (>= first) free in both maps, marked in `taken`; 0 if none.
uint64_t blockmap_alloc(struct blockmap *taken, const struct blockmap *committed, uint64_t first);
// n contiguous such blocks: the first, or 0.
uint64_t blockmap_alloc_run(struct blockmap *taken, const struct blockmap *committed,
                            uint64_t first, uint64_t n);
void blockmap_swap(struct blockmap *a, struct blockmap *b);

// Changed pages on their way to the disk: copied into one physically
// contiguous run of frames while their blocks follow each other, and
// written as one request when the run is full or the next block does not
// follow (a request costs far more than the bytes in it, docs/persistence.md).
#define STAGE_PAGES 32
struct stager {
    uint8_t *buf;               // STAGE_PAGES frames, contiguous
    uint64_t first;             // block of buf's first page
    uint32_t n;                 // pages in buf
};
int stager_init(struct stager *s);                              // 0 or -ENOMEM
int stager_add(struct stager *s, uint64_t block, const void *page);    // 0 or -errno
int stager_flush(struct stager *s);

// Read a whole block (blk.h). 0 or -errno.
int store_read_block(uint64_t block, void *buf);
#endif
