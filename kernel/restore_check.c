// What a restore accepts from a checkpoint (docs/persistence.md,
// "Restore"). The disk is hostile input: it may have been cut short, bit
// flipped, edited by hand, or written by a kernel with other limits. Every
// number below is judged on a copy in kernel memory, before it sizes,
// indexes or addresses anything, and judged against what the kernel itself
// could have produced: a record that no running kernel could have saved is
// refused, even where using it would do no harm, so that an edited disk
// fails loudly instead of restoring something odd.
#include <stddef.h>
#include "abi.h"
#include "crc32c.h"
#include "env.h"
#include "gdt.h"
#include "memlayout.h"
#include "restore_check.h"
#include "sched.h"
#include "string.h"

#define RFLAGS_ALWAYS1 (1UL << 1)
#define RFLAGS_TF (1UL << 8)
#define RFLAGS_AC (1UL << 18)
// What a program can leave in RFLAGS at CPL 3: the arithmetic flags, DF,
// TF, AC and ID (popf sets them all), with IF set; never IOPL, NT, RF, VM.
#define RFLAGS_PROGRAM (0x8d5UL | (1UL << 10) | RFLAGS_TF | RFLAGS_AC | (1UL << 21) | \
                        RFLAGS_IF | RFLAGS_ALWAYS1)
#define FXSAVE_MXCSR 24

struct check {
    bool bad;
    const char *field;
    uint64_t value;
};

static const char *first_bad(const struct check *c, unsigned n, uint64_t *value)
{
    for (unsigned i = 0; i < n; i++) {
        if (c[i].bad) {
            *value = c[i].value;
            return c[i].field;
        }
    }
    return NULL;
}
#define FIRST_BAD(checks, value) first_bad(checks, sizeof(checks) / sizeof(checks[0]), value)

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static uint64_t blocks_of(uint64_t bytes)
{
    return (bytes + CKPT_BLOCK - 1) / CKPT_BLOCK;
}

static uint32_t header_crc(const struct ckpt_header *h)
{
    struct ckpt_header copy = *h;
    copy.header_crc = 0;
    return crc32c(&copy, sizeof(copy));
}

const char *ckpt_check_header(const struct ckpt_header *h, int slot, uint64_t disk_blocks,
                              uint64_t *value)
{
    // Identity and integrity first: a header that is not one, or not
    // intact, says nothing else worth naming.
    struct check ident[] = {
        { h->magic != CKPT_MAGIC, "magic", h->magic },
        { h->header_size != sizeof(*h), "header_size", h->header_size },
        { h->header_crc != header_crc(h), "header_crc", h->header_crc },
        { h->version != CKPT_VERSION, "version", h->version },
        { h->block_size != CKPT_BLOCK, "block_size", h->block_size },
    };
    const char *bad = FIRST_BAD(ident, value);
    if (bad)
        return bad;
    uint64_t mblocks = blocks_of(h->manifest_bytes);
    struct check c[] = {
        { h->generation == 0 || h->generation % CKPT_SLOTS != (uint64_t)slot, "generation",
          h->generation },
        { h->disk_blocks <= CKPT_FIRST_DATA_BLOCK || h->disk_blocks > disk_blocks, "disk_blocks",
          h->disk_blocks },
        { h->clock_ns > RESTORE_CLOCK_MAX, "clock_ns", h->clock_ns },
        { h->manifest_block < CKPT_FIRST_DATA_BLOCK || h->manifest_block >= h->disk_blocks,
          "manifest_block", h->manifest_block },
        { h->manifest_bytes == 0 || h->manifest_bytes > RESTORE_MANIFEST_MAX ||
          mblocks > h->disk_blocks - h->manifest_block, "manifest_bytes", h->manifest_bytes },
        { h->flags & ~(CKPT_FULL | CKPT_OUTCOMMIT), "flags", h->flags },
        { h->pages_written > h->pages_total, "pages_written", h->pages_written },
        { h->next_env_id <= 0 || h->next_env_id == INT32_MAX, "next_env_id",
          (uint64_t)(int64_t)h->next_env_id },
        { h->console_holder < 0 || h->console_holder >= h->next_env_id, "console_holder",
          (uint64_t)(int64_t)h->console_holder },
        { h->console_give_next > 1, "console_give_next", h->console_give_next },
        { (h->console_ring_va == 0) != (h->console_ring_size == 0), "console_ring",
          h->console_ring_va },
        { h->reserved0 || h->reserved1 || !all_zero(h->reserved, sizeof(h->reserved)), "reserved",
          0 },
    };
    return FIRST_BAD(c, value);
}

// What each section's records are, and how many a kernel could have.
static const struct {
    uint32_t size;
    uint64_t max;
} section_kind[CKPT_SECTIONS] = {
    [CKPT_SEC_ENV] = { sizeof(struct ckpt_env), ENV_MAX },
    [CKPT_SEC_THREAD] = { sizeof(struct ckpt_thread), ENV_MAX * ENV_MAX_VPROCS },
    [CKPT_SEC_ACTSLOT] = { sizeof(struct ckpt_act_slot), (uint64_t)ENV_MAX * ACT_POOL_MAX },
    [CKPT_SEC_SHM] = { sizeof(struct ckpt_shm), ENV_MAX * SHM_REGIONS_MAX },
    [CKPT_SEC_SHMHOLD] = { sizeof(struct ckpt_shm_hold), ENV_MAX * SHM_REGIONS_MAX },
    [CKPT_SEC_PAGE] = { sizeof(struct ckpt_page), UINT32_MAX },
    [CKPT_SEC_OUTPUT] = { 1, RESTORE_OUTPUT_MAX },
};

static const char *const section_name[CKPT_SECTIONS] = {
    "section[env]", "section[thread]", "section[actslot]", "section[shm]",
    "section[shmhold]", "section[page]", "section[output]",
};

const char *ckpt_check_sections(const struct ckpt_header *h, uint64_t *value)
{
    for (unsigned i = 0; i < CKPT_SECTIONS; i++) {
        const struct ckpt_section_desc *s = &h->section[i];
        // count and record_size are 32 bits: their product cannot overflow.
        struct check c[] = {
            { s->type != i, "type", s->type },
            { s->record_size != section_kind[i].size, "record_size", s->record_size },
            { s->count > section_kind[i].max, "count", s->count },
            { s->reserved != 0, "reserved", s->reserved },
            { s->bytes != (uint64_t)s->count * s->record_size, "bytes", s->bytes },
            { s->offset % 8 || s->offset > h->manifest_bytes ||
              s->bytes > h->manifest_bytes - s->offset, "offset", s->offset },
            { i == CKPT_SEC_PAGE && s->count != h->pages_total, "count", s->count },
        };
        if (FIRST_BAD(c, value))
            return section_name[i];
    }
    return NULL;
}

static bool selector_ok(uint16_t sel)
{
    // Null (any RPL), or a user segment: what a program can load at CPL 3,
    // and so what seg_load may load at CPL 0 without a fault.
    return (sel & ~3) == 0 || sel == USER_DS || sel == USER_CS;
}

const char *ckpt_check_thread(const struct ckpt_thread *t, uint32_t mxcsr_mask, uint64_t *value)
{
    uint32_t mxcsr;
    memcpy(&mxcsr, t->fpu + FXSAVE_MXCSR, sizeof(mxcsr));
    uint32_t known = CKPT_THR_BLOCKED | CKPT_THR_ACT_DISABLED | CKPT_THR_RESTART_PENDING |
                     CKPT_THR_WAKE_PENDING | CKPT_THR_ACT_IDLE;
    struct check c[] = {
        { t->frame_kind < CKPT_FRAME_SYSCALL || t->frame_kind > CKPT_FRAME_INTERRUPT,
          "frame_kind", t->frame_kind },
        { t->flags & ~known, "flags", t->flags },
        { t->act_resuming < -1 || t->act_resuming >= (int64_t)ACT_POOL_MAX, "act_resuming",
          (uint64_t)(int64_t)t->act_resuming },
        { t->cs != USER_CS, "cs", t->cs },
        { t->ss != USER_DS, "ss", t->ss },
        { !(t->rflags & RFLAGS_IF) || (t->rflags & ~RFLAGS_PROGRAM), "rflags", t->rflags },
        // Below the user limit: canonical, never the kernel half, and never
        // the one address sysret must not return to (CVE-2012-0217).
        { t->rip >= USER_LIMIT, "rip", t->rip },
        { t->rsp >= USER_LIMIT, "rsp", t->rsp },
        { !selector_ok(t->seg[0]), "ds", t->seg[0] },
        { !selector_ok(t->seg[1]), "es", t->seg[1] },
        { !selector_ok(t->seg[2]), "fs", t->seg[2] },
        { !selector_ok(t->seg[3]), "gs", t->seg[3] },
        // fxrstor faults (#GP, in the kernel) on an MXCSR bit the CPU lacks.
        { mxcsr & ~mxcsr_mask, "mxcsr", mxcsr },
    };
    return FIRST_BAD(c, value);
}

const char *ckpt_check_page(const struct ckpt_page *p, const struct ckpt_header *h,
                            uint64_t *value)
{
    uint32_t prot = p->prot;
    struct check c[] = {
        { p->owner_kind != CKPT_OWNER_ENV && p->owner_kind != CKPT_OWNER_SHM, "owner_kind",
          p->owner_kind },
        { p->va % PAGE_SIZE, "va", p->va },
        // Readable, and never writable and executable at once (W^X, as elf.c).
        { !(prot & PROT_READ) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) ||
          ((prot & PROT_WRITE) && (prot & PROT_EXEC)), "prot", prot },
        { p->flags & ~(CKPT_PAGE_WRITTEN | CKPT_PAGE_ACT), "flags", p->flags },
        { p->block < CKPT_FIRST_DATA_BLOCK || p->block >= h->disk_blocks, "block", p->block },
        { p->generation == 0 || p->generation > h->generation, "generation", p->generation },
        { p->reserved != 0, "reserved", p->reserved },
    };
    return FIRST_BAD(c, value);
}

const char *ckpt_check_env(const struct ckpt_env *e, const struct ckpt_header *h, uint64_t *value)
{
    bool live = e->state == CKPT_ENV_LIVE;
    struct check c[] = {
        { e->id < INIT_ENV_ID || e->id >= h->next_env_id, "id", (uint64_t)(int64_t)e->id },
        { e->parent < 0 || e->parent >= h->next_env_id || e->parent == e->id, "parent",
          (uint64_t)(int64_t)e->parent },
        { !live && e->state != CKPT_ENV_ZOMBIE, "state", e->state },
        { !live && (e->status < 0 || e->status > STATUS_KILLED_OTHER), "status",
          (uint64_t)(int64_t)e->status },
        { live ? e->nthreads < 1 || e->nthreads > ENV_MAX_VPROCS : e->nthreads != 0, "nthreads",
          e->nthreads },
        { e->flags & ~(CKPT_ENV_ACT_USED | CKPT_ENV_OUT_DIRECT), "flags", e->flags },
        { live ? e->act_pool_size < 1 || e->act_pool_size > ACT_POOL_MAX : e->act_pool_size != 0,
          "act_pool_size", e->act_pool_size },
        { e->act_reserved != 0, "act_reserved", e->act_reserved },
    };
    return FIRST_BAD(c, value);
}
