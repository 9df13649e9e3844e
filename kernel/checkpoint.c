// Checkpoints: when they are taken and the order in which one reaches the
// disk (docs/persistence.md, "Commit protocol"). What goes into one is
// ckpt_capture.c; the format is checkpoint_format.h.
//
// Triggers: `checkpoint_every=MS` (guest time), the checkpoint() system
// call, the host (a key on the PS/2 keyboard, kbd.c: QMP send-key), and a
// writer whose output does not fit the held buffer (outcommit.c). Each is
// acted on at a safe point: a tick from user mode (trap.c), the scheduler
// loop (sched.c), or inside the checkpoint() call, where the caller's
// frame is complete too (its result is put in rax before the capture, so
// the saved thread resumes as if the call had just returned).
//
// The write sequence, each step numbered for `checkpoint_cut=STEP`, which
// powers the machine off right after that step (exit status 37):
//   1 changed pages written      (during the capture)
//   2 manifest written
//   3 flush                      everything the header will name is durable
//   4 header written             into the slot the newest checkpoint is not in
//   5 flush                      committed
//   6 held output released       (the UART)
//   7 release mark written and flushed
#include "abi.h"
#include "blk.h"
#include "checkpoint.h"
#include "checkpoint_format.h"
#include "ckpt_capture.h"
#include "ckpt_store.h"
#include "cmdline.h"
#include "console.h"
#include "crc32c.h"
#include "env.h"
#include "memlayout.h"
#include "outcommit.h"
#include "power.h"
#include "printf.h"
#include "sched.h"
#include "string.h"
#include "timer.h"
#include "vm.h"
#include "x86.h"

static struct {
    bool ready;                 // a disk, buffers allocated
    bool scanned;               // the slots on disk read since boot
    uint64_t generation;        // the newest committed (or found on the disk)
    uint64_t disk_blocks;
    bool force_full;            // the next one writes every page
    uint64_t full_every;        // checkpoint_full=N
    uint64_t every_ms, next_ms; // checkpoint_every=MS
    uint64_t cut_step, cut_after;
    bool cut_armed;             // this checkpoint is the one checkpoint_cut cuts
    uint64_t taken;             // committed this boot
    bool adopted;               // this boot restored one of the disk's checkpoints
    uint64_t quota;             // page_quota=N
    volatile bool requested;
    const char *why;            // the request's reason, for the line
    struct pbuf man, shadow, prev_shadow;
    struct blockmap committed, taken_map;
    struct stager stager;
} ck;

static uint8_t sector[CKPT_BLOCK] __attribute__((aligned(CKPT_BLOCK)));

static int buffers_init(void)
{
    int err = pbuf_init(&ck.man);
    err = err ? err : pbuf_init(&ck.shadow);
    err = err ? err : pbuf_init(&ck.prev_shadow);
    err = err ? err : stager_init(&ck.stager);
    err = err ? err : blockmap_init(&ck.committed, ck.disk_blocks);
    return err ? err : blockmap_init(&ck.taken_map, ck.disk_blocks);
}

void checkpoint_init(void)
{
    ck.every_ms = cmdline_has("checkpoint_every") ? cmdline_ulong("checkpoint_every") : 0;
    ck.full_every = cmdline_ulong("checkpoint_full");
    ck.quota = cmdline_ulong("page_quota");
    ck.cut_step = cmdline_has("checkpoint_cut") ? cmdline_ulong("checkpoint_cut") : 0;
    ck.cut_after = cmdline_ulong("checkpoint_cut_after");
    ck.next_ms = timer_ms() + ck.every_ms;
    ck.disk_blocks = blk_present() ? blk_sectors() / CKPT_SECTORS_PER_BLOCK : 0;
    if (ck.disk_blocks <= CKPT_FIRST_DATA_BLOCK) {
        if (ck.every_ms || ck.cut_step)
            kprintf("checkpoint: off: no disk\n");
    } else if (buffers_init() < 0) {
        kprintf("checkpoint: off: out of memory\n");
    } else {
        ck.ready = true;
        ck.force_full = true;
        if (ck.every_ms)
            kprintf("checkpoint: every %lu ms, a full one every %lu\n", ck.every_ms, ck.full_every);
    }
    outcommit_init(ck.ready, ck.every_ms != 0);
}

bool checkpoint_enabled(void)
{
    return ck.ready;
}

void checkpoint_request(const char *why)
{
    if (!ck.ready)
        return;
    ck.why = why;
    ck.requested = true;
}

bool checkpoint_due(void)
{
    return ck.ready && (ck.requested || (ck.every_ms && timer_ms() >= ck.next_ms));
}

void checkpoint_adopt(uint64_t generation)
{
    if (generation > ck.generation)
        ck.generation = generation;
    ck.scanned = false;         // re-read what the disk holds before the next write
    ck.force_full = true;
    ck.adopted = true;
}

// ------------------------------------------------------------ the disk as found

// A slot's header, if its own checks hold (magic, version, size, CRC,
// generation in the right slot). The disk is untrusted input.
static bool read_header(int slot, struct ckpt_header *h)
{
    if (store_read_block((uint64_t)slot, sector) < 0)
        return false;
    memcpy(h, sector, sizeof(*h));
    uint32_t crc = h->header_crc;
    h->header_crc = 0;
    bool ok = h->magic == CKPT_MAGIC && h->version == CKPT_VERSION && h->header_size == sizeof(*h) &&
              h->block_size == CKPT_BLOCK && crc32c(h, sizeof(*h)) == crc &&
              h->generation % CKPT_SLOTS == (uint64_t)slot && h->generation != 0;
    h->header_crc = crc;
    return ok;
}

// Mark every block a checkpoint on the disk references, if its manifest is
// intact: the first write of this boot must spare it (it may be the one a
// later boot restores). Every number is checked before it is used.
static void protect_checkpoint(const struct ckpt_header *h)
{
    uint64_t mblocks = (h->manifest_bytes + CKPT_BLOCK - 1) / CKPT_BLOCK;
    if (mblocks > PBUF_PAGES || h->manifest_block < CKPT_FIRST_DATA_BLOCK ||
        h->manifest_block >= ck.disk_blocks || mblocks > ck.disk_blocks - h->manifest_block)
        return;
    pbuf_clear(&ck.man);
    for (uint64_t i = 0; i < mblocks; i++) {
        if (store_read_block(h->manifest_block + i, sector) < 0)
            return;
        uint64_t n = h->manifest_bytes - i * CKPT_BLOCK;
        if (pbuf_append(&ck.man, sector, n < CKPT_BLOCK ? n : CKPT_BLOCK) < 0)
            return;
    }
    const struct ckpt_section_desc *s = &h->section[CKPT_SEC_PAGE];
    if (pbuf_crc(&ck.man) != h->manifest_crc || s->record_size != sizeof(struct ckpt_page) ||
        s->offset > h->manifest_bytes || (uint64_t)s->count * sizeof(struct ckpt_page) > h->manifest_bytes - s->offset)
        return;
    for (uint64_t b = 0; b < mblocks; b++)
        blockmap_set(&ck.committed, h->manifest_block + b);
    for (uint32_t i = 0; i < s->count; i++) {
        struct ckpt_page p;
        pbuf_read(&ck.man, s->offset + i * sizeof(p), &p, sizeof(p));
        blockmap_set(&ck.committed, p.block);   // out of range: ignored
    }
}

static void scan_disk(void)
{
    blockmap_clear(&ck.committed);
    for (int slot = 0; slot < CKPT_SLOTS; slot++) {
        struct ckpt_header h;
        if (!read_header(slot, &h))
            continue;
        if (h.generation > ck.generation)
            ck.generation = h.generation;
        protect_checkpoint(&h);
    }
    pbuf_clear(&ck.prev_shadow);        // nothing known of their frames: the next one is full
    ck.force_full = true;
    ck.scanned = true;
}

// ------------------------------------------------------------ writing

static void cut_point(int step)
{
    static const char *const what[] = { "", "pages written", "manifest written", "data flushed",
                                        "header written", "header flushed (committed)",
                                        "output released", "release mark written" };
    if (ck.cut_armed && ck.cut_step == (uint64_t)step) {
        kprintf("checkpoint: cut after step %d (%s)\n", step, what[step]);
        power_cut();
    }
}

static int write_header(const struct ckpt_header *h)
{
    memset(sector, 0, CKPT_SECTOR);
    memcpy(sector, h, sizeof(*h));
    return blk_write((h->generation % CKPT_SLOTS) * CKPT_SECTORS_PER_BLOCK, sector, 1);
}

// Step 7, and the restore's too once it has shown held output again: 0 or -errno.
int checkpoint_write_release_mark(uint64_t generation, uint64_t released_seq)
{
    struct ckpt_release m = { .magic = CKPT_RELEASE_MAGIC, .version = CKPT_VERSION,
                              .generation = generation, .released_seq = released_seq };
    m.crc = crc32c(&m, offsetof(struct ckpt_release, crc));
    memset(sector, 0, CKPT_SECTOR);
    memcpy(sector, &m, sizeof(m));
    int err = blk_write(CKPT_RELEASE_BLOCK * CKPT_SECTORS_PER_BLOCK, sector, 1);
    return err ? err : blk_flush();
}

static void fill_header(struct ckpt_header *h, const struct capture *c, uint64_t manifest_block, uint64_t t0)
{
    h->magic = CKPT_MAGIC;
    h->version = CKPT_VERSION;
    h->header_size = sizeof(*h);
    h->block_size = CKPT_BLOCK;
    h->generation = c->generation;
    h->disk_blocks = ck.committed.nblocks;
    h->clock_ns = t0;
    h->manifest_block = manifest_block;
    h->manifest_bytes = ck.man.len;
    h->manifest_crc = pbuf_crc(&ck.man);
    h->flags = (c->full ? CKPT_FULL : 0) | (outcommit_on() ? CKPT_OUTCOMMIT : 0);
    h->pages_total = c->pages;
    h->pages_written = c->written;
    h->next_env_id = env_next_id();
    console_checkpoint(&h->console_holder, &h->console_give_next, &h->console_ring_va,
                       &h->console_ring_size, &h->console_head);
    h->output_seq = outcommit_seq();
    h->capture_ns = timer_ns() - t0;
    h->header_crc = 0;
    h->header_crc = crc32c(h, sizeof(*h));
}

// Steps 1-5: capture and write everything, then the header that commits.
static int write_checkpoint(struct capture *c, uint64_t t0)
{
    int err = capture_build(c);                                 // step 1 inside
    cut_point(1);
    err = err ? err : capture_section_begin(c, CKPT_SEC_OUTPUT);
    err = err ? err : outcommit_save(&ck.man);
    capture_section_end(c, CKPT_SEC_OUTPUT, 1);
    if (err)
        return err;
    uint64_t mblock = blockmap_alloc_run(&ck.taken_map, &ck.committed, CKPT_FIRST_DATA_BLOCK,
                                         pbuf_blocks(&ck.man));
    if (!mblock)
        return -ENOSPC;
    if ((err = pbuf_write(&ck.man, mblock, &ck.stager)) < 0)
        return err;
    cut_point(2);
    if ((err = blk_flush()) < 0)
        return err;
    cut_point(3);
    fill_header(c->h, c, mblock, t0);
    if ((err = write_header(c->h)) < 0)
        return err;
    cut_point(4);
    if ((err = blk_flush()) < 0)
        return err;
    cut_point(5);
    return 0;
}

// After the commit: this checkpoint's blocks are the ones to spare now,
// its shadow list the one the next compares against.
static void committed(const struct capture *c)
{
    ck.generation = c->generation;
    blockmap_swap(&ck.committed, &ck.taken_map);
    pbuf_swap(&ck.shadow, &ck.prev_shadow);
    ck.force_full = false;
    ck.taken++;
}

// Step 6 and 7: what the committed checkpoint holds as output is shown now.
static void release_output(uint64_t generation)
{
    uint64_t n = outcommit_held();
    if (!n)
        return;
    outcommit_release(n);
    cut_point(6);
    if (checkpoint_write_release_mark(generation, outcommit_seq()) < 0)
        kprintf("checkpoint %lu: release mark not written: a restore may print its output again\n",
                generation);
    cut_point(7);
}

static void print_line(const struct capture *c, uint64_t ns, const char *why)
{
    uint64_t us = ns / 1000;
    kprintf("checkpoint %lu: generation %lu, %u envs, %u pages (%u dirty), %lu KiB written, "
            "%lu.%03lu ms%s; by %s\n", ck.taken, c->generation, c->envs, c->pages, c->written,
            (c->written + pbuf_blocks(&ck.man)) * (CKPT_BLOCK / 1024), us / 1000, us % 1000,
            c->full ? ", full" : "", why);
}

static const char *consume_trigger(void)
{
    const char *why = ck.requested ? ck.why : "timer";
    ck.requested = false;
    return why ? why : "request";
}

// The next periodic one is a full period after this one *ended*: a disk
// slower than the period must not leave the programs one tick between
// checkpoints (a late period is not made up for).
static void schedule_next(void)
{
    if (ck.every_ms)
        ck.next_ms = timer_ms() + ck.every_ms;
}

static int take(const char *why)
{
    uint64_t t0 = timer_ns();
    if (!ck.scanned)
        scan_disk();
    ck.cut_armed = ck.cut_step && ck.taken == ck.cut_after;
    sched_sync_user_state();
    static struct ckpt_header h;
    memset(&h, 0, sizeof(h));
    pbuf_clear(&ck.man);
    pbuf_clear(&ck.shadow);
    blockmap_clear(&ck.taken_map);
    ck.stager.n = 0;            // nothing left over from a failed write
    uint64_t gen = ck.generation + 1;
    struct capture c = {
        .generation = gen, .full = ck.force_full || gen % ck.full_every == 0,
        .man = &ck.man, .shadow = &ck.shadow, .prev = &ck.prev_shadow,
        .taken = &ck.taken_map, .committed = &ck.committed, .stager = &ck.stager, .h = &h,
    };
    int err = write_checkpoint(&c, t0);
    // Dirty bits were cleared during the capture: no TLB entry may keep
    // claiming a page is dirty (the CPU would not set the bit again).
    write_cr3(read_cr3());
    if (err) {
        // Nothing committed; the dirty bits are gone, so the next one is full.
        ck.force_full = true;
        kprintf("checkpoint: generation %lu failed (%d); held output released uncommitted\n", gen, err);
        outcommit_release(outcommit_held());
        return err;
    }
    committed(&c);
    print_line(&c, timer_ns() - t0, why);
    release_output(gen);
    return 0;
}

int checkpoint_run(void)
{
    const char *why = consume_trigger();
    if (!ck.ready)
        return -ENODEV;
    int err = take(why);
    schedule_next();
    return err;
}

static int count_own_page(uint64_t va, uint64_t *pte, void *arg)
{
    if (!(*pte & PTE_SHARED) && !(va >= ACT_RESTORE && va < ACT_SEGMENT + ACT_SEGMENT_SIZE))
        (*(uint64_t *)arg)++;
    return 0;
}

long checkpoint_quota_check(uint64_t *pml4, uint64_t len)
{
    if (!ck.ready)
        return 0;
    uint64_t pages = 0, more = (len + CKPT_BLOCK - 1) / CKPT_BLOCK;
    vm_walk_user(pml4, count_own_page, &pages);
    return more > ck.quota || pages + more > ck.quota ? -ENOSPC : 0;
}

// The system is ending cleanly (power.c): one last checkpoint of what is
// left, usually no environment at all, so that the next boot of this disk
// does not go back to an older checkpoint and do the run's tail a second
// time, printing its lines again (a checkpoint with nothing running restores
// as a clean boot: restore.c). Only when this system's checkpoints are on
// the disk: a boot that neither took nor restored one leaves the disk as it
// found it (a snapshot disk, a blktest disk).
void checkpoint_at_poweroff(void)
{
    if (!ck.ready || (ck.taken == 0 && !ck.adopted))
        return;
    const char *final = cmdline_get("checkpoint_final");
    if (final && !strcmp(final, "off"))
        return;
    take("poweroff");
}

long sys_checkpoint(void)
{
    if (!ck.ready)
        return -ENODEV;
    if (!ck.scanned)
        scan_disk();
    // The saved frame must say what the call returns: the generation it
    // commits (if it fails, the frame is never used).
    sched_current()->tf.rax = ck.generation + 1;
    checkpoint_request("syscall");
    int err = checkpoint_run();
    return err ? err : (long)ck.generation;
}
