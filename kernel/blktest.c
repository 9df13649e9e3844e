// blktest=write|verify|write_hold|unflushed_hold: persistence of the disk
// itself across boots, and across a kill of QEMU with or without a flush.
#include "blk.h"
#include "blktest.h"
#include "printf.h"
#include "string.h"
#include "x86.h"

#define PATTERN_MAGIC 0x5245564e414e5421UL     // "REVNANT!"
#define GOLDEN        0x9e3779b97f4a7c15UL
#define WORDS         (BLK_SECTOR / 8)
#define CHUNK         64                       // sectors per transfer here

// Off by 8 bytes from any page boundary, so every transfer crosses pages
// unaligned: the segment split is always exercised.
static uint64_t chunk_buf[CHUNK * WORDS + 1] __attribute__((aligned(4096)));

uint64_t blktest_word(uint64_t sector, unsigned i)
{
    return (sector * WORDS + i) * GOLDEN ^ PATTERN_MAGIC;
}

uint64_t blk_test_area(void)
{
    uint64_t n = blk_sectors();
    return n >= BLK_TEST_AREA ? n - BLK_TEST_AREA : 0;
}

static void fill(uint64_t *buf, uint64_t first, unsigned count)
{
    for (unsigned s = 0; s < count; s++)
        for (unsigned i = 0; i < WORDS; i++)
            buf[s * WORDS + i] = blktest_word(first + s, i);
}

// The first word that differs from the pattern; -1 when none does.
static long mismatch(const uint64_t *buf, uint64_t first, unsigned count)
{
    for (unsigned s = 0; s < count; s++)
        for (unsigned i = 0; i < WORDS; i++)
            if (buf[s * WORDS + i] != blktest_word(first + s, i))
                return (long)(s * WORDS + i);
    return -1;
}

static bool write_pattern(uint64_t first, bool flush)
{
    uint64_t *buf = chunk_buf + 1;
    for (unsigned done = 0; done < BLKTEST_SECTORS; done += CHUNK) {
        fill(buf, first + done, CHUNK);
        int err = blk_write(first + done, buf, CHUNK);
        if (err) {
            kprintf("blktest: write at sector %lu failed (%d)\n", first + done, err);
            return false;
        }
    }
    int err = flush ? blk_flush() : 0;
    if (err) {
        kprintf("blktest: flush failed (%d)\n", err);
        return false;
    }
    kprintf("blktest: wrote %u sectors at %lu, %s\n", BLKTEST_SECTORS, first,
            flush ? "flushed" : "not flushed");
    return true;
}

// The *_hold modes: the host kills QEMU now, as a power cut would, and
// reads the image to see what a flush (or its absence) left on disk.
static void __attribute__((noreturn)) hold(void)
{
    kprintf("blktest: holding until killed\n");
    for (;;)
        sti_hlt();
}

static bool verify_pattern(uint64_t first)
{
    uint64_t *buf = chunk_buf + 1;
    for (unsigned done = 0; done < BLKTEST_SECTORS; done += CHUNK) {
        memset(buf, 0, CHUNK * BLK_SECTOR);
        int err = blk_read(first + done, buf, CHUNK);
        if (err) {
            kprintf("blktest: read at sector %lu failed (%d)\n", first + done, err);
            return false;
        }
        long bad = mismatch(buf, first + done, CHUNK);
        if (bad >= 0) {
            uint64_t sector = first + done + (uint64_t)bad / WORDS;
            kprintf("blktest: sector %lu word %lu is 0x%016lx, expected 0x%016lx\n", sector,
                    (uint64_t)bad % WORDS, buf[bad], blktest_word(sector, (unsigned)(bad % WORDS)));
            return false;
        }
    }
    kprintf("blktest: verified %u sectors at %lu\n", BLKTEST_SECTORS, first);
    return true;
}

bool blktest_run(const char *mode)
{
    if (!blk_present()) {
        kprintf("blktest: no disk\n");
        return false;
    }
    if (blk_sectors() < BLK_TEST_AREA) {
        kprintf("blktest: disk of %lu sectors is smaller than the test area\n", blk_sectors());
        return false;
    }
    uint64_t first = blk_sectors() - BLKTEST_SECTORS;
    if (strcmp(mode, "verify") == 0)
        return verify_pattern(first);
    bool flush = strcmp(mode, "unflushed_hold") != 0;
    bool ok = write_pattern(first, flush);
    if (ok && strcmp(mode, "write") != 0)
        hold();
    return ok;
}
