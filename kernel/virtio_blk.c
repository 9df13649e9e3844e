// The block device API (blk.h) on a virtio-blk disk (virtio.h).
//
// Each request is a chain: a 16-byte header the device reads, the data
// (one segment per physical page the buffer touches, since a kernel buffer
// in the direct map or the image is contiguous virtually but need not stay
// in one frame), and a status byte the device writes. Requests run one at
// a time and are waited for by polling: the kernel does not preempt kernel
// code and its only user (the checkpoint) runs at a quiet instant, so a
// queue depth of one costs little and needs no interrupt route.
#include "abi.h"
#include "blk.h"
#include "cmdline.h"
#include "memlayout.h"
#include "pmm.h"
#include "printf.h"
#include "virtio.h"

#define VIRTIO_BLK_DEVICE_LEGACY 0x1001     // transitional virtio-blk

#define VIRTIO_BLK_F_SIZE_MAX  (1u << 1)
#define VIRTIO_BLK_F_SEG_MAX   (1u << 2)
#define VIRTIO_BLK_F_RO        (1u << 5)
#define VIRTIO_BLK_F_FLUSH     (1u << 9)
#define BLK_WANTED_FEATURES    (VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | \
                                VIRTIO_BLK_F_RO | VIRTIO_BLK_F_FLUSH)

#define CFG_CAPACITY  0x00      // u64, in 512-byte sectors
#define CFG_SIZE_MAX  0x08      // u32, bytes per segment
#define CFG_SEG_MAX   0x0c      // u32, segments per request

#define VIRTIO_BLK_T_IN     0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_S_OK     0
#define STATUS_UNWRITTEN    0xff    // not a status the device may give

// A request's data is at most this many pages' worth, so it fits in
// REQ_MAX_PAGES + 1 segments however the buffer is aligned.
#define REQ_MAX_PAGES   32
#define REQ_MAX_SEGS    (REQ_MAX_PAGES + 1 + 2)    // data, header, status
#define NS_PER_MS       1000000UL

struct blk_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static struct {
    bool present;
    struct virtio_dev vdev;
    uint32_t features;
    uint64_t sectors;
    uint32_t max_sectors;           // per request
    struct blk_header *header;      // in `dma_page`, with the status byte
    volatile uint8_t *status;
    uint64_t dma_pa;
    uint64_t requests;
    // `blk_timeout=` (default 10 s): generous for a host under load, where a
    // flush of a qcow2 on a busy disk can take seconds; a device that never
    // answers must still not hang the kernel.
    uint64_t timeout_ns;
} disk;

bool blk_present(void)
{
    return disk.present && !disk.vdev.broken;
}

uint64_t blk_sectors(void)
{
    return disk.present ? disk.sectors : 0;
}

bool blk_can_flush(void)
{
    return blk_present() && (disk.features & VIRTIO_BLK_F_FLUSH);
}

void blk_get_stats(struct blk_stats *out)
{
    out->requests = disk.requests;
    out->polls = disk.vdev.polls;
}

// Segments per request the device accepts, within what we ever build.
static unsigned usable_segs(void)
{
    unsigned segs = virtio_max_segs(&disk.vdev);
    if (disk.features & VIRTIO_BLK_F_SEG_MAX) {
        uint32_t dev = virtio_config32(&disk.vdev, CFG_SEG_MAX) + 2;    // + header, status
        if (dev < segs)
            segs = dev;
    }
    return segs < REQ_MAX_SEGS ? segs : REQ_MAX_SEGS;
}

static bool size_max_fits(void)
{
    return !(disk.features & VIRTIO_BLK_F_SIZE_MAX) ||
           virtio_config32(&disk.vdev, CFG_SIZE_MAX) >= PAGE_SIZE;
}

static void print_found(void)
{
    uint64_t mib = disk.sectors / (1024 * 1024 / BLK_SECTOR);
    kprintf("blk: virtio-blk %lu MiB, %s%s\n", mib,
            disk.features & VIRTIO_BLK_F_FLUSH ? "flush" : "no flush: writes are not durable",
            disk.features & VIRTIO_BLK_F_RO ? ", read-only" : "");
}

static int refuse(const char *why, unsigned long detail)
{
    kprintf("blk: virtio-blk refused: %s (%lu)\n", why, detail);
    return -ENODEV;
}

int blk_init(void)
{
    struct pci_dev pci;
    if (!pci_find(VIRTIO_VENDOR, VIRTIO_BLK_DEVICE_LEGACY, &pci)) {
        kprintf("blk: none\n");
        return -ENODEV;
    }
    if (virtio_setup(&disk.vdev, &pci, BLK_WANTED_FEATURES, &disk.features))
        return refuse("transport setup failed", 0);
    unsigned segs = usable_segs();
    if (segs < 4)                               // a sector may span two pages
        return refuse("segments per request", segs);
    if (!size_max_fits())
        return refuse("segment size below a page", virtio_config32(&disk.vdev, CFG_SIZE_MAX));
    disk.dma_pa = pmm_alloc();
    if (!disk.dma_pa)
        return refuse("no frame for request headers", 0);
    disk.header = P2V(disk.dma_pa);
    disk.status = (volatile uint8_t *)P2V(disk.dma_pa) + sizeof(struct blk_header);
    // segs - 2 data segments hold (segs - 3) whole pages at any alignment.
    disk.max_sectors = (segs - 3) * (PAGE_SIZE / BLK_SECTOR);
    disk.sectors = virtio_config32(&disk.vdev, CFG_CAPACITY) |
                   (uint64_t)virtio_config32(&disk.vdev, CFG_CAPACITY + 4) << 32;
    disk.timeout_ns = cmdline_ulong("blk_timeout") * NS_PER_MS;
    disk.present = true;
    print_found();
    return 0;
}

// The physical address of a kernel buffer, or 0 when the driver will not
// hand it to the device: it must lie whole in the direct map or in the
// kernel image, and a read (the device writes) must not land in the
// image's code or read-only data.
static uint64_t buffer_pa(const void *buf, uint64_t len, bool device_writes)
{
    uint64_t va = (uint64_t)buf;
    if (va + len < va)
        return 0;
    if (va >= DIRECT_MAP && va + len <= DIRECT_MAP + DIRECT_MAP_SIZE)
        return V2P(va);
    uint64_t lo = device_writes ? (uint64_t)__data_start : (uint64_t)__kernel_start;
    if (va >= lo && va + len <= (uint64_t)__kernel_end)
        return KV2P(va);
    return 0;
}

// Cut [pa, pa + len) at page boundaries into segs[]; the count used.
static unsigned add_data_segs(struct virtio_seg *segs, uint64_t pa, uint64_t len, bool device_writes)
{
    unsigned n = 0;
    while (len) {
        uint64_t chunk = PAGE_SIZE - (pa & (PAGE_SIZE - 1));
        if (chunk > len)
            chunk = len;
        segs[n++] = (struct virtio_seg){ pa, (uint32_t)chunk, device_writes };
        pa += chunk;
        len -= chunk;
    }
    return n;
}

static int status_to_errno(uint8_t status)
{
    if (status == VIRTIO_BLK_S_OK)
        return 0;
    kprintf("blk: request failed with device status %u\n", status);
    return -EIO;
}

// One request: header, the data at `pa` (may be none), status.
static int request(uint32_t type, uint64_t sector, uint64_t pa, uint32_t bytes)
{
    bool device_writes = type == VIRTIO_BLK_T_IN;
    struct virtio_seg segs[REQ_MAX_SEGS];
    *disk.header = (struct blk_header){ .type = type, .sector = sector };
    *disk.status = STATUS_UNWRITTEN;
    segs[0] = (struct virtio_seg){ disk.dma_pa, sizeof(struct blk_header), false };
    unsigned n = 1 + add_data_segs(segs + 1, pa, bytes, device_writes);
    segs[n++] = (struct virtio_seg){ disk.dma_pa + sizeof(struct blk_header), 1, true };
    uint32_t written = 0;
    int err = virtio_run(&disk.vdev, segs, n, disk.timeout_ns, &written);
    if (err)
        return err;
    disk.requests++;
    // A read must report its data and the status byte as written; anything
    // else must at least have written the status.
    uint32_t expect = device_writes ? bytes + 1 : 1;
    if (written != expect) {
        kprintf("blk: device wrote %u bytes of a %u-byte answer\n", written, expect);
        return -EIO;
    }
    return status_to_errno(*disk.status);
}

// -ENODEV without a disk, -EIO once the device was disabled (virtio.c).
static int usable(void)
{
    if (!disk.present)
        return -ENODEV;
    return disk.vdev.broken ? -EIO : 0;
}

static int check_range(uint64_t sector, uint32_t count)
{
    int err = usable();
    if (err)
        return err;
    if (sector > disk.sectors || count > disk.sectors - sector)
        return -EINVAL;
    return 0;
}

// A transfer of any length: requests of at most max_sectors each.
static int transfer(uint32_t type, uint64_t sector, const void *buf, uint32_t count)
{
    int err = check_range(sector, count);
    if (err)
        return err;
    if (count == 0)
        return 0;
    uint64_t bytes = (uint64_t)count * BLK_SECTOR;
    uint64_t pa = buffer_pa(buf, bytes, type == VIRTIO_BLK_T_IN);
    if (!pa)
        return -EINVAL;
    if (type == VIRTIO_BLK_T_OUT && (disk.features & VIRTIO_BLK_F_RO))
        return -EIO;
    while (count) {
        uint32_t n = count < disk.max_sectors ? count : disk.max_sectors;
        err = request(type, sector, pa, n * BLK_SECTOR);
        if (err)
            return err;
        sector += n;
        pa += (uint64_t)n * BLK_SECTOR;
        count -= n;
    }
    return 0;
}

int blk_read(uint64_t sector, void *buf, uint32_t count)
{
    return transfer(VIRTIO_BLK_T_IN, sector, buf, count);
}

int blk_write(uint64_t sector, const void *buf, uint32_t count)
{
    return transfer(VIRTIO_BLK_T_OUT, sector, buf, count);
}

int blk_flush(void)
{
    int err = usable();
    if (err)
        return err;
    if (!(disk.features & VIRTIO_BLK_F_FLUSH))
        return -EIO;
    return request(VIRTIO_BLK_T_FLUSH, 0, 0, 0);
}
