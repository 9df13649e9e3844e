// The syscall entry's configuration and the exit-path predicates.
#include "abi.h"
#include "cpu.h"
#include "gdt.h"
#include "ktest.h"
#include "memlayout.h"
#include "sched.h"
#include "x86.h"

extern char syscall_entry[];

static struct trapframe syscall_frame(uint64_t rip)
{
    return (struct trapframe){ .vector = VEC_SYSCALL, .rip = rip, .cs = USER_CS, .ss = USER_DS,
                               .rflags = 0x202, .rsp = USER_STACK_TOP - 64 };
}

static void sysret_only_to_canonical_user_rip(struct ktest *t)
{
    struct trapframe tf = syscall_frame(0x401000);
    KEXPECT_TRUE(t, sysret_safe(&tf));
    tf.rip = USER_LIMIT - 1;
    KEXPECT_TRUE(t, sysret_safe(&tf));
    tf.rip = USER_LIMIT;                    // after a syscall in the last user page
    KEXPECT_FALSE(t, sysret_safe(&tf));
    tf.rip = 0x0000800000000000UL;          // CVE-2012-0217: non-canonical RCX
    KEXPECT_FALSE(t, sysret_safe(&tf));
    tf.rip = 0xffffffff80100000UL;
    KEXPECT_FALSE(t, sysret_safe(&tf));
}

static void sysret_only_for_syscall_frames(struct ktest *t)
{
    struct trapframe tf = syscall_frame(0x401000);
    tf.vector = T_TIMER;                    // rcx/r11 are live: must iretq
    KEXPECT_FALSE(t, sysret_safe(&tf));
    tf.vector = VEC_FRESH;
    KEXPECT_FALSE(t, sysret_safe(&tf));
    tf = syscall_frame(0x401000);
    tf.cs = KERNEL_CS;
    KEXPECT_FALSE(t, sysret_safe(&tf));
    tf = syscall_frame(0x401000);
    tf.rflags |= 3UL << 12;                 // IOPL 3 would survive sysret's mask
    KEXPECT_FALSE(t, sysret_safe(&tf));
}

static void user_frames(struct ktest *t)
{
    struct trapframe tf = syscall_frame(0x401000);
    tf.vector = T_TIMER;
    KEXPECT_TRUE(t, user_frame_valid(&tf));
    tf.rflags = 0x2;                        // IF clear: could hang the CPU
    KEXPECT_FALSE(t, user_frame_valid(&tf));
    tf.rflags = 0x202 | (1UL << 14);        // NT
    KEXPECT_FALSE(t, user_frame_valid(&tf));
    tf = syscall_frame(0xffff800000000000UL - 1);
    KEXPECT_FALSE(t, user_frame_valid(&tf));
    tf = syscall_frame(0x401000);
    tf.ss = KERNEL_DS;
    KEXPECT_FALSE(t, user_frame_valid(&tf));
}

static void entry_msrs(struct ktest *t)
{
    KEXPECT_EQ(t, rdmsr(MSR_LSTAR), (uint64_t)syscall_entry);
    uint64_t fmask = rdmsr(MSR_FMASK);
    uint64_t want = (1UL << 8) | (1UL << 9) | (1UL << 10) | (1UL << 14) | (1UL << 18);
    KEXPECT_EQ(t, fmask & want, want);      // TF IF DF NT AC
    uint64_t star = rdmsr(MSR_STAR);
    KEXPECT_EQ(t, (star >> 32) & 0xffff, KERNEL_CS);
    KEXPECT_EQ(t, (((star >> 48) & 0xfffc) + 16) | 3, USER_CS);
    KEXPECT_EQ(t, (((star >> 48) & 0xfffc) + 8) | 3, USER_DS);
    KEXPECT_TRUE(t, rdmsr(MSR_EFER) & EFER_SCE);
}

static void protection_features(struct ktest *t)
{
    KEXPECT_TRUE(t, rdmsr(MSR_EFER) & EFER_NXE);
    KEXPECT_TRUE(t, read_cr0() & CR0_WP);
    // The per-CPU area is reachable through the kernel GS.
    KEXPECT_TRUE(t, mycpu() != NULL && mycpu()->self == mycpu());
    KEXPECT_EQ(t, rdmsr(MSR_GS_BASE), (uint64_t)mycpu());
}

// CPUID leaf 7 subleaf 0 (ebx or ecx), or 0 where the CPU has no leaf 7.
static uint32_t cpuid7(bool want_ecx)
{
    uint32_t a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    if (a < 7)
        return 0;
    cpuid(7, &a, &b, &c, &d);
    return want_ecx ? c : b;
}

// A feature the CPU lacks is a SKIP with the reason, never a silent pass.
static void smep_is_on(struct ktest *t)
{
    if (!(cpuid7(false) & (1U << 7)))
        KTEST_SKIP(t, "the CPU has no SMEP (CPUID.7.0:EBX bit 7)");
    KEXPECT_TRUE(t, read_cr4() & CR4_SMEP);
}

static void smap_is_on(struct ktest *t)
{
    if (!(cpuid7(false) & (1U << 20)))
        KTEST_SKIP(t, "the CPU has no SMAP (CPUID.7.0:EBX bit 20)");
    KEXPECT_TRUE(t, read_cr4() & CR4_SMAP);
}

static void umip_is_on(struct ktest *t)
{
    if (!(cpuid7(true) & (1U << 2)))
        KTEST_SKIP(t, "the CPU has no UMIP (CPUID.7.0:ECX bit 2)");
    KEXPECT_TRUE(t, read_cr4() & CR4_UMIP);
}

KTEST_SUITE(syscall,
            KTEST_CASE(sysret_only_to_canonical_user_rip),
            KTEST_CASE(sysret_only_for_syscall_frames),
            KTEST_CASE(user_frames),
            KTEST_CASE(entry_msrs),
            KTEST_CASE(protection_features),
            KTEST_CASE(smep_is_on),
            KTEST_CASE(smap_is_on),
            KTEST_CASE(umip_is_on));
