// fuzz[:seed[:count]]: `count` (default 100,000) system calls with random
// numbers and arguments drawn mostly from a hostile set: kernel addresses,
// non-canonical values, huge lengths, null, USER_LIMIT-1, unaligned and
// page-straddling pointers. The kernel must answer every one with a result
// or an error, and this program must reach the end:
//   fuzz: seed=<n>                 first, so any failure can be replayed
//   fuzz: done <count> calls       last
//
// Some calls would end or stall the run *legitimately* if given valid
// arguments, so they are sanitized (that is not the kernel's bug to find):
//   exit      never called (it would end the fuzzer);
//   poweroff  only env 1 may power off; fuzz is never env 1, so it is
//             called as is and must fail with -EPERM (checked);
//   spawn     the name is always a hostile pointer or a name not in the
//             initrd: a valid name would start real programs (a spawn bomb);
//   wait      fine as is: fuzz has no children (spawn never succeeds), so
//             it cannot block;
//   sleep_until  the deadline is in the past, except rarely up to 1 ms
//             ahead: a random deadline could be centuries away;
//   write     to fd 1 and 2 only from hostile pointers, so the console does
//             not fill with random bytes;
//   unmap, and map/cmdline/wait/act_stats as *destinations*: never a
//             range that touches this program's image, stack, scratch page
//             or activation segment (the fuzzer would destroy itself: the
//             runtime's upcall entry lives in the segment header). The check
//             is done on the true mathematical range, so wrapping ranges are
//             still sent.
//   act_resume  never called: a valid record would resume garbage and any
//             other address ends the program (hostile record), both by design.
//   futex_wait  the deadline is in the past or at most 1 ms ahead, never 0
//             (none): a word that happens to hold `expected` would block
//             the fuzzer for good.
//   spawn_shared  the name as for spawn; the handles are whatever comes.
//   shm_map, shm_unmap, shm_close, shm_create, futex_wake: as they come
//             (shm_map never maps over anything, the limits bound the rest).
//   console_attach  the ring as a destination (above), and in a quarter of
//             the calls a ring in the scratch page; console_wait like
//             futex_wait, a near deadline (when fuzz is first in run= it
//             holds the console, so both do real work); console_give as it
//             comes (fuzz spawns no child, so it can only fail or arm).
// Numbers with the upper 32 bits set keep their low 32 bits out of the
// valid range too, so the test does not depend on whether the kernel
// reads rax as 64 or 32 bits.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH     0x20000000UL    // one mapped page, the next unmapped
#define ARENA       0x21000000UL    // where map/unmap may do real work
#define ARENA_SIZE  0x01000000UL
#define KERNEL_TEXT 0xffffffff80100000UL
#define NONCANONICAL 0x0000800000000000UL

#define SLOW_TSC    (1UL << 28)     // ~0.1 s at a few GHz: report the call

static struct rng rng;

static inline uint64_t tsc(void)        // not clock_ns(): that would be a syscall
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

extern char __data_start[], _end[];     // userland/user.ld

static const uint64_t hostile[] = {
    0, 1, 8, 0xfff, 0x1000, USER_BASE - 1, USER_BASE, USER_BASE + 1,
    SCRATCH, SCRATCH + 1, SCRATCH + 4093, SCRATCH + 4096, ARENA, ARENA + 4096, ARENA + 3,
    ACT_SEGMENT, ACT_RESTORE, USER_STACK_TOP, USER_LIMIT - 4096, USER_LIMIT - 1, USER_LIMIT,
    0x00007fffffffffffUL, 0x0000800000000000UL, 0x8000000000000000UL, 0xffff7fffffffffffUL,
    0xffff800000000000UL, 0xffffffff80000000UL, 0xffffffff80100000UL, 0xfffffffffffff000UL,
    UINT64_MAX, UINT64_MAX - 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000UL,
    (1UL << 20), (1UL << 20) + 1, (1UL << 31), (1UL << 40), (1UL << 63), 4096, 4095, 2, 3, 4,
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

// Low 32 bits all >= SYS_COUNT (see the header comment).
static const uint64_t bad_numbers[] = {
    SYS_COUNT, SYS_COUNT + 1, 64, 255, 256, 1000, 0x7fffffff, 0x80000000, 0xffffffff,
    UINT64_MAX, 0x8000000000000000UL + 64, 0xdeadbeef, 0x100000000UL + 0xffff,
};
#define NBADNR (sizeof(bad_numbers) / sizeof(bad_numbers[0]))

static uint64_t pick_arg(void)
{
    uint64_t r = rng_below(&rng, 8);
    if (r < 5)
        return hostile[rng_below(&rng, NHOSTILE)];
    if (r == 5)
        return rng_next(&rng);                       // anything at all
    if (r == 6)
        return rng_below(&rng, 64);                  // small numbers: fds, ids, prot bits
    return hostile[rng_below(&rng, NHOSTILE)] + rng_below(&rng, 16) - 8;   // near a border
}

static uint64_t pick_number(void)
{
    if (rng_below(&rng, 4) == 0)
        return bad_numbers[rng_below(&rng, NBADNR)];
    return rng_below(&rng, SYS_COUNT + 2);
}

// Does the true range [va, va+len) (no wrapping) meet [lo, hi)?
static int overlaps(uint64_t va, uint64_t len, uint64_t lo, uint64_t hi)
{
    unsigned __int128 end = (unsigned __int128)va + (len ? len : 1);
    return va < hi && end > lo;
}

static uint64_t image_end(void)
{
    return ((uint64_t)_end + 4095) & ~4095UL;
}

// Memory the kernel may not take away from us: the image and the stack.
static int touches_us(uint64_t va, uint64_t len)
{
    return overlaps(va, len, USER_BASE, image_end()) ||
           overlaps(va, len, USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_TOP);
}

// A pointer the kernel will write through: never our data, bss or stack
// (text and rodata are fine: they are read-only, so the kernel must refuse
// to write them, which is worth testing).
static uint64_t safe_dst(uint64_t p, uint64_t len)
{
    if (overlaps(p, len, (uint64_t)__data_start, image_end()) ||
        overlaps(p, len, ACT_SEGMENT, ACT_SEGMENT + ACT_SEGMENT_SIZE) ||
        overlaps(p, len, USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_TOP))
        return KERNEL_TEXT;
    return p;
}

// A deadline in the past, or rarely up to 1 ms ahead; never 0.
static uint64_t near_deadline(void)
{
    uint64_t now = sys_clock_ns();
    return rng_below(&rng, 256) ? now - rng_below(&rng, now) : now + rng_below(&rng, 1000000);
}

static long one_call(uint64_t nr, uint64_t a[6])
{
    switch (nr) {
    case SYS_exit:
        nr = SYS_getpid;                                 // never exit
        break;
    case SYS_write:
        if ((uint32_t)a[0] == 1 || (uint32_t)a[0] == 2)  // whatever width the kernel reads
            a[1] = rng_below(&rng, 2) ? KERNEL_TEXT : NONCANONICAL;
        break;
    case SYS_map:
        if (touches_us(a[0], a[1]))
            a[0] = ARENA + rng_below(&rng, ARENA_SIZE / 4096) * 4096;
        if (a[1] > ARENA_SIZE && rng_below(&rng, 2))
            a[1] = 4096 * (1 + rng_below(&rng, 4));      // succeed sometimes, so unmap has work
        break;
    case SYS_unmap:
        if (touches_us(a[0], a[1]))
            nr = SYS_getpid;
        break;
    case SYS_spawn:
    case SYS_spawn_shared:
        // A name in memory we own might spell a real program ("fuzz" after
        // cmdline() wrote "run=fuzz" into the scratch page, say).
        if (rng_below(&rng, 2) || overlaps(a[0], 256, USER_BASE, image_end()) ||
            overlaps(a[0], 256, SCRATCH, SCRATCH + 4096) ||
            overlaps(a[0], 256, ARENA, ARENA + ARENA_SIZE))
            a[0] = (uint64_t)"no-such-program";
        a[1] = safe_dst(a[1], 8);
        break;
    case SYS_wait:
        a[1] = safe_dst(a[1], 4);
        break;
    case SYS_poweroff: {
        long r = sys_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r != -EPERM) {
            printf("fuzz: FAIL poweroff(%lu) returned %ld, want -EPERM\n", (unsigned long)a[0], r);
            exit(1);
        }
        return r;
    }
    case SYS_sleep_until:
        a[0] = near_deadline();
        break;
    case SYS_futex_wait:
        a[2] = near_deadline();
        break;
    case SYS_console_attach:
        if (rng_below(&rng, 4) == 0) {                  // often valid, so the ring gets used
            a[0] = SCRATCH + 16 * rng_below(&rng, 256);
            a[1] = 16UL << rng_below(&rng, 9);          // sometimes past the scratch page
        }
        a[0] = safe_dst(a[0], sizeof(struct console_ring) +
                                  (a[1] > CONSOLE_RING_MAX ? CONSOLE_RING_MAX : a[1]));
        break;
    case SYS_console_wait:
        a[1] = near_deadline();
        break;
    case SYS_cmdline:
        a[0] = safe_dst(a[0], a[1]);
        break;
    case SYS_act_resume:
        nr = SYS_getpid;
        break;
    case SYS_act_stats:
        a[0] = safe_dst(a[0], sizeof(struct act_stats));
        break;
    }
    return sys_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoul(argv[1], 0, 0) : (uint64_t)sys_clock_ns();
    unsigned long count = argc > 2 ? strtoul(argv[2], 0, 0) : 100000;
    printf("fuzz: seed=%lu\n", (unsigned long)seed);
    rng_seed(&rng, seed);
    long r = sys_map(SCRATCH, 4096, PROT_READ | PROT_WRITE);
    if (r < 0) {
        printf("fuzz: FAIL map scratch: %s\n", errno_name(r));
        return 1;
    }
    long me = sys_getpid();
    uint64_t t0 = sys_clock_ns();
    for (unsigned long i = 0; i < count; i++) {
        uint64_t a[6];
        for (int k = 0; k < 6; k++)
            a[k] = pick_arg();
        uint64_t nr = pick_number(), t = tsc();
        one_call(nr, a);
        if ((t = tsc() - t) > SLOW_TSC)     // a DoS is a finding too: name the call
            printf("fuzz: slow call %lu(0x%lx, 0x%lx, 0x%lx): %lu Mcycles\n", (unsigned long)nr,
                   (unsigned long)a[0], (unsigned long)a[1], (unsigned long)a[2],
                   (unsigned long)(t >> 20));
        if ((i + 1) % 20000 == 0)       // progress: a hang shows where it stopped
            printf("fuzz: %lu calls, %lu ms\n", i + 1, (unsigned long)(sys_clock_ns() - t0) / 1000000);
    }
    if (sys_getpid() != me) {
        puts("fuzz: FAIL getpid changed");
        return 1;
    }
    printf("fuzz: done %lu calls\n", count);
    return 0;
}
