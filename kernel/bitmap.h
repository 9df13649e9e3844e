#ifndef BITMAP_H
#define BITMAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// A bitmap of `nbits` bits stored in 64-bit words (bit i lives in word
// i / 64, bit i % 64). Future users: the physical page allocator and the
// activation-record pool.
#define BITMAP_WORDS(nbits) (((nbits) + 63) / 64)

void bitmap_set(uint64_t *map, size_t bit);
void bitmap_clear(uint64_t *map, size_t bit);
bool bitmap_test(const uint64_t *map, size_t bit);
void bitmap_set_range(uint64_t *map, size_t first, size_t count);
// Index of the first clear (or set) bit below nbits, or nbits if none.
size_t bitmap_find_zero(const uint64_t *map, size_t nbits);
size_t bitmap_find_set(const uint64_t *map, size_t nbits);
size_t bitmap_count(const uint64_t *map, size_t nbits);
#endif
