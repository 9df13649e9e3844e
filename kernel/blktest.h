// The disk's test area and `blktest=write|verify` (cmdline_keys.h): data
// written by one boot and checked by the next, and by the host, which
// reads the same pattern out of the qcow2 (tests/test_blk.py).
//
// The last BLK_TEST_AREA sectors (4 MiB) of a disk belong to the tests:
// the KTAP suite `blk` writes only there, `blktest` the last
// BLKTEST_SECTORS of it. Everything else on the disk is never touched by
// a test, so a checkpoint disk survives `test`.
#ifndef BLKTEST_H
#define BLKTEST_H
#include <stdbool.h>
#include <stdint.h>

#define BLK_TEST_AREA   8192    // sectors at the end of the disk
#define BLKTEST_SECTORS 256     // the blktest pattern: the last 128 KiB

// The pattern's 64-bit word `i` (0..63) of sector `sector`: a different
// value for every word of the disk, so a misplaced sector shows.
uint64_t blktest_word(uint64_t sector, unsigned i);
// The first sector of the test area; 0 when the disk is smaller than it.
uint64_t blk_test_area(void);
// "write": write the pattern and flush; "verify": read it back and compare;
// "write_hold" / "unflushed_hold": write it with / without the flush, then
// wait forever for the host to kill QEMU. Prints one line saying what it
// found; true when all went right.
bool blktest_run(const char *mode);
#endif
