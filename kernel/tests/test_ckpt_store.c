// The checkpoint writer's allocator and buffers (kernel/ckpt_store.c): the
// shadow-paging rule that a new block is never one the committed
// checkpoint references, and byte buffers that span frames.
#include "ckpt_store.h"
#include "crc32c.h"
#include "kbd.h"
#include "ktest.h"
#include "string.h"

#define NBLOCKS 100

static void a_new_block_is_never_a_committed_one(struct ktest *t)
{
    struct blockmap committed, taken;
    KEXPECT_EQ(t, blockmap_init(&committed, NBLOCKS), 0);
    KEXPECT_EQ(t, blockmap_init(&taken, NBLOCKS), 0);
    for (uint64_t b = 3; b < NBLOCKS; b += 2)
        blockmap_set(&committed, b);        // the committed checkpoint holds every odd block
    int got = 0;
    for (uint64_t b; (b = blockmap_alloc(&taken, &committed, 3)) != 0; got++) {
        KEXPECT_FALSE(t, blockmap_test(&committed, b));
        KEXPECT_TRUE(t, b >= 3 && b < NBLOCKS);
    }
    KEXPECT_EQ(t, got, (NBLOCKS - 3) / 2);  // every even block from 4, each once
    blockmap_free(&committed);
    blockmap_free(&taken);
}

static void a_run_is_contiguous_and_free(struct ktest *t)
{
    struct blockmap committed, taken;
    KEXPECT_EQ(t, blockmap_init(&committed, NBLOCKS), 0);
    KEXPECT_EQ(t, blockmap_init(&taken, NBLOCKS), 0);
    blockmap_set(&committed, 10);
    blockmap_set(&taken, 5);
    uint64_t s = blockmap_alloc_run(&taken, &committed, 3, 6);
    KEXPECT_EQ(t, s, 11);                   // 3..4 too short, 6..9 too short, 11..16 fits
    for (uint64_t b = s; b < s + 6; b++)
        KEXPECT_TRUE(t, blockmap_test(&taken, b));
    KEXPECT_EQ(t, blockmap_alloc_run(&taken, &committed, 3, NBLOCKS), 0);    // never fits
    blockmap_free(&committed);
    blockmap_free(&taken);
}

static void a_buffer_spans_frames(struct ktest *t)
{
    // Kept for good: freeing its frame list would leave a kmalloc block
    // free that the pmm suite's exhaustion case does not expect.
    static struct pbuf b;
    if (!b.frames)
        KEXPECT_EQ(t, pbuf_init(&b), 0);
    pbuf_clear(&b);
    static uint8_t chunk[1000];
    uint32_t crc = 0;
    for (int i = 0; i < 10; i++) {          // 10,000 bytes: three frames
        memset(chunk, 'a' + i, sizeof(chunk));
        KEXPECT_EQ(t, pbuf_append(&b, chunk, sizeof(chunk)), 0);
        crc = crc32c_update(crc, chunk, sizeof(chunk));
    }
    KEXPECT_EQ(t, b.len, 10000);
    KEXPECT_EQ(t, pbuf_blocks(&b), 3);
    KEXPECT_EQ(t, pbuf_crc(&b), crc);
    uint8_t across[8];
    pbuf_read(&b, 4092, across, sizeof(across));    // a frame boundary in the middle
    KEXPECT_EQ(t, across[0], 'a' + 4);
    KEXPECT_EQ(t, across[7], 'a' + 4);
    KEXPECT_EQ(t, pbuf_pad8(&b), 0);
    KEXPECT_EQ(t, b.len % 8, 0);
}

static void only_f12_asks_for_a_checkpoint(struct ktest *t)
{
    KEXPECT_TRUE(t, kbd_is_checkpoint_key(0x58));
    KEXPECT_FALSE(t, kbd_is_checkpoint_key(0x58 | 0x80));  // its release
    KEXPECT_FALSE(t, kbd_is_checkpoint_key(0x1e));         // 'a'
    KEXPECT_FALSE(t, kbd_is_checkpoint_key(0xfa));         // the controller's ACK
}

KTEST_SUITE(ckpt_store,
            KTEST_CASE(a_new_block_is_never_a_committed_one),
            KTEST_CASE(a_run_is_contiguous_and_free),
            KTEST_CASE(a_buffer_spans_frames),
            KTEST_CASE(only_f12_asks_for_a_checkpoint));
