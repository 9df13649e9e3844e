// Legacy virtio-pci transport and a polled split virtqueue (virtio.h).
//
// Legacy, not modern, because QEMU's `pc` machine offers every virtio-pci
// device as transitional: the legacy interface is a handful of I/O ports
// in BAR0, with no capability list to walk and no MMIO BAR to map. Its one
// constraint is that the queue is one physically contiguous area whose
// size the device fixes (256 descriptors for virtio-blk: 3 frames).
#include <stddef.h>
#include "abi.h"
#include "memlayout.h"
#include "pmm.h"
#include "printf.h"
#include "timer.h"
#include "virtio.h"
#include "x86.h"

#define STATUS_ACK       1
#define STATUS_DRIVER    2
#define STATUS_DRIVER_OK 4
#define STATUS_FAILED    128

#define VIRTQ_DESC_F_NEXT   1
#define VIRTQ_DESC_F_WRITE  2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1   // we poll: the device need not raise INTx
#define LEGACY_QUEUE_ALIGN  4096

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) & ~(a - 1);
}

// Where the used ring starts in the legacy layout: descriptors, then the
// available ring, then the used ring on the next 4 KiB boundary.
static uint64_t used_offset(uint16_t qsize)
{
    return align_up(16UL * qsize + 2 * (3UL + qsize), LEGACY_QUEUE_ALIGN);
}

static uint64_t ring_bytes(uint16_t qsize)
{
    return used_offset(qsize) + 2 * 3UL + 8UL * qsize;
}

static void set_status(const struct virtio_dev *v, uint8_t status)
{
    outb(v->io + VIRTIO_REG_STATUS, status);
}

static int give_up(const struct virtio_dev *v, const char *why, unsigned long detail)
{
    kprintf("virtio: device at io 0x%x refused: %s (%lu)\n", v->io, why, detail);
    set_status(v, STATUS_FAILED);
    return -ENODEV;
}

static int setup_queue(struct virtio_dev *v)
{
    outw(v->io + VIRTIO_REG_QUEUE_SELECT, 0);
    uint16_t qsize = inw(v->io + VIRTIO_REG_QUEUE_SIZE);
    if (qsize < 3 || qsize > VIRTQ_MAX_SIZE || (qsize & (qsize - 1)))
        return give_up(v, "queue size", qsize);
    unsigned frames = (unsigned)(align_up(ring_bytes(qsize), PAGE_SIZE) / PAGE_SIZE);
    uint64_t pa = pmm_alloc_run(frames);
    if (!pa)
        return give_up(v, "no contiguous frames for the queue", frames);
    v->qsize = qsize;
    v->ring_pa = pa;
    v->ring_frames = frames;
    v->desc = P2V(pa);
    v->avail = (volatile uint16_t *)((char *)P2V(pa) + 16UL * qsize);
    v->used = (volatile uint16_t *)((char *)P2V(pa) + used_offset(qsize));
    v->avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
    outl(v->io + VIRTIO_REG_QUEUE_PFN, (uint32_t)(pa / PAGE_SIZE));
    return 0;
}

int virtio_setup(struct virtio_dev *v, const struct pci_dev *pci, uint32_t wanted,
                 uint32_t *features)
{
    uint16_t io = pci_io_bar(pci, 0);
    if (!io) {
        kprintf("virtio: device %x:%x.%x has no I/O BAR0\n", pci->bus, pci->dev, pci->fn);
        return -ENODEV;
    }
    *v = (struct virtio_dev){ .io = io };
    pci_write16(pci, PCI_CFG_COMMAND,
                pci_read16(pci, PCI_CFG_COMMAND) | PCI_CMD_IO | PCI_CMD_MASTER);
    set_status(v, 0);                           // reset: forget any earlier driver
    set_status(v, STATUS_ACK);
    set_status(v, STATUS_ACK | STATUS_DRIVER);
    *features = inl(io + VIRTIO_REG_HOST_FEATURES) & wanted;
    outl(io + VIRTIO_REG_GUEST_FEATURES, *features);
    int err = setup_queue(v);
    if (err)
        return err;
    set_status(v, STATUS_ACK | STATUS_DRIVER | STATUS_DRIVER_OK);
    return 0;
}

uint32_t virtio_config32(const struct virtio_dev *v, unsigned off)
{
    return inl((uint16_t)(v->io + VIRTIO_REG_CONFIG + off));
}

unsigned virtio_max_segs(const struct virtio_dev *v)
{
    return v->qsize;
}

// Stop the device for good: a reset makes a legacy device drop its queue,
// so a request it still holds can no longer write into our memory.
static int disable(struct virtio_dev *v, const char *why, unsigned long detail)
{
    kprintf("virtio: device at io 0x%x disabled: %s (%lu)\n", v->io, why, detail);
    set_status(v, 0);
    v->broken = true;
    return -EIO;
}

// Chain the segments as descriptors 0..n-1 (one request in flight, so the
// chain always starts at 0) and make it available.
static void publish(struct virtio_dev *v, const struct virtio_seg *segs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        v->desc[i] = (struct virtq_desc){
            .addr = segs[i].pa,
            .len = segs[i].len,
            .flags = (uint16_t)((segs[i].device_writes ? VIRTQ_DESC_F_WRITE : 0) |
                                (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
            .next = (uint16_t)(i + 1 < n ? i + 1 : 0),
        };
    }
    v->avail[2 + v->next_avail % v->qsize] = 0;
    // The descriptors and the ring slot must be visible before the index
    // that hands them over; x86 keeps stores in order, the compiler must too.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    v->next_avail++;
    v->avail[1] = v->next_avail;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    outw(v->io + VIRTIO_REG_QUEUE_NOTIFY, 0);
}

// Poll the used index until it moves or `timeout_ns` of guest time passed.
static bool wait_used(struct virtio_dev *v, uint64_t timeout_ns)
{
    uint64_t deadline = timer_ns() + timeout_ns;
    for (;;) {
        v->polls++;
        if (v->used[1] != v->seen_used)
            return true;
        if (timer_ns() > deadline)
            return false;
        cpu_relax();
    }
}

static uint32_t writable_bytes(const struct virtio_seg *segs, unsigned n)
{
    uint32_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        if (segs[i].device_writes)
            sum += segs[i].len;
    return sum;
}

const char *virtio_bad_answer(uint16_t moved, const struct virtq_used_elem *e, uint32_t writable)
{
    if (moved != 1)
        return "used index moved by other than one request";
    if (e->id != 0)
        return "used element names a chain we never made";
    if (e->len > writable)
        return "used length beyond the writable buffers";
    return NULL;
}

int virtio_run(struct virtio_dev *v, const struct virtio_seg *segs, unsigned n,
               uint64_t timeout_ns, uint32_t *written)
{
    if (v->broken)
        return -EIO;
    if (n == 0 || n > v->qsize)
        return -EINVAL;
    publish(v, segs, n);
    if (!wait_used(v, timeout_ns))
        return disable(v, "no completion within the timeout, ms", timeout_ns / 1000000);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);    // read the element after the index
    uint16_t moved = (uint16_t)(v->used[1] - v->seen_used);
    const volatile struct virtq_used_elem *elems =
        (const volatile struct virtq_used_elem *)(v->used + 2);
    struct virtq_used_elem e = { elems[v->seen_used % v->qsize].id,
                                 elems[v->seen_used % v->qsize].len };
    const char *bad = virtio_bad_answer(moved, &e, writable_bytes(segs, n));
    if (bad)
        return disable(v, bad, moved != 1 ? moved : e.id != 0 ? e.id : e.len);
    v->seen_used++;
    *written = e.len;
    return 0;
}
