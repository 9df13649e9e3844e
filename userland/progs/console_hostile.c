// console_hostile: every way a program can get console input wrong gets its
// error (docs/abi.md), never a kernel fault, and the kernel never writes
// outside the ring, whatever the reader does to its ring. Run it first in
// run= (init gives the console to the first program):
//
//   run=console_hostile:<n>,console_hostile:other
//
// The holder checks every bad console_attach / console_wait / console_give
// argument, then attaches a 32-byte ring in the middle of a page filled
// with a guard pattern, prints `console_hostile: send <n>` and reads the
// <n> bytes the host then sends (byte i is pattern(i), below) while it
// attacks its own ring: head and size overwritten, tail ahead of head,
// tail too far behind, the ring left full, the ring's shared region
// unmapped under the kernel. Every byte must arrive once, in order, and the
// guard must stay intact. Then the console is handed down: to a child with
// its spawn, from the child to a grandchild directly, and back to init when
// the grandchild ends; whoever does not hold it gets -EPERM.
//   console_hostile: ok <what>  /  console_hostile: FAIL <what>: got .., want ..
//   console_hostile: received <n> bytes, <k> wrong
//   console_hostile: <n> failed                            (the exit status)
// `console_hostile:other` is a program that never holds the console;
// `console_hostile:child` and `:grandchild` are the ones it is handed to.
#include <check.h>
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERNEL_TEXT  0xffffffff80100000UL
#define NONCANONICAL 0x0000800000000000UL
#define PAGE         0x20000000UL           // the ring's page, guard all around it
#define STRADDLE     0x20010000UL           // one mapped page, the next one not
#define SHM_AT       0x20020000UL
#define SHM_AGAIN    0x20030000UL
#define RING_OFF     1024                   // the ring's place in PAGE
#define RING         32                     // its data bytes
#define GUARD        0xa5
#define MS           1000000UL
#define INPUT_WAIT   (5000 * MS)            // the host sends at once; longer is a lost byte

static const uint8_t rodata_block[64] __attribute__((aligned(16))) = { 1 };
static volatile struct console_ring *ring;
static unsigned long ring_size;
static uint32_t head, tail;                 // what this reader knows, and has consumed
static unsigned long received, wrong;

static uint8_t pattern(unsigned long i)     // the host's tests/test_console.py: the same
{
    return (uint8_t)(33 + (i * 7 + i / 89) % 94);
}

static int guard_intact(void)
{
    const uint8_t *p = (const uint8_t *)PAGE;
    for (unsigned long i = 0; i < 4096; i++)
        if ((i < RING_OFF || i >= RING_OFF + sizeof(struct console_ring) + RING) && p[i] != GUARD)
            return 0;
    return 1;
}

static long attach(uint64_t va, unsigned long size)
{
    long r = sys_console_attach((struct console_ring *)va, size);
    if (r == 0 && va) {                         // (0, 0) detaches: the old ring stays readable
        ring = (volatile struct console_ring *)va;
        ring_size = size;
        head = tail = 0;
    }
    return r;
}

static long wait_for(uint32_t seen, uint64_t ns)
{
    return sys_console_wait(seen, (unsigned long)sys_clock_ns() + ns);
}

// Wait until the kernel has appended past `head`; 0, or the error.
static long more(void)
{
    long r = wait_for(head, INPUT_WAIT);
    if (r < 0)
        return r;
    head = (uint32_t)r;
    return 0;
}

static void consume_one(void)
{
    uint8_t c = ring->data[tail % ring_size];
    wrong += c != pattern(received);
    received++;
    ring->tail = ++tail;
}

// Consume n more bytes of input.
static void consume(unsigned long n)
{
    while (n > 0) {
        if (tail == head) {
            long r = more();
            if (r < 0) {
                check("input keeps arriving", r, 0);
                exit(1);
            }
            continue;
        }
        consume_one();
        n--;
    }
}

static void bad_arguments(void)
{
    uint8_t *page = (uint8_t *)PAGE;
    uint64_t at = PAGE + RING_OFF;
    check("console_wait before any attach", sys_console_wait(0, 0), -EBADF);
    static const unsigned long bad_sizes[] = {
        0, 1, 8, 15, 17, 48, 100, CONSOLE_RING_MAX + 1, 2 * CONSOLE_RING_MAX,
        (1UL << 32) | 64, 1UL << 63, UINT64_MAX,
    };
    char what[96];
    for (unsigned long i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        snprintf(what, sizeof(what), "attach size %lx", bad_sizes[i]);
        check(what, attach(at, bad_sizes[i]), -EINVAL);
    }
    static const struct { uint64_t va; unsigned long size; const char *what; long err; } bad[] = {
        { PAGE + RING_OFF + 1, 32, "unaligned (+1)", -EINVAL },
        { PAGE + RING_OFF + 8, 32, "unaligned (+8)", -EINVAL },
        { 0, 32, "null", -EFAULT },
        { 0x30000000UL, 32, "unmapped", -EFAULT },
        { STRADDLE + 4096 - 32, 64, "straddling into an unmapped page", -EFAULT },
        { KERNEL_TEXT, 32, "kernel text", -EFAULT },
        { NONCANONICAL, 32, "non-canonical", -EFAULT },
        { USER_LIMIT - 16, 32, "running past USER_LIMIT", -EFAULT },
        { 0xfffffffffffffff0UL, 32, "wrapping", -EFAULT },
        { ACT_SEGMENT, 32, "activation segment", -EINVAL },
        { ACT_RESTORE, 32, "activation restore page", -EINVAL },
        { ACT_RESTORE - 32, 64, "running into the activation area", -EINVAL },
        { (uint64_t)rodata_block, 32, "read-only data", -EFAULT },
    };
    for (unsigned long i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(what, sizeof(what), "attach %s", bad[i].what);
        check(what, attach(bad[i].va, bad[i].size), bad[i].err);
    }
    check("attach in program text", attach((uint64_t)bad_arguments & ~15UL, 32), -EFAULT);
    check("console_wait after failed attaches", sys_console_wait(0, 0), -EBADF);
    check("console_wait seen above 32 bits", sys_raw(SYS_console_wait, 1L << 32, 0, 0, 0, 0, 0), -EINVAL);
    long me = sys_getpid();
    check("give to itself", sys_console_give(me), -ESRCH);
    check("give to init (not a child)", sys_console_give(1), -ESRCH);
    check("give to no such environment", sys_console_give(4000), -ESRCH);
    check("give to -1", sys_console_give(-1), -ESRCH);
    check("give to 2^32 + its own id", sys_console_give((1L << 32) + me), -ESRCH);
    int untouched = 1;
    for (int i = 0; i < 4096; i++)
        untouched &= page[i] == GUARD;
    check("failed attaches wrote nothing", untouched, 1);
}

// The reader attacks its own ring; every byte must still arrive exactly once.
static void hostile_ring(unsigned long n)
{
    check("attach a 32-byte ring", attach(PAGE + RING_OFF, RING), 0);
    check("console_wait seen above 32 bits, attached", sys_raw(SYS_console_wait, 1L << 32, 0, 0, 0, 0, 0), -EINVAL);
    printf("console_hostile: send %lu\n", n);
    consume(n / 8);

    ring->head = 0xdeadbeef;                        // lies the kernel must not believe
    ring->size = 0xffffffff;
    long r = wait_for(head, 20 * MS);
    check("console_wait after head and size were overwritten",
          r == -ETIMEDOUT || (r >= 0 && (uint32_t)r != head), 1);
    check("head repaired", ring->head != 0xdeadbeef, 1);
    if (r >= 0)
        head = (uint32_t)r;
    consume(n / 8);
    check("guard intact after size and head lies", guard_intact(), 1);

    ring->tail = tail + RING + 1;                   // consumed bytes that cannot have come
    check("tail ahead of head", wait_for(head, 20 * MS), -EINVAL);
    ring->tail = head - RING - 1;                   // more unread than the ring holds
    check("tail more than size behind", wait_for(head, 20 * MS), -EINVAL);
    check("guard intact after impossible tails", guard_intact(), 1);
    ring->tail = tail;
    consume(n / 8);

    while (head - tail < RING)                      // leave it full
        if (more() < 0)
            break;
    check("ring full", (long)(head - tail), RING);
    check("full: nothing more arrives", wait_for(head, 30 * MS), -ETIMEDOUT);
    check("guard intact after a full ring", guard_intact(), 1);
    consume(n / 8);
}

// The ring in a shared region, unmapped while attached: the kernel must stop
// writing the region's frames, which the handle keeps alive.
static void ring_unmapped(unsigned long n)
{
    check("detach", attach(0, 0), 0);
    head = ring->head;                              // what came before the detach is ours
    while (tail != head)
        consume_one();
    long h = sys_shm_create(4096);
    check("shm_create", h > 0, 1);
    check("shm_map", sys_shm_map(h, SHM_AT, PROT_READ | PROT_WRITE), 4096);
    check("attach in a shared region", attach(SHM_AT, 16), 0);
    consume(n / 8);
    check("shm_unmap the ring", sys_shm_unmap(SHM_AT), 0);
    check("console_wait on an unmapped ring", sys_console_wait(head, 0), -EFAULT);
    check("shm_map the region again", sys_shm_map(h, SHM_AGAIN, PROT_READ | PROT_WRITE), 4096);
    ring = (volatile struct console_ring *)SHM_AGAIN;  // the same ring, seen elsewhere
    head = ring->head;
    while (tail != head)
        consume_one();
    uint8_t before[32];
    memcpy(before, (const void *)SHM_AGAIN, sizeof(before));
    check("attach back in the guarded page", attach(PAGE + RING_OFF, RING), 0);
    consume(n - received);
    check("the unmapped ring's frames were not written",
          memcmp(before, (const void *)SHM_AGAIN, sizeof(before)), 0);
    check("guard intact at the end", guard_intact(), 1);
    printf("console_hostile: received %lu bytes, %lu wrong\n", received, wrong);
    check("every byte once, in order", (long)wrong, 0);
    check("shm_unmap", sys_shm_unmap(SHM_AGAIN), 0);
    check("shm_close", sys_shm_close(h), 0);
}

static long spawn(const char *role)
{
    char *argv[] = { "console_hostile", (char *)role, NULL };
    return sys_spawn("console_hostile", argv, 2);
}

static void not_the_holder(const char *who)
{
    char what[96];
    snprintf(what, sizeof(what), "%s: attach without the console", who);
    check(what, attach(PAGE + RING_OFF, RING), -EPERM);
    snprintf(what, sizeof(what), "%s: detach without the console", who);
    check(what, attach(0, 0), -EPERM);
    snprintf(what, sizeof(what), "%s: console_wait without the console", who);
    check(what, sys_console_wait(0, 0), -EPERM);
    snprintf(what, sizeof(what), "%s: give without the console", who);
    check(what, sys_console_give(CONSOLE_NEXT_CHILD), -EPERM);
}

static void wait_child(long id, const char *what)
{
    int status = -1;
    check(what, sys_wait(id, &status) == id && status == 0, 1);
}

// Down the tree: to a child with its spawn, and from it to a grandchild.
static void hand_down(void)
{
    check("give to the next child", sys_console_give(CONSOLE_NEXT_CHILD), 0);
    long child = spawn("child");
    check("spawn the child", child > 0, 1);
    not_the_holder("parent after the give");
    wait_child(child, "the child held the console and handed it on");
    not_the_holder("parent after the grandchild ended (back to init)");
}

static int child(void)
{
    check("child: holds the console from its first instruction", attach(PAGE + RING_OFF, RING), 0);
    long grandchild = spawn("grandchild");
    check("child: spawn the grandchild", grandchild > 0, 1);
    check("child: give to the grandchild", sys_console_give(grandchild), 0);
    not_the_holder("child after its give");
    wait_child(grandchild, "child: the grandchild held the console");
    return check_failures;
}

static int grandchild(void)
{
    sys_sleep_until(sys_clock_ns() + 20 * MS);      // its parent gives after the spawn returns
    check("grandchild: attach", attach(PAGE + RING_OFF, RING), 0);
    return check_failures;
}

static void map_pages(void)
{
    if (sys_map(PAGE, 4096, PROT_READ | PROT_WRITE) < 0 ||
        sys_map(STRADDLE, 4096, PROT_READ | PROT_WRITE) < 0) {
        puts("console_hostile: FAIL map");
        exit(1);
    }
    memset((void *)PAGE, GUARD, 4096);
}

int main(int argc, char **argv)
{
    const char *role = argc > 1 ? argv[1] : "";
    map_pages();
    if (strcmp(role, "other") == 0) {
        not_the_holder("other");
        return check_failures;
    }
    if (strcmp(role, "child") == 0)
        return child();
    if (strcmp(role, "grandchild") == 0)
        return grandchild();
    unsigned long n = strtoul(role, 0, 0);
    if (n < 8 * RING)
        n = 8 * RING;
    bad_arguments();
    hostile_ring(n);
    ring_unmapped(n);
    hand_down();
    printf("console_hostile: %d failed\n", check_failures);
    return check_failures;
}
