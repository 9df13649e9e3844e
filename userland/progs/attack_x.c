// attack_x:<how>: hostile programs for the security review (tests/test_attacks.py).
// Each mode attacks the kernel's trust boundary; the kernel must answer with
// an error or kill only this program. Modes that expect to survive print
// "attack_x: ok <how>" and exit 0.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *how = "";
static uint8_t ustack[8192] __attribute__((aligned(16)));

static volatile struct act_header *hdr(void) { return (volatile struct act_header *)ACT_SEGMENT; }

static void spin_forever(void)
{
    for (volatile unsigned long i = 0;; i++)
        ;
}

// syscall with TF set: the single-step trap must land in user mode (or not at
// all), never in the kernel.
static void tf_syscall(void)
{
    long r;
    asm volatile("movq %1, %%rax\n\t"
                 "pushfq\n\t"
                 "orq $0x100, (%%rsp)\n\t"
                 "popfq\n\t"
                 "syscall\n\t"
                 "pushfq\n\t"
                 "andq $~0x100, (%%rsp)\n\t"
                 "popfq\n\t"
                 : "=a"(r) : "i"(SYS_getpid) : "rcx", "r11", "memory");
    printf("attack_x: tf survived getpid=%ld\n", r);
}

static void __attribute__((noreturn, used)) on_upcall(void)
{
    sys_exit(7);
}

int main(int argc, char **argv)
{
    how = argc > 1 ? argv[1] : "";
    // The exhaustion modes start once init has spawned everything it was
    // asked to: the test is that the others go on, not that a spawn after
    // the flood fails (it must: the table or memory is full).
    if (!strcmp(how, "bomb") || !strcmp(how, "zombies") || !strcmp(how, "oom"))
        sys_sleep_until(sys_clock_ns() + 20 * 1000000UL);
    if (!strcmp(how, "tf")) {
        tf_syscall();
        return 0;
    }
    if (!strcmp(how, "bomb")) {
        // Spawn ourselves until the kernel says no; never wait.
        char *args[] = { "attack_x", "bomb", 0 };
        long n = 0, r;
        while ((r = sys_spawn("attack_x", args, 2)) > 0)
            n++;
        return 0;
    }
    if (!strcmp(how, "zombies")) {
        char *args[] = { "exit3", 0 };
        long n = 0, r;
        while ((r = sys_spawn("exit3", args, 1)) > 0)
            n++;
        printf("attack_x: zombies %ld then %s\n", n, errno_name(r));
        return 0;   // never waited: our zombies must be freed with us
    }
    if (!strcmp(how, "oom")) {
        unsigned long va = 0x100000000UL, got = 0;
        for (unsigned long len = 1UL << 30; len >= 4096; len /= 2)
            while (sys_map(va, len, PROT_READ | PROT_WRITE) == 0)
                va += len, got += len;
        char *args[] = { "hello", 0 };
        long r = sys_spawn("hello", args, 1);
        printf("attack_x: oom mapped %lu KiB, spawn=%s\n", got >> 10, r < 0 ? errno_name(r) : "ok");
        return 0;
    }
    if (!strcmp(how, "tables")) {
        // Map and unmap one page in many 2 MiB regions: page tables pile up.
        unsigned long n = 0;
        for (unsigned long va = 0x100000000UL; n < 100000; va += 0x200000UL, n++) {
            if (sys_map(va, 4096, PROT_READ) < 0)
                break;
            sys_unmap(va, 4096);
        }
        printf("attack_x: tables %lu\n", n);
        return 0;
    }
    if (!strcmp(how, "stall")) {
        // Empty page tables piled up as in `tables`, then round after round
        // until `ms` of guest time have passed: one page in
        // each 2 MiB region until memory runs out (a page table each), then
        // one unmap of the whole 60 GiB. A kernel that walks it all with
        // interrupts off stalls everyone else (tests/test_isolation_misc.py).
        unsigned long ms = argc > 2 ? strtoul(argv[2], 0, 10) : 2000;
        unsigned long tables = argc > 3 ? strtoul(argv[3], 0, 10) : 30000;
        unsigned long base = 0x100000000UL, whole = tables << 21;
        long end = sys_clock_ns() + (long)ms * 1000000, longest = 0;
        unsigned long rounds = 0, most = 0, piled = 0;
        // First the `tables` pile-up: map and unmap one page per region.
        while (piled < tables && sys_map(base + (piled << 21), 4096, PROT_READ) == 0)
            sys_unmap(base + (piled++ << 21), 4096);
        while (sys_clock_ns() < end) {
            unsigned long n = 0;
            while (n < tables && sys_map(base + (n << 21), 4096, PROT_READ) == 0)
                n++;
            long t0 = sys_clock_ns(), r = sys_unmap(base, whole), t = sys_clock_ns() - t0;
            if (r != 0) {
                printf("attack_x: stall unmap=%s\n", errno_name(r));
                return 1;
            }
            longest = t > longest ? t : longest;
            most = n > most ? n : most;
            rounds++;
        }
        printf("attack_x: stall piled %lu rounds %lu regions %lu longest unmap %ld us\n",
               piled, rounds, most, longest / 1000);
        return 0;
    }
    if (!strcmp(how, "mapstall")) {
        // Round after round until `ms` of guest time have passed: map
        // `pages` fresh pages (each zeroed by the kernel), then unmap. A
        // kernel that maps them all in one call with interrupts off stalls
        // the others (tests/test_isolation_misc.py); one map() of more than
        // MAP_MAX is refused, so map_all() asks piece by piece.
        unsigned long ms = argc > 2 ? strtoul(argv[2], 0, 10) : 200;
        unsigned long pages = argc > 3 ? strtoul(argv[3], 0, 10) : 16384;
        unsigned long va = 0x100000000UL, rounds = 0;
        long end = sys_clock_ns() + (long)ms * 1000000, longest = 0;
        while (sys_clock_ns() < end) {
            long t0 = sys_clock_ns(), r = map_all(va, pages << 12, PROT_READ | PROT_WRITE);
            long t = sys_clock_ns() - t0;
            if (r != 0) {
                printf("attack_x: mapstall map=%s\n", errno_name(r));
                return 1;
            }
            if (((volatile char *)va)[(pages << 12) - 1] != 0) {
                printf("attack_x: mapstall a fresh page is not zero\n");
                return 1;
            }
            sys_unmap(va, pages << 12);
            longest = t > longest ? t : longest;
            rounds++;
        }
        printf("attack_x: mapstall pages %lu rounds %lu longest map %ld us\n", pages, rounds, longest / 1000);
        return 0;
    }
    if (!strcmp(how, "stack_unmapped") || !strcmp(how, "stack_restore") ||
        !strcmp(how, "stack_segment") || !strcmp(how, "entry_restore") ||
        !strcmp(how, "entry_unmapped")) {
        uint64_t stack = (uint64_t)(ustack + sizeof(ustack)), entry = (uint64_t)on_upcall;
        if (!strcmp(how, "stack_unmapped")) stack = 0x50000000UL;
        if (!strcmp(how, "stack_restore")) stack = ACT_RESTORE + 4096;
        if (!strcmp(how, "stack_segment")) stack = ACT_SEGMENT + 4096 + 256 * 2;
        if (!strcmp(how, "entry_restore")) {
            // The restore sequence as the upcall entry pops its 14 registers
            // from the upcall stack: give it one page with nothing mapped
            // above, so the pops fault inside the sequence whatever the
            // program's .bss holds (past ustack it is the runtime's state).
            entry = ACT_RESTORE;
            stack = sys_map(0x50000000UL, 4096, PROT_READ | PROT_WRITE) == 0 ? 0x50001000UL : stack;
        }
        if (!strcmp(how, "entry_unmapped")) entry = 0x50000000UL;
        hdr()->upcall_stack = stack;
        hdr()->entry[ACT_PREEMPTED] = entry;
        spin_forever();
    }
    if (!strcmp(how, "unmap_act")) {
        long a = sys_unmap(ACT_SEGMENT, 4096), b = sys_unmap(ACT_RESTORE, 4096);
        long c = sys_map(ACT_RESTORE - 4096, 8192, PROT_READ);
        long d = sys_unmap(USER_BASE, 0x7ff000000000UL);
        printf("attack_x: unmap_act %ld %ld %ld %ld\n", a, b, c, d);
        return a == -EINVAL && b == -EINVAL && c == -EINVAL && d == -EINVAL ? 0 : 1;
    }
    if (!strcmp(how, "yield")) {
        // Nothing but yield for `ms` (200) of guest time: each call must hand
        // the CPU to whoever waits, so next to a busy program one call comes
        // back per tick, not thousands.
        unsigned long ms = argc > 2 ? strtoul(argv[2], 0, 10) : 200, calls = 0;
        long end = sys_clock_ns() + (long)ms * 1000000;
        while (sys_clock_ns() < end) {
            sys_yield();
            calls++;
        }
        printf("attack_x: yield %lu calls in %lu ms\n", calls, ms);
        return 0;
    }
    if (!strcmp(how, "sleep")) {
        // The last instant there is: the deadline must not wrap or be read as
        // signed (which would be the past); this never returns.
        long r = sys_sleep_until(~0UL);
        printf("attack_x: sleep returned %ld\n", r);
        return 1;
    }
    if (!strcmp(how, "write")) {
        // One write of `len` bytes (1 MiB, the most there is): a line of 'x's,
        // whole and in one piece (interrupts are off for all of it); a byte
        // more than WRITE_MAX is -EINVAL.
        unsigned long len = argc > 2 ? strtoul(argv[2], 0, 10) : WRITE_MAX;
        unsigned long va = 0x100000000UL, mapped = (len + 4095) & ~4095UL;
        if (map_all(va, mapped, PROT_READ | PROT_WRITE) < 0) {
            printf("attack_x: write: map %lu bytes failed\n", mapped);
            return 1;
        }
        memset((void *)va, 'x', len);
        if (len)
            ((char *)va)[len - 1] = '\n';
        long t0 = sys_clock_ns();
        long r = sys_write(1, (void *)va, len);
        long want = len <= WRITE_MAX ? (long)len : -EINVAL;
        printf("attack_x: write %lu returned %ld in %ld ms\n", len, r, (sys_clock_ns() - t0) / 1000000);
        return r == want ? 0 : 1;
    }
    printf("attack_x: unknown mode %s\n", how);
    return 1;
}
