// What a restore refuses (restore_check.c): a valid record of each kind
// passes, and each field set to a value no kernel could have written is
// named. The disk-level tests (tests/test_restore.py) edit real
// checkpoints; these pin the judgement itself, field by field.
#include "abi.h"
#include "crc32c.h"
#include "env.h"
#include "gdt.h"
#include "ktest.h"
#include "restore_check.h"
#include "string.h"

#define DISK_BLOCKS 16384
#define MASK 0xffff         // an MXCSR mask with every defined bit

static void seal(struct ckpt_header *h)
{
    h->header_crc = 0;
    h->header_crc = crc32c(h, sizeof(*h));
}

// A header a writer could have produced: generation 5 (slot 1), a
// manifest of two blocks holding one environment and one thread.
static struct ckpt_header good_header(void)
{
    struct ckpt_header h;
    memset(&h, 0, sizeof(h));
    h.magic = CKPT_MAGIC;
    h.version = CKPT_VERSION;
    h.header_size = sizeof(h);
    h.block_size = CKPT_BLOCK;
    h.generation = 5;
    h.disk_blocks = DISK_BLOCKS;
    h.clock_ns = 123456789;
    h.manifest_block = 100;
    h.manifest_bytes = 8192;
    h.next_env_id = 3;
    h.console_holder = 1;
    static const uint32_t sizes[CKPT_SECTIONS] = {
        sizeof(struct ckpt_env), sizeof(struct ckpt_thread), sizeof(struct ckpt_act_slot),
        sizeof(struct ckpt_shm), sizeof(struct ckpt_shm_hold), sizeof(struct ckpt_page), 1,
    };
    for (uint32_t i = 0; i < CKPT_SECTIONS; i++) {
        h.section[i].type = i;
        h.section[i].record_size = sizes[i];
        h.section[i].offset = i == CKPT_SEC_THREAD ? 256 : 0;
        h.section[i].count = i <= CKPT_SEC_THREAD;
        h.section[i].bytes = h.section[i].count * sizes[i];
    }
    seal(&h);
    return h;
}

static const char *header_verdict(struct ckpt_header h, bool reseal)
{
    if (reseal)
        seal(&h);
    uint64_t v;
    const char *bad = ckpt_check_header(&h, 1, DISK_BLOCKS, &v);
    return bad ? bad : ckpt_check_sections(&h, &v);
}

static void a_good_header_passes(struct ktest *t)
{
    struct ckpt_header h = good_header();
    uint64_t v;
    KEXPECT_TRUE(t, ckpt_check_header(&h, 1, DISK_BLOCKS, &v) == NULL);
    KEXPECT_TRUE(t, ckpt_check_sections(&h, &v) == NULL);
    // In the other slot, the same header is misplaced.
    KEXPECT_STREQ(t, ckpt_check_header(&h, 0, DISK_BLOCKS, &v), "generation");
    // A field changed without the checksum following it.
    h.clock_ns++;
    KEXPECT_STREQ(t, header_verdict(h, false), "header_crc");
}

static void any_flipped_bit_fails_the_checksum(struct ktest *t)
{
    struct ckpt_header good = good_header();
    for (size_t byte = 0; byte < sizeof(good); byte += 7) {
        struct ckpt_header h = good;
        ((uint8_t *)&h)[byte] ^= 0x10;
        const char *bad = header_verdict(h, false);
        KEXPECT_TRUE(t, bad != NULL);
    }
}

static void each_header_field_is_judged(struct ktest *t)
{
    struct { const char *want; struct ckpt_header h; } cases[16];
    int n = 0;
#define CASE(field_name, stmt) do { cases[n].want = field_name; cases[n].h = good_header(); \
        { struct ckpt_header *h = &cases[n].h; stmt; } n++; } while (0)
    CASE("magic", h->magic ^= 1);
    CASE("header_size", h->header_size = 512);
    CASE("version", h->version = CKPT_VERSION + 1);
    CASE("block_size", h->block_size = 512);
    CASE("generation", h->generation = 0);
    CASE("disk_blocks", h->disk_blocks = DISK_BLOCKS + 1);
    CASE("clock_ns", h->clock_ns = ~0UL);
    CASE("manifest_block", h->manifest_block = 2);
    CASE("manifest_bytes", h->manifest_bytes = (DISK_BLOCKS - 100) * (uint64_t)CKPT_BLOCK + 1);
    CASE("flags", h->flags = 1U << 7);
    CASE("pages_written", h->pages_written = 1);
    CASE("next_env_id", h->next_env_id = -4);
    CASE("console_holder", h->console_holder = 3);
    CASE("console_ring", h->console_ring_va = 0x500000);
    CASE("reserved", h->reserved[31] = 1);
    CASE("section[thread]", h->section[CKPT_SEC_THREAD].offset = 8192 - 8);
#undef CASE
    for (int i = 0; i < n; i++) {
        KEXPECT_STREQ(t, header_verdict(cases[i].h, true), cases[i].want);
    }
}

static void absurd_section_counts_are_refused(struct ktest *t)
{
    struct ckpt_header h = good_header();
    h.section[CKPT_SEC_ENV].count = ENV_MAX + 1;
    h.section[CKPT_SEC_ENV].bytes = (uint64_t)h.section[CKPT_SEC_ENV].count * sizeof(struct ckpt_env);
    h.manifest_bytes = 1UL << 20;
    KEXPECT_STREQ(t, header_verdict(h, true), "section[env]");
    h = good_header();
    h.section[CKPT_SEC_PAGE].count = 0xffffffff;    // bytes would need 200 GiB of manifest
    KEXPECT_STREQ(t, header_verdict(h, true), "section[page]");
    h = good_header();
    h.section[CKPT_SEC_SHM].record_size = 8;
    KEXPECT_STREQ(t, header_verdict(h, true), "section[shm]");
}

static struct ckpt_thread good_thread(void)
{
    struct ckpt_thread th;
    memset(&th, 0, sizeof(th));
    th.env_id = 1;
    th.frame_kind = CKPT_FRAME_SYSCALL;
    th.act_resuming = -1;
    th.rip = 0x401000;
    th.rsp = 0x7fffffffe000;
    th.rflags = 0x202;
    th.cs = USER_CS;
    th.ss = USER_DS;
    uint32_t mxcsr = 0x1f80;
    memcpy(th.fpu + 24, &mxcsr, sizeof(mxcsr));
    return th;
}

static void hostile_thread_frames_are_refused(struct ktest *t)
{
    uint64_t v;
    struct ckpt_thread good = good_thread();
    KEXPECT_TRUE(t, ckpt_check_thread(&good, MASK, &v) == NULL);
    struct { const char *want; struct ckpt_thread th; } cases[14];
    int n = 0;
#define CASE(field_name, stmt) do { cases[n].want = field_name; cases[n].th = good_thread(); \
        { struct ckpt_thread *th = &cases[n].th; stmt; } n++; } while (0)
    CASE("cs", th->cs = 0x08);
    CASE("ss", th->ss = 0x10);
    CASE("rflags", th->rflags = 0x3202);                 // IOPL 3
    CASE("rflags", th->rflags = 0x002);                  // IF clear
    CASE("rflags", th->rflags = 0x202 | (1UL << 14));    // NT
    CASE("rip", th->rip = USER_LIMIT);                   // the sysret hole
    CASE("rip", th->rip = 0xffffffff80100000UL);         // the kernel
    CASE("rsp", th->rsp = 0x800000000000UL);             // not canonical
    CASE("ds", th->seg[0] = 0x08);                       // the kernel's code selector
    CASE("gs", th->seg[3] = 0x28);                       // the TSS
    CASE("mxcsr", { uint32_t m = 1U << 16; memcpy(th->fpu + 24, &m, 4); });
    CASE("frame_kind", th->frame_kind = 9);
    CASE("flags", th->flags = 1U << 9);
    CASE("act_resuming", th->act_resuming = -7);
#undef CASE
    for (int i = 0; i < n; i++)
        KEXPECT_STREQ(t, ckpt_check_thread(&cases[i].th, MASK, &v), cases[i].want);
    // What a program may set itself passes: null selectors with an RPL, AC, TF.
    struct ckpt_thread th = good_thread();
    th.seg[0] = 3;
    th.seg[1] = USER_DS;
    th.rflags |= (1UL << 18) | (1UL << 8);
    KEXPECT_TRUE(t, ckpt_check_thread(&th, MASK, &v) == NULL);
}

static void hostile_pages_and_envs_are_refused(struct ktest *t)
{
    struct ckpt_header h = good_header();
    uint64_t v;
    struct ckpt_page good = { .owner_kind = CKPT_OWNER_ENV, .owner = 1, .va = 0x400000,
                              .prot = PROT_READ | PROT_EXEC, .block = 200, .generation = 5 };
    KEXPECT_TRUE(t, ckpt_check_page(&good, &h, &v) == NULL);
    struct ckpt_page p = good;
    p.prot = PROT_READ | PROT_WRITE | PROT_EXEC;
    KEXPECT_STREQ(t, ckpt_check_page(&p, &h, &v), "prot");
    p = good;
    p.block = DISK_BLOCKS;
    KEXPECT_STREQ(t, ckpt_check_page(&p, &h, &v), "block");
    p = good;
    p.block = 1;                                         // a slot header
    KEXPECT_STREQ(t, ckpt_check_page(&p, &h, &v), "block");
    p = good;
    p.generation = 6;                                    // from the future
    KEXPECT_STREQ(t, ckpt_check_page(&p, &h, &v), "generation");
    p = good;
    p.va = 0x400010;
    KEXPECT_STREQ(t, ckpt_check_page(&p, &h, &v), "va");

    struct ckpt_env good_env = { .id = 2, .parent = 1, .state = CKPT_ENV_LIVE, .nthreads = 1,
                                 .act_pool_size = 64 };
    KEXPECT_TRUE(t, ckpt_check_env(&good_env, &h, &v) == NULL);
    struct ckpt_env e = good_env;
    e.id = 3;                                            // not below next_env_id
    KEXPECT_STREQ(t, ckpt_check_env(&e, &h, &v), "id");
    e = good_env;
    e.parent = 2;
    KEXPECT_STREQ(t, ckpt_check_env(&e, &h, &v), "parent");
    e = good_env;
    e.act_pool_size = ACT_POOL_MAX + 1;
    KEXPECT_STREQ(t, ckpt_check_env(&e, &h, &v), "act_pool_size");
    e = good_env;
    e.nthreads = 2;
    KEXPECT_STREQ(t, ckpt_check_env(&e, &h, &v), "nthreads");
    e = good_env;
    e.state = CKPT_ENV_ZOMBIE;
    e.nthreads = 0;
    e.act_pool_size = 0;
    e.status = STATUS_KILLED_OTHER + 1;
    KEXPECT_STREQ(t, ckpt_check_env(&e, &h, &v), "status");
}

KTEST_SUITE(restore_check,
            KTEST_CASE(a_good_header_passes),
            KTEST_CASE(any_flipped_bit_fails_the_checksum),
            KTEST_CASE(each_header_field_is_judged),
            KTEST_CASE(absurd_section_counts_are_refused),
            KTEST_CASE(hostile_thread_frames_are_refused),
            KTEST_CASE(hostile_pages_and_envs_are_refused));
