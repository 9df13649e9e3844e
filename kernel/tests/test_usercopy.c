// copyin/copyout/strncpy_from_user against a scratch address space loaded
// in CR3: good pointers work, bad ones give -EFAULT through the real fault
// path (page fault or #GP, then the exception-table fixup), never a panic.
#include "abi.h"
#include "cpu.h"
#include "ktest.h"
#include "memlayout.h"
#include "string.h"
#include "vm.h"
#include "x86.h"

#define RW 0x600000UL           // one read-write page
#define RO (RW + PAGE_SIZE)     // one read-only page; the next is unmapped
#define HOLE (RO + PAGE_SIZE)

long user_copy(void *dst, const void *src, uint64_t len);

static uint64_t *scratch;

static void enter(void)
{
    scratch = vm_new_aspace();
    vm_map_user(scratch, RW, PAGE_SIZE, VM_READ | VM_WRITE);
    vm_map_user(scratch, RO, PAGE_SIZE, VM_READ);
    vm_switch(scratch);
}

static void leave(void)
{
    vm_switch(vm_kernel_aspace());
    vm_free_aspace(scratch);
}

static void round_trip(struct ktest *t)
{
    enter();
    const char msg[] = "hello, user page";
    char back[sizeof(msg)] = { 0 };
    KEXPECT_EQ(t, copyout(RW + 100, msg, sizeof(msg)), 0);
    KEXPECT_EQ(t, copyin(back, RW + 100, sizeof(msg)), 0);
    KEXPECT_STREQ(t, back, msg);
    KEXPECT_EQ(t, copyin(back, RO, 8), 0);
    KEXPECT_EQ(t, copyin(back, HOLE, 0), 0);    // nothing to copy: nothing touched
    leave();
}

static void bad_pointers_fault(struct ktest *t)
{
    enter();
    char buf[32];
    KEXPECT_EQ(t, copyin(buf, HOLE, 8), -EFAULT);               // unmapped: #PF fixup
    KEXPECT_EQ(t, copyin(buf, RO + PAGE_SIZE - 4, 8), -EFAULT); // straddles into the hole
    KEXPECT_EQ(t, copyout(RO, buf, 8), -EFAULT);                // read-only: #PF (CR0.WP)
    KEXPECT_EQ(t, copyout(HOLE, buf, 8), -EFAULT);
    KEXPECT_EQ(t, copyin(buf, 0, 8), -EFAULT);                  // null
    KEXPECT_EQ(t, copyin(buf, (uint64_t)__kernel_start, 8), -EFAULT);
    KEXPECT_EQ(t, copyout((uint64_t)P2V(0x200000), buf, 8), -EFAULT);
    KEXPECT_EQ(t, copyin(buf, 0x0000800000000000UL, 8), -EFAULT);
    KEXPECT_EQ(t, copyin(buf, USER_LIMIT - 4, 8), -EFAULT);
    KEXPECT_EQ(t, copyin(buf, RW, ~0UL), -EFAULT);              // wraps
    leave();
}

// Past the range checks: the routine itself on a non-canonical address
// takes a #GP, which the fixup must turn into -EFAULT as well.
static void gp_inside_copy_is_recovered(struct ktest *t)
{
    char buf[8];
    KEXPECT_EQ(t, user_copy(buf, (const void *)0x0000800000000000UL, 8), -EFAULT);
    KEXPECT_EQ(t, user_copy((void *)0x8000000000000000UL, buf, 8), -EFAULT);
}

static void strings(struct ktest *t)
{
    enter();
    char buf[16];
    KEXPECT_EQ(t, copyout(RW, "init", 5), 0);
    KEXPECT_EQ(t, strncpy_from_user(buf, RW, sizeof(buf)), 4);
    KEXPECT_STREQ(t, buf, "init");
    KEXPECT_EQ(t, strncpy_from_user(buf, RW, 4), -ENAMETOOLONG);
    KEXPECT_STREQ(t, buf, "ini");           // cut and terminated inside the 4 bytes
    KEXPECT_EQ(t, strncpy_from_user(buf, RW, 5), 4);
    // A string too long for the buffer writes nothing past max bytes.
    memset(buf, 'Z', sizeof(buf));
    KEXPECT_EQ(t, strncpy_from_user(buf, RW, 3), -ENAMETOOLONG);
    KEXPECT_EQ(t, buf[3], 'Z');
    KEXPECT_EQ(t, strncpy_from_user(buf, HOLE, sizeof(buf)), -EFAULT);
    KEXPECT_EQ(t, strncpy_from_user(buf, (uint64_t)__kernel_start, sizeof(buf)), -EFAULT);
    KEXPECT_EQ(t, strncpy_from_user(buf, 0x0000800000000000UL, sizeof(buf)), -EFAULT);
    // Runs off the end of a mapping before any NUL.
    char fill[8] = "abcdefgh";
    KEXPECT_EQ(t, copyout(RW + PAGE_SIZE - 8, fill, 8), 0);
    KEXPECT_EQ(t, vm_write_aspace(scratch, RO + PAGE_SIZE - 8, fill, 8), 0);
    KEXPECT_EQ(t, strncpy_from_user(buf, RO + PAGE_SIZE - 8, sizeof(buf)), -EFAULT);
    KEXPECT_EQ(t, strncpy_from_user(buf, USER_LIMIT - 2, sizeof(buf)), -EFAULT);
    leave();
}

static void smap_stays_on(struct ktest *t)
{
    if (!cpu_has_smap)
        KTEST_SKIP(t, "no SMAP on this CPU");
    // AC must be clear outside the copy routines, faults or not.
    char buf[8];
    copyin(buf, HOLE, 8);
    KEXPECT_FALSE(t, read_rflags() & (1UL << 18));
    KEXPECT_TRUE(t, read_cr4() & CR4_SMAP);
}

KTEST_SUITE(usercopy,
            KTEST_CASE(round_trip),
            KTEST_CASE(bad_pointers_fault),
            KTEST_CASE(gp_inside_copy_is_recovered),
            KTEST_CASE(strings),
            KTEST_CASE(smap_stays_on));
