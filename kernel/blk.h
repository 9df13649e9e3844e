// The block device: one virtio-blk disk, synchronous and polled
// (virtio_blk.c, docs/persistence.md "Disk"). Its only user is the
// checkpoint code, so the API is small and kernel-only.
#ifndef BLK_H
#define BLK_H
#include <stdbool.h>
#include <stdint.h>

#define BLK_SECTOR 512

// Probe at boot; 0 when a disk is there, -ENODEV when none (or when the
// device misbehaved during setup: it is then not used at all).
int blk_init(void);
// A disk is there and usable: false without one, and from the moment the
// device misbehaves or times out (it is then reset and every call after
// that fails with -EIO).
bool blk_present(void);
// Capacity in 512-byte sectors (0 without a disk).
uint64_t blk_sectors(void);
// Kernel buffers (direct map or kernel image), any count: split inside
// into requests; buffers may cross page boundaries. 0, or a negative
// errno: -ENODEV (no disk), -EINVAL (range past the capacity, a buffer
// the kernel cannot translate), -EIO (the device failed or timed out).
int blk_read(uint64_t sector, void *buf, uint32_t count);
int blk_write(uint64_t sector, const void *buf, uint32_t count);
// Everything written before is on stable storage once this returns 0.
// -EIO when the device offers no flush (VIRTIO_BLK_F_FLUSH): the driver
// never claims a durability it cannot get.
int blk_flush(void);
// The device offers flush (what blk_flush needs to succeed).
bool blk_can_flush(void);

// Counters since boot, for measurements (KTAP lines, bench).
struct blk_stats {
    uint64_t requests;      // requests completed (reads, writes, flushes)
    uint64_t polls;         // used-ring checks while waiting for them
};
void blk_get_stats(struct blk_stats *out);
#endif
