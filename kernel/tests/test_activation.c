// The pure parts of activations: the record validator, the upcall check,
// the record pool's accounting and the restore-range predicate.
#include "abi.h"
#include "activation.h"
#include "bitmap.h"
#include "env.h"
#include "sched.h"
#include "gdt.h"
#include "ktest.h"
#include "memlayout.h"

static struct act_record good_record(void)
{
    return (struct act_record){ .rip = 0x401000, .cs = USER_CS, .rflags = 0x202,
                                .rsp = USER_STACK_TOP - 64, .ss = USER_DS };
}

// The validator's verdict on `good_record` with one field changed.
static const char *verdict(void (*forge)(struct act_record *))
{
    struct act_record r = good_record();
    uint64_t value = 0;
    forge(&r);
    return act_check_record(&r, &value);
}

static void forge_cs(struct act_record *r) { r->cs = KERNEL_CS; }
static void forge_cs_rpl(struct act_record *r) { r->cs = USER_CS & ~3UL; }
static void forge_ss(struct act_record *r) { r->ss = KERNEL_DS; }
static void forge_if(struct act_record *r) { r->rflags &= ~(1UL << 9); }
static void forge_iopl(struct act_record *r) { r->rflags |= 3UL << 12; }
static void forge_tf(struct act_record *r) { r->rflags |= 1UL << 8; }
static void forge_nt(struct act_record *r) { r->rflags |= 1UL << 14; }
static void forge_ac(struct act_record *r) { r->rflags |= 1UL << 18; }
static void forge_vm(struct act_record *r) { r->rflags |= 1UL << 17; }
static void forge_rf(struct act_record *r) { r->rflags |= 1UL << 16; }
static void forge_reserved(struct act_record *r) { r->rflags |= 1UL << 40; }
static void forge_rip_kernel(struct act_record *r) { r->rip = KERNEL_BASE + 0x100000; }
static void forge_rip_noncanonical(struct act_record *r) { r->rip = 0x0000800000000000UL; }
static void forge_rip_limit(struct act_record *r) { r->rip = USER_LIMIT; }
static void forge_rsp(struct act_record *r) { r->rsp = 0xffff800000000000UL; }

static void a_good_record_is_accepted(struct ktest *t)
{
    struct act_record r = good_record();
    uint64_t value = 0;
    KEXPECT_TRUE(t, act_check_record(&r, &value) == NULL);
    r.rflags |= 0x8d5 | (1UL << 10) | (1UL << 21);      // arithmetic flags, DF, ID: the program's
    r.rip = USER_LIMIT - 1;
    KEXPECT_TRUE(t, act_check_record(&r, &value) == NULL);
}

static void each_forged_field_is_named(struct ktest *t)
{
    KEXPECT_STREQ(t, verdict(forge_cs), "cs");
    KEXPECT_STREQ(t, verdict(forge_cs_rpl), "cs");
    KEXPECT_STREQ(t, verdict(forge_ss), "ss");
    KEXPECT_STREQ(t, verdict(forge_if), "rflags.IF");
    KEXPECT_STREQ(t, verdict(forge_iopl), "rflags.IOPL");
    KEXPECT_STREQ(t, verdict(forge_tf), "rflags.TF");
    KEXPECT_STREQ(t, verdict(forge_nt), "rflags.NT");
    KEXPECT_STREQ(t, verdict(forge_ac), "rflags.AC");
    KEXPECT_STREQ(t, verdict(forge_vm), "rflags.VM");
    KEXPECT_STREQ(t, verdict(forge_rf), "rflags.RF");
    KEXPECT_STREQ(t, verdict(forge_reserved), "rflags.reserved");
    KEXPECT_STREQ(t, verdict(forge_rip_kernel), "rip");
    KEXPECT_STREQ(t, verdict(forge_rip_noncanonical), "rip");
    KEXPECT_STREQ(t, verdict(forge_rip_limit), "rip");
    KEXPECT_STREQ(t, verdict(forge_rsp), "rsp");
}

static void the_bad_value_is_reported(struct ktest *t)
{
    struct act_record r = good_record();
    uint64_t value = 0;
    r.rip = 0xdead000000000000UL;
    KEXPECT_STREQ(t, act_check_record(&r, &value), "rip");
    KEXPECT_EQ(t, value, 0xdead000000000000UL);
}

static void upcall_entry_and_stack_are_checked(struct ktest *t)
{
    uint64_t value = 0;
    uint64_t stack = USER_STACK_TOP - 4096;
    KEXPECT_TRUE(t, act_check_upcall(0x401000, stack, &value) == NULL);
    KEXPECT_TRUE(t, act_check_upcall(0x401000, USER_LIMIT, &value) == NULL);
    KEXPECT_STREQ(t, act_check_upcall(KERNEL_BASE, stack, &value), "entry[4]");
    KEXPECT_EQ(t, value, KERNEL_BASE);
    KEXPECT_STREQ(t, act_check_upcall(0x1000, stack, &value), "entry[4]");
    KEXPECT_STREQ(t, act_check_upcall(0x0000800000000000UL, stack, &value), "entry[4]");
    KEXPECT_STREQ(t, act_check_upcall(0x401000, stack + 8, &value), "upcall_stack");
    KEXPECT_STREQ(t, act_check_upcall(0x401000, 0, &value), "upcall_stack");
    KEXPECT_STREQ(t, act_check_upcall(0x401000, USER_LIMIT + 16, &value), "upcall_stack");
    KEXPECT_STREQ(t, act_check_upcall(0x401000, DIRECT_MAP, &value), "upcall_stack");
}

#define TEST_POOL 70    // more than one bitmap word

static void pool_allocates_every_record_once(struct ktest *t)
{
    uint64_t bits[BITMAP_WORDS(TEST_POOL)];
    struct act_pool p;
    act_pool_init(&p, bits, TEST_POOL);
    KEXPECT_EQ(t, p.nfree, TEST_POOL);
    for (int i = 0; i < TEST_POOL; i++)
        KEXPECT_EQ(t, act_pool_alloc(&p), i);       // lowest free first
    KEXPECT_EQ(t, p.nfree, 0);
    KEXPECT_EQ(t, act_pool_alloc(&p), -1);          // exhausted: reported, not wrapped
    KEXPECT_EQ(t, p.nfree, 0);
}

static void pool_free_accounting(struct ktest *t)
{
    uint64_t bits[BITMAP_WORDS(TEST_POOL)];
    struct act_pool p;
    act_pool_init(&p, bits, TEST_POOL);
    for (int i = 0; i < TEST_POOL; i++)
        act_pool_alloc(&p);
    KEXPECT_TRUE(t, act_pool_free(&p, 65));
    KEXPECT_TRUE(t, act_pool_free(&p, 3));
    KEXPECT_EQ(t, p.nfree, 2);
    KEXPECT_FALSE(t, act_pool_free(&p, 3));         // double free: refused, count unchanged
    KEXPECT_FALSE(t, act_pool_free(&p, TEST_POOL)); // out of range
    KEXPECT_FALSE(t, act_pool_free(&p, 0xffffffffU));
    KEXPECT_EQ(t, p.nfree, 2);
    KEXPECT_FALSE(t, act_pool_in_use(&p, 3));
    KEXPECT_TRUE(t, act_pool_in_use(&p, 4));
    KEXPECT_FALSE(t, act_pool_in_use(&p, TEST_POOL));
    KEXPECT_EQ(t, act_pool_alloc(&p), 3);
    KEXPECT_EQ(t, act_pool_alloc(&p), 65);
    KEXPECT_EQ(t, act_pool_alloc(&p), -1);
}

static void restore_range_predicate(struct ktest *t)
{
    uint64_t len = act_restore_len();
    KEXPECT_TRUE(t, len > 0 && len < PAGE_SIZE);
    KEXPECT_TRUE(t, act_in_restore(ACT_RESTORE));
    KEXPECT_TRUE(t, act_in_restore(ACT_RESTORE + len - 1));
    KEXPECT_FALSE(t, act_in_restore(ACT_RESTORE + len));
    KEXPECT_FALSE(t, act_in_restore(ACT_RESTORE - 1));
    KEXPECT_FALSE(t, act_in_restore(0));
    KEXPECT_FALSE(t, act_in_restore(ACT_RESTORE + PAGE_SIZE));
    KEXPECT_FALSE(t, act_in_restore(~0UL));
}

extern const uint8_t act_restore_code[], act_restore_end[];

static void restore_code_cannot_make_a_syscall(struct ktest *t)
{
    // 0f 05 at any offset would let a program enter the kernel through
    // `syscall` from inside the range; the int3 filler (cc) cannot form it.
    uint64_t len = act_restore_len();
    for (uint64_t i = 0; i + 1 < len; i++)
        KEXPECT_FALSE(t, act_restore_code[i] == 0x0f && act_restore_code[i + 1] == 0x05);
    KEXPECT_TRUE(t, len == 0 || act_restore_code[len - 1] != 0x0f);
    KEXPECT_EQ(t, act_restore_code[len - 1], 0xc3);     // ends with ret
}

// A syscall whose instruction ends right at ACT_RESTORE (a program segment
// may end there) enters with rip == ACT_RESTORE, yet it ran outside the
// sequence: the record being resumed must be freed, not kept forever. An
// interrupt at the same rip really did cut the restore short.
static void settle_judges_the_syscall_instruction(struct ktest *t)
{
    static struct vproc v;
    static struct env e;
    static struct act_header header;
    static struct act_slot slots[4];
    static struct {
        struct act_env a;
        uint64_t bits[1];
    } s;
    act_pool_init(&s.a.pool, s.a.bits, 4);
    s.a.header = &header;
    s.a.slots[0] = slots;
    e.act = &s.a;
    v.env = &e;

    KEXPECT_EQ(t, act_pool_alloc(&s.a.pool), 0);
    v.act_resuming = 0;
    v.tf.rip = ACT_RESTORE;
    v.tf.vector = T_TIMER;
    KEXPECT_TRUE(t, act_settle(&v));                 // cut short: still resuming
    KEXPECT_EQ(t, v.act_resuming, 0);
    KEXPECT_TRUE(t, act_pool_in_use(&s.a.pool, 0));

    v.tf.vector = VEC_SYSCALL;
    KEXPECT_FALSE(t, act_settle(&v));                // the syscall at ACT_RESTORE - 2
    KEXPECT_EQ(t, v.act_resuming, ACT_NONE);
    KEXPECT_FALSE(t, act_pool_in_use(&s.a.pool, 0));
    KEXPECT_EQ(t, s.a.pool.nfree, 4);
}

KTEST_SUITE(activation,
            KTEST_CASE(a_good_record_is_accepted),
            KTEST_CASE(each_forged_field_is_named),
            KTEST_CASE(the_bad_value_is_reported),
            KTEST_CASE(upcall_entry_and_stack_are_checked),
            KTEST_CASE(pool_allocates_every_record_once),
            KTEST_CASE(pool_free_accounting),
            KTEST_CASE(restore_range_predicate),
            KTEST_CASE(restore_code_cannot_make_a_syscall),
            KTEST_CASE(settle_judges_the_syscall_instruction));
