// Virtio over the legacy PCI transport (virtio 0.9.5, the I/O BAR of a
// transitional device) with one split virtqueue driven synchronously: one
// request in flight, completion found by polling the used ring. Enough for
// a block device whose only user runs at a quiet instant (the checkpoint).
// The device is treated as untrusted-ish: what it writes back (used index,
// id, length) is checked, and a wait is bounded.
#ifndef VIRTIO_H
#define VIRTIO_H
#include <stdbool.h>
#include <stdint.h>
#include "pci.h"

#define VIRTIO_VENDOR          0x1af4
#define VIRTQ_MAX_SIZE         1024     // refuse a bigger queue: 7 frames is plenty

// Legacy register block at the start of BAR0 (no MSI-X: config at 0x14).
#define VIRTIO_REG_HOST_FEATURES  0x00
#define VIRTIO_REG_GUEST_FEATURES 0x04
#define VIRTIO_REG_QUEUE_PFN      0x08
#define VIRTIO_REG_QUEUE_SIZE     0x0c
#define VIRTIO_REG_QUEUE_SELECT   0x0e
#define VIRTIO_REG_QUEUE_NOTIFY   0x10
#define VIRTIO_REG_STATUS         0x12
#define VIRTIO_REG_ISR            0x13
#define VIRTIO_REG_CONFIG         0x14

// One piece of a request: physical address, length, and who writes it.
struct virtio_seg {
    uint64_t pa;
    uint32_t len;
    bool device_writes;
};

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtio_dev {
    uint16_t io;                // I/O port base (BAR0)
    uint16_t qsize;             // descriptors in queue 0, as the device fixed it
    uint64_t ring_pa;           // physical base of the queue's frames
    unsigned ring_frames;
    struct virtq_desc *desc;
    volatile uint16_t *avail;   // flags, idx, ring[qsize]
    volatile uint16_t *used;    // flags, idx, then struct virtq_used_elem[qsize]
    uint16_t next_avail;        // our avail->idx
    uint16_t seen_used;         // the used->idx we have consumed up to
    bool broken;                // misbehaved or timed out: reset, never used again
    uint64_t polls;             // used-ring checks spent waiting, since setup
};

// Reset the device, acknowledge it, offer `wanted` of its features and
// set up queue 0. 0, or -ENODEV with the reason printed. `*features` gets
// the accepted set.
int virtio_setup(struct virtio_dev *v, const struct pci_dev *pci, uint32_t wanted,
                 uint32_t *features);
// Device-specific configuration (after the legacy header).
uint32_t virtio_config32(const struct virtio_dev *v, unsigned off);

// Run one request of `n` segments (n <= virtio_max_segs) and wait up to
// `timeout_ns` of guest time for it. 0 with `*written` = the length the
// device says it wrote; -EIO if the device misbehaved or timed out (the
// device is then reset and `broken`).
int virtio_run(struct virtio_dev *v, const struct virtio_seg *segs, unsigned n,
               uint64_t timeout_ns, uint32_t *written);
unsigned virtio_max_segs(const struct virtio_dev *v);
// Why a completion the device reports cannot be trusted (its used index
// moved by `moved`, it names element `e`, our chain let it write
// `writable` bytes), or NULL when it can. One request is ever in flight,
// and its chain always starts at descriptor 0.
const char *virtio_bad_answer(uint16_t moved, const struct virtq_used_elem *e, uint32_t writable);
#endif
