#include "bitmap.h"
#include "ktest.h"

static void set_test_clear(struct ktest *t)
{
    uint64_t map[BITMAP_WORDS(130)] = { 0 };
    bitmap_set(map, 0);
    bitmap_set(map, 63);
    bitmap_set(map, 64);
    bitmap_set(map, 129);
    KEXPECT_TRUE(t, bitmap_test(map, 0));
    KEXPECT_TRUE(t, bitmap_test(map, 63));
    KEXPECT_TRUE(t, bitmap_test(map, 64));
    KEXPECT_TRUE(t, bitmap_test(map, 129));
    KEXPECT_FALSE(t, bitmap_test(map, 1));
    KEXPECT_FALSE(t, bitmap_test(map, 128));
    KEXPECT_EQ(t, map[0], 0x8000000000000001ULL);
    bitmap_clear(map, 63);
    KEXPECT_FALSE(t, bitmap_test(map, 63));
    KEXPECT_EQ(t, bitmap_count(map, 130), 3);
}

static void find_zero(struct ktest *t)
{
    uint64_t map[BITMAP_WORDS(200)] = { 0 };
    KEXPECT_EQ(t, bitmap_find_zero(map, 200), 0);
    bitmap_set_range(map, 0, 130);
    KEXPECT_EQ(t, bitmap_find_zero(map, 200), 130);
    bitmap_clear(map, 70);
    KEXPECT_EQ(t, bitmap_find_zero(map, 200), 70);
}

static void find_zero_full(struct ktest *t)
{
    uint64_t map[BITMAP_WORDS(70)] = { 0 };
    bitmap_set_range(map, 0, 70);
    // Bits 70..127 of the last word are clear but out of range.
    KEXPECT_EQ(t, bitmap_find_zero(map, 70), 70);
    KEXPECT_EQ(t, bitmap_count(map, 70), 70);
}

static void find_set(struct ktest *t)
{
    uint64_t map[BITMAP_WORDS(256)] = { 0 };
    KEXPECT_EQ(t, bitmap_find_set(map, 256), 256);
    bitmap_set(map, 200);
    KEXPECT_EQ(t, bitmap_find_set(map, 256), 200);
    KEXPECT_EQ(t, bitmap_find_set(map, 150), 150);  // beyond the limit
}

KTEST_SUITE(bitmap,
            KTEST_CASE(set_test_clear),
            KTEST_CASE(find_zero),
            KTEST_CASE(find_zero_full),
            KTEST_CASE(find_set));
