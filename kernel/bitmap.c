// Bitmaps over 64-bit words; the searches skip whole words at a time.
#include "bitmap.h"

void bitmap_set(uint64_t *map, size_t bit)
{
    map[bit / 64] |= 1ULL << (bit % 64);
}

void bitmap_clear(uint64_t *map, size_t bit)
{
    map[bit / 64] &= ~(1ULL << (bit % 64));
}

bool bitmap_test(const uint64_t *map, size_t bit)
{
    return (map[bit / 64] >> (bit % 64)) & 1;
}

void bitmap_set_range(uint64_t *map, size_t first, size_t count)
{
    for (size_t i = first; i < first + count; i++)
        bitmap_set(map, i);
}

// Search for the first bit equal to `want`; words that cannot contain one
// are skipped whole. Bits at or beyond nbits in the last word are ignored.
static size_t find_bit(const uint64_t *map, size_t nbits, bool want)
{
    for (size_t w = 0; w * 64 < nbits; w++) {
        uint64_t word = want ? map[w] : ~map[w];
        if (!word)
            continue;
        size_t bit = w * 64 + (size_t)__builtin_ctzll(word);
        return bit < nbits ? bit : nbits;
    }
    return nbits;
}

size_t bitmap_find_zero(const uint64_t *map, size_t nbits)
{
    return find_bit(map, nbits, false);
}

size_t bitmap_find_set(const uint64_t *map, size_t nbits)
{
    return find_bit(map, nbits, true);
}

// No popcnt instruction is assumed and libgcc is not linked, so count the
// classic way: clear the lowest set bit until none is left.
static size_t popcount(uint64_t word)
{
    size_t n = 0;
    for (; word; word &= word - 1)
        n++;
    return n;
}

size_t bitmap_count(const uint64_t *map, size_t nbits)
{
    size_t n = 0;
    for (size_t w = 0; w * 64 < nbits; w++) {
        uint64_t word = map[w];
        size_t left = nbits - w * 64;
        if (left < 64)
            word &= (1ULL << left) - 1;
        n += popcount(word);
    }
    return n;
}
