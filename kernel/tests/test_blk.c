// The virtio-blk driver against a real disk (tests/test_blk.py boots this
// suite with a fresh qcow2). Every case writes only inside the disk's test
// area (blktest.h) and skips, saying why, when the machine has no disk.
#include "abi.h"
#include "blk.h"
#include "blktest.h"
#include "ktest.h"
#include "memlayout.h"
#include "pmm.h"
#include "printf.h"
#include "timer.h"
#include "virtio.h"

#define NO_DISK "no disk: boot with a virtio-blk disk (tests/test_blk.py)"
#define RUN_FRAMES 64           // 256 KiB of contiguous frames per buffer

static uint8_t image_buf[3 * BLK_SECTOR];      // a buffer in the kernel image (.bss)

static void fill_bytes(uint8_t *p, uint64_t n, uint32_t seed)
{
    for (uint64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static bool same(const uint8_t *a, const uint8_t *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static void free_run(uint64_t pa)
{
    for (unsigned i = 0; i < RUN_FRAMES; i++)
        pmm_free(pa + (uint64_t)i * PAGE_SIZE);
}

static void disk_is_there_with_flush(struct ktest *t)
{
    if (!blk_present())
        KTEST_SKIP(t, NO_DISK);
    KEXPECT_TRUE(t, blk_sectors() >= BLK_TEST_AREA);
    KEXPECT_TRUE(t, blk_can_flush());
    KEXPECT_EQ(t, blk_test_area(), blk_sectors() - BLK_TEST_AREA);
}

// 9 sectors from 3000 bytes into a page: the data crosses two page
// boundaries on the way out, and lands 1000 bytes further on the way back.
static void round_trip_across_page_boundaries(struct ktest *t)
{
    if (!blk_present())
        KTEST_SKIP(t, NO_DISK);
    uint64_t out = pmm_alloc_run(4), in = pmm_alloc_run(4);
    KEXPECT_TRUE(t, out && in);
    if (!out || !in)
        return;
    uint8_t *src = (uint8_t *)P2V(out) + 3000, *dst = (uint8_t *)P2V(in) + 4000;
    uint64_t sector = blk_test_area() + 17;
    fill_bytes(src, 9 * BLK_SECTOR, 1);
    KEXPECT_EQ(t, blk_write(sector, src, 9), 0);
    KEXPECT_EQ(t, blk_read(sector, dst, 9), 0);
    KEXPECT_TRUE(t, same(src, dst, 9 * BLK_SECTOR));
    // The same sectors read into the kernel image, one sector in.
    KEXPECT_EQ(t, blk_read(sector + 1, image_buf, 3), 0);
    KEXPECT_TRUE(t, same(src + BLK_SECTOR, image_buf, 3 * BLK_SECTOR));
    for (int i = 0; i < 4; i++) {
        pmm_free(out + (uint64_t)i * PAGE_SIZE);
        pmm_free(in + (uint64_t)i * PAGE_SIZE);
    }
}

// 500 sectors from an unaligned address: more than one request (a request
// carries at most 256), and the sectors on either side stay as they were.
static void large_transfer_spans_requests(struct ktest *t)
{
    if (!blk_present())
        KTEST_SKIP(t, NO_DISK);
    uint64_t out = pmm_alloc_run(RUN_FRAMES), in = pmm_alloc_run(RUN_FRAMES);
    KEXPECT_TRUE(t, out && in);
    if (!out || !in)
        return;
    const uint32_t count = 500;
    uint8_t *src = (uint8_t *)P2V(out) + 8, *dst = (uint8_t *)P2V(in) + 24;
    uint64_t sector = blk_test_area() + 100;
    uint8_t guard[2][BLK_SECTOR];
    fill_bytes(src, (count + 2) * BLK_SECTOR, 2);
    KEXPECT_EQ(t, blk_write(sector - 1, src, count + 2), 0);    // guards and body
    KEXPECT_EQ(t, blk_read(sector - 1, guard[0], 1), 0);
    KEXPECT_EQ(t, blk_read(sector + count, guard[1], 1), 0);
    fill_bytes(src, count * BLK_SECTOR, 3);
    struct blk_stats before, after;
    blk_get_stats(&before);
    KEXPECT_EQ(t, blk_write(sector, src, count), 0);
    blk_get_stats(&after);
    KEXPECT_TRUE(t, after.requests - before.requests >= 2);
    KEXPECT_EQ(t, blk_read(sector, dst, count), 0);
    KEXPECT_TRUE(t, same(src, dst, count * BLK_SECTOR));
    KEXPECT_EQ(t, blk_read(sector - 1, dst, 1), 0);
    KEXPECT_TRUE(t, same(guard[0], dst, BLK_SECTOR));
    KEXPECT_EQ(t, blk_read(sector + count, dst, 1), 0);
    KEXPECT_TRUE(t, same(guard[1], dst, BLK_SECTOR));
    free_run(out);
    free_run(in);
}

// Ranges past the capacity, wrapping ranges and buffers the device must
// not see are refused before anything reaches the disk.
static void bad_ranges_and_buffers_are_refused(struct ktest *t)
{
    if (!blk_present())
        KTEST_SKIP(t, NO_DISK);
    uint64_t n = blk_sectors();
    uint64_t pa = pmm_alloc();
    uint8_t *buf = P2V(pa), *last = (uint8_t *)P2V(pa) + 2048;
    KEXPECT_EQ(t, blk_read(n - 1, last, 1), 0);
    fill_bytes(buf, 2 * BLK_SECTOR, 4);
    KEXPECT_EQ(t, blk_read(n, buf, 1), -EINVAL);
    KEXPECT_EQ(t, blk_write(n - 1, buf, 2), -EINVAL);
    KEXPECT_EQ(t, blk_write(~0UL, buf, 1), -EINVAL);
    KEXPECT_EQ(t, blk_write(~0UL - 1, buf, 4), -EINVAL);       // sector + count wraps
    KEXPECT_EQ(t, blk_read(n + 1, buf, 0), -EINVAL);
    KEXPECT_EQ(t, blk_read(n, buf, 0), 0);
    KEXPECT_EQ(t, blk_write(n - 1, (void *)USER_BASE, 1), -EINVAL);      // user memory
    KEXPECT_EQ(t, blk_read(n - 1, (void *)0, 1), -EINVAL);
    KEXPECT_EQ(t, blk_read(n - 1, __text_start, 1), -EINVAL);           // over kernel code
    KEXPECT_EQ(t, blk_read(n - 1, __rodata_start, 1), -EINVAL);
    KEXPECT_EQ(t, blk_read(n - 1, (uint8_t *)P2V(DIRECT_MAP_SIZE) - 256, 1), -EINVAL);
    KEXPECT_EQ(t, blk_read(n - 1, buf, 1), 0);                  // the last sector is unchanged
    KEXPECT_TRUE(t, same(buf, last, BLK_SECTOR));
    pmm_free(pa);
}

static void flush_completes(struct ktest *t)
{
    if (!blk_present())
        KTEST_SKIP(t, NO_DISK);
    struct blk_stats before, after;
    blk_get_stats(&before);
    KEXPECT_EQ(t, blk_flush(), 0);
    blk_get_stats(&after);
    KEXPECT_EQ(t, after.requests - before.requests, 1);
}

// Sequential writes over the test area, 256 KiB at a time, then a flush:
// the figures docs/persistence.md quotes. Under -icount shift=0 guest ns
// are guest instructions.
static void sequential_write_cost(struct ktest *t)
{
    if (!blk_present())
        KTEST_SKIP(t, NO_DISK);
    uint64_t pa = pmm_alloc_run(RUN_FRAMES);
    KEXPECT_TRUE(t, pa != 0);
    if (!pa)
        return;
    const uint32_t chunk = RUN_FRAMES * PAGE_SIZE / BLK_SECTOR;
    const uint32_t chunks = (BLK_TEST_AREA - BLKTEST_SECTORS) / chunk;
    fill_bytes(P2V(pa), (uint64_t)chunk * BLK_SECTOR, 5);
    struct blk_stats s0, s1, s2;
    blk_get_stats(&s0);
    uint64_t t0 = timer_ns();
    for (uint32_t i = 0; i < chunks; i++)
        KEXPECT_EQ(t, blk_write(blk_test_area() + (uint64_t)i * chunk, P2V(pa), chunk), 0);
    uint64_t t1 = timer_ns();
    blk_get_stats(&s1);
    KEXPECT_EQ(t, blk_flush(), 0);
    uint64_t t2 = timer_ns();
    blk_get_stats(&s2);
    uint64_t kib = (uint64_t)chunks * chunk / 2, reqs = s1.requests - s0.requests;
    uint64_t ns = t1 - t0 ? t1 - t0 : 1;
    KEXPECT_TRUE(t, reqs >= chunks);
    kprintf("    # blk: sequential write %lu KiB in %lu ns: %lu KiB/s, %lu requests, %lu ns and "
            "%lu polls per request\n", kib, ns, kib * 1000000000UL / ns, reqs, ns / (reqs ? reqs : 1),
            (s1.polls - s0.polls) / (reqs ? reqs : 1));
    kprintf("    # blk: flush %lu ns, %lu polls\n", t2 - t1, s2.polls - s1.polls);
    // Small requests: what one costs when there is almost no data to move.
    const unsigned small = 64;
    uint64_t t3 = timer_ns();
    for (unsigned i = 0; i < small; i++)
        KEXPECT_EQ(t, blk_write(blk_test_area() + i, P2V(pa), 1), 0);
    uint64_t t4 = timer_ns();
    blk_get_stats(&s1);
    kprintf("    # blk: %u one-sector writes, %lu ns and %lu polls per request\n", small,
            (t4 - t3) / small, (s1.polls - s2.polls) / small);
    free_run(pa);
}


// What the device writes back is checked before the driver believes it
// (virtio.c); QEMU never lies, so the judgement is tested on its own.
static void a_lying_device_is_caught(struct ktest *t)
{
    struct virtq_used_elem honest = { .id = 0, .len = 513 };
    KEXPECT_TRUE(t, virtio_bad_answer(1, &honest, 513) == NULL);
    KEXPECT_TRUE(t, virtio_bad_answer(1, &honest, 600) == NULL);
    KEXPECT_TRUE(t, virtio_bad_answer(2, &honest, 513) != NULL);        // two completions for one
    KEXPECT_TRUE(t, virtio_bad_answer(0xffff, &honest, 513) != NULL);   // index went backwards
    struct virtq_used_elem stranger = { .id = 7, .len = 1 };
    KEXPECT_TRUE(t, virtio_bad_answer(1, &stranger, 513) != NULL);
    struct virtq_used_elem overlong = { .id = 0, .len = 514 };
    KEXPECT_TRUE(t, virtio_bad_answer(1, &overlong, 513) != NULL);
}

KTEST_SUITE(blk,
            KTEST_CASE(disk_is_there_with_flush),
            KTEST_CASE(round_trip_across_page_boundaries),
            KTEST_CASE(large_transfer_spans_requests),
            KTEST_CASE(bad_ranges_and_buffers_are_refused),
            KTEST_CASE(flush_completes),
            KTEST_CASE(sequential_write_cost),
            KTEST_CASE(a_lying_device_is_caught));
