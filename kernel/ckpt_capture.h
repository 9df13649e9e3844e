// Capture: the manifest of one checkpoint built from the live system, and
// the pages that changed written to fresh blocks (ckpt_capture.c). Only
// checkpoint.c calls it, at a safe point, interrupts off.
#ifndef CKPT_CAPTURE_H
#define CKPT_CAPTURE_H
#include <stdbool.h>
#include <stdint.h>
#include "checkpoint_format.h"
#include "ckpt_store.h"

// What the writer remembers of each saved page between checkpoints (kernel
// memory only, never on disk): its identity, the frame that held it, and
// where its contents are. A page is written again unless its entry's frame
// is still mapped at the same place and its dirty bit is clear.
struct shadow_page {
    uint64_t key;               // owner kind << 48 | env id or region serial
    uint64_t va;                // user address, or offset in the region
    uint64_t frame;
    uint64_t block;
    uint64_t generation;
    uint32_t crc;
    uint32_t reserved;
};

struct capture {
    // In:
    uint64_t generation;
    bool full;                  // write every page
    struct pbuf *man;           // emptied; receives the manifest's sections
    struct pbuf *shadow;        // emptied; receives this checkpoint's shadow list
    const struct pbuf *prev;    // the committed checkpoint's shadow list (sorted), or empty
    struct blockmap *taken;     // blocks this checkpoint uses
    struct stager *stager;      // changed pages go to the disk through it
    const struct blockmap *committed;
    struct ckpt_header *h;      // sections[] and the counts are filled in
    // Out:
    uint32_t envs, pages, written;
    // Internal: the merge cursor over prev.
    uint64_t prev_index, prev_count;
};

// Build every section but the output (the caller appends it) and write each
// changed page to a block of its own. 0 or -errno (-ENOMEM, -E2BIG: the
// manifest outgrew its buffer, -ENOSPC: the disk is full, -EIO).
int capture_build(struct capture *c);
// Start / end a section: its offset is the manifest's current length.
int capture_section_begin(struct capture *c, int type);
void capture_section_end(struct capture *c, int type, uint32_t record_size);
#endif
