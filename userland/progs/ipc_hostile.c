// ipc_hostile: every way a program can get the futex and shared-memory
// calls wrong gets its error code (docs/abi.md), never a kernel fault; and
// the lifetime rules of a region hold. Prints, like badptr,
//   ipc_hostile: ok <what>      or      ipc_hostile: FAIL <what>: got <r>, want <w>
// and exits 1 if any check failed. `ipc_hostile:child:<foreign handle>` is
// the child it spawns with a region (the checks that need two environments).
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERNEL_TEXT   0xffffffff80100000UL
#define DIRECT_MAP    0xffff800000000000UL
#define NONCANONICAL  0x0000800000000000UL
#define UNMAPPED      0x30000000UL
#define SCRATCH       0x20000000UL          // one mapped page; the next is not
#define SHM_AT        0x50000000UL          // where regions get mapped
#define PATTERN       0x5eed5eedU

static int failures;
static const char *who = "ipc_hostile";

static void check(const char *what, long got, long want)
{
    if (got == want) {
        printf("%s: ok %s\n", who, what);
    } else {
        printf("%s: FAIL %s: got %ld (%s), want %ld (%s)\n", who, what, got, errno_name(got),
               want, errno_name(want));
        failures++;
    }
}

static void checkf(long got, long want, const char *fmt, ...)
{
    char what[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    check(what, got, want);
}

static volatile uint32_t *word(uint64_t va)
{
    return (volatile uint32_t *)va;
}

// Addresses no futex may name, and the error each gets.
static const struct { uint64_t va; const char *name; long err; } bad_words[] = {
    { SCRATCH + 1, "unaligned (+1)", -EINVAL },
    { SCRATCH + 2, "unaligned (+2)", -EINVAL },
    { 0, "null", -EFAULT },
    { UNMAPPED, "unmapped", -EFAULT },
    { SCRATCH + 4096, "just past a mapping", -EFAULT },
    { KERNEL_TEXT, "kernel text", -EFAULT },
    { DIRECT_MAP, "direct map", -EFAULT },
    { NONCANONICAL, "non-canonical", -EFAULT },
    { USER_LIMIT - 4, "USER_LIMIT-4", -EFAULT },
    { USER_LIMIT, "USER_LIMIT", -EFAULT },
    { UINT64_MAX - 3, "all ones - 3", -EFAULT },
    { ACT_SEGMENT, "activation header", -EINVAL },
    { ACT_RECORDS, "activation record", -EINVAL },
    { ACT_RESTORE, "restore page", -EINVAL },
};
#define NBAD_WORDS (sizeof(bad_words) / sizeof(bad_words[0]))

static void futex_checks(void)
{
    for (unsigned i = 0; i < NBAD_WORDS; i++) {
        const volatile uint32_t *w = word(bad_words[i].va);
        checkf(sys_futex_wait(w, 0, FUTEX_NO_DEADLINE), bad_words[i].err, "futex_wait(%s)",
               bad_words[i].name);
        checkf(sys_futex_wake(w, 1), bad_words[i].err, "futex_wake(%s)", bad_words[i].name);
    }
    *word(SCRATCH) = 7;
    check("futex_wait(expected above 32 bits)",
          sys_raw(SYS_futex_wait, SCRATCH, 7 | (1L << 32), 0, 0, 0, 0), -EINVAL);
    check("futex_wait(word != expected)", sys_futex_wait(word(SCRATCH), 8, FUTEX_NO_DEADLINE),
          -EAGAIN);
    check("futex_wait(deadline passed)", sys_futex_wait(word(SCRATCH), 7, 1), -ETIMEDOUT);
    uint64_t deadline = (uint64_t)sys_clock_ns() + 20000000;   // 20 ms
    long r = sys_futex_wait(word(SCRATCH), 7, deadline);
    uint64_t now = (uint64_t)sys_clock_ns();
    check("futex_wait(20 ms ahead) times out", r, -ETIMEDOUT);
    check("futex_wait(20 ms ahead) not before its deadline", now >= deadline, 1);
    // Program text is mapped read-only: waiting there is legal (it only reads).
    check("futex_wait(read-only text, wrong value)",
          sys_futex_wait(word(USER_BASE), *word(USER_BASE) + 1, FUTEX_NO_DEADLINE), -EAGAIN);
    check("futex_wake(no waiters)", sys_futex_wake(word(SCRATCH), 1), 0);
    check("futex_wake(n = 0)", sys_futex_wake(word(SCRATCH), 0), 0);
    check("futex_wake(n = all ones)", sys_futex_wake(word(SCRATCH), UINT64_MAX), 0);
}

static const long forged[] = { 0, 1, -1, 255, 256 + SHM_REGIONS_MAX, SHM_GIVEN(7),
                               (long)UINT64_MAX >> 1, 0x7fffffff, 1L << 40 };
#define NFORGED (sizeof(forged) / sizeof(forged[0]))

static void create_checks(void)
{
    check("shm_create(0)", sys_shm_create(0), -EINVAL);
    check("shm_create(SHM_REGION_MAX + 1)", sys_shm_create(SHM_REGION_MAX + 1), -EINVAL);
    check("shm_create(all ones)", sys_shm_create(UINT64_MAX), -EINVAL);
    long h[SHM_REGIONS_MAX];
    int made = 0;
    for (int i = 0; i < SHM_REGIONS_MAX; i++)
        made += (h[i] = sys_shm_create(1)) > 0;
    check("shm_create: SHM_REGIONS_MAX regions", made, SHM_REGIONS_MAX);
    check("shm_create: one region too many", sys_shm_create(1), -ENOSPC);
    int closed = 0;
    for (int i = 0; i < SHM_REGIONS_MAX; i++)
        closed += sys_shm_close(h[i]) == 0;
    check("shm_close: all of them", closed, SHM_REGIONS_MAX);
    check("shm_close(closed handle)", sys_shm_close(h[0]), -EBADF);
    // Bytes: SHM_BYTES_MAX in the largest regions, then not one page more.
    int big = (int)(SHM_BYTES_MAX / SHM_REGION_MAX);
    made = 0;
    for (int i = 0; i < big; i++)
        made += (h[i] = sys_shm_create(SHM_REGION_MAX)) > 0;
    check("shm_create: SHM_BYTES_MAX bytes", made, big);
    check("shm_create: one page more than SHM_BYTES_MAX", sys_shm_create(4096), -ENOSPC);
    for (int i = 0; i < big; i++)
        sys_shm_close(h[i]);
    check("shm_create after closing (slots and bytes came back)",
          (h[0] = sys_shm_create(4096)) > 0, 1);
    sys_shm_close(h[0]);
}

static void handle_checks(void)
{
    for (unsigned i = 0; i < NFORGED; i++) {
        checkf(sys_shm_map(forged[i], SHM_AT, PROT_READ), -EBADF, "shm_map(forged handle %ld)",
               forged[i]);
        checkf(sys_shm_close(forged[i]), -EBADF, "shm_close(forged handle %ld)", forged[i]);
    }
    long old = sys_shm_create(4096);
    sys_shm_close(old);
    long fresh = sys_shm_create(4096);      // same slot, next generation
    check("a stale handle misses the region now in its slot", sys_shm_map(old, SHM_AT, PROT_READ),
          -EBADF);
    check("the new handle differs from the stale one", fresh != old, 1);
    sys_shm_close(fresh);
}

// Places and protections shm_map must refuse.
static const struct { uint64_t va; const char *name; } bad_places[] = {
    { SHM_AT + 8, "unaligned" }, { 0, "null" }, { USER_BASE - 4096, "below USER_BASE" },
    { USER_BASE, "over the program text" }, { SCRATCH, "over a map() page" },
    { USER_STACK_TOP - 4096, "over the stack" }, { ACT_SEGMENT, "activation segment" },
    { ACT_RESTORE, "restore page" }, { ACT_RESTORE - 4096, "ending in the activation area" },
    { USER_LIMIT - 4096, "ending past USER_LIMIT" }, { USER_LIMIT, "USER_LIMIT" },
    { NONCANONICAL, "non-canonical" }, { KERNEL_TEXT, "kernel text" }, { DIRECT_MAP, "direct map" },
};
#define NBAD_PLACES (sizeof(bad_places) / sizeof(bad_places[0]))

static void map_checks(void)
{
    long h = sys_shm_create(2 * 4096);
    for (unsigned i = 0; i < NBAD_PLACES; i++)
        checkf(sys_shm_map(h, bad_places[i].va, PROT_READ | PROT_WRITE), -EINVAL, "shm_map(%s)",
               bad_places[i].name);
    static const long bad_prot[] = { 0, PROT_WRITE, PROT_EXEC, PROT_READ | PROT_EXEC,
                                     PROT_READ | PROT_WRITE | PROT_EXEC, 8, -1 };
    for (unsigned i = 0; i < sizeof(bad_prot) / sizeof(bad_prot[0]); i++)
        checkf(sys_shm_map(h, SHM_AT, bad_prot[i]), -EINVAL, "shm_map(prot %ld)", bad_prot[i]);
    check("shm_map: the size comes back", sys_shm_map(h, SHM_AT, PROT_READ | PROT_WRITE), 2 * 4096);
    check("shm_map twice", sys_shm_map(h, SHM_AT + 0x100000, PROT_READ), -EBUSY);
    check("map() over a shared mapping", sys_map(SHM_AT + 4096, 4096, PROT_READ), -EINVAL);
    check("shm_unmap(not a mapping's start)", sys_shm_unmap(SHM_AT + 4096), -EINVAL);
    check("shm_unmap(anonymous map)", sys_shm_unmap(SCRATCH), -EINVAL);
    check("shm_unmap(0)", sys_shm_unmap(0), -EINVAL);
    check("shm_unmap(kernel)", sys_shm_unmap(KERNEL_TEXT), -EINVAL);
    *word(SHM_AT + 4096) = PATTERN;
    // A plain unmap removes the pages but not the region's frames ...
    check("unmap() of a shared mapping", sys_unmap(SHM_AT, 2 * 4096), 0);
    // ... and what takes their place is not the region's to clear.
    check("map() where it was", sys_map(SHM_AT, 4096, PROT_READ | PROT_WRITE), 0);
    *word(SHM_AT) = 42;
    check("shm_unmap after unmap()", sys_shm_unmap(SHM_AT), 0);
    check("shm_unmap left the anonymous page alone", *word(SHM_AT), 42);
    sys_unmap(SHM_AT, 4096);
    check("shm_unmap twice", sys_shm_unmap(SHM_AT), -EINVAL);
    // Closing the handle while mapped keeps the region alive through the mapping.
    check("shm_map again elsewhere", sys_shm_map(h, SHM_AT + 0x100000, PROT_READ), 2 * 4096);
    check("shm_close while mapped", sys_shm_close(h), 0);
    check("the data outlived unmap() and close", *word(SHM_AT + 0x100000 + 4096), PATTERN);
    check("shm_map(closed handle)", sys_shm_map(h, SHM_AT, PROT_READ), -EBADF);
    check("shm_unmap of the last hold", sys_shm_unmap(SHM_AT + 0x100000), 0);
}

// Frames go back when the last hold goes: more rounds of the largest
// region than memory holds (128 MiB guests) all succeed.
static void lifetime_checks(void)
{
    int rounds = 0;
    for (int i = 0; i < 200; i++) {
        long h = sys_shm_create(SHM_REGION_MAX);
        if (h < 0 || sys_shm_map(h, SHM_AT, PROT_READ | PROT_WRITE) != (long)SHM_REGION_MAX)
            break;
        *word(SHM_AT + SHM_REGION_MAX - 4) = (uint32_t)i;
        if (i % 2)
            sys_shm_close(h);           // either order of letting go
        sys_shm_unmap(SHM_AT);
        if (i % 2 == 0)
            sys_shm_close(h);
        rounds++;
    }
    check("200 rounds of a 1 MiB region leak no frame", rounds, 200);
}

static void gift_checks(void)
{
    char *argv[] = { "ipc_hostile", "child", "0", NULL };
    long big = sys_shm_create(SHM_REGION_MAX), small = sys_shm_create(4096);
    long too_many[SHM_REGIONS_MAX + 1];
    for (int i = 0; i <= SHM_REGIONS_MAX; i++)
        too_many[i] = small;
    check("spawn_shared(more than SHM_REGIONS_MAX)",
          sys_spawn_shared("ipc_hostile", argv, 3, too_many, SHM_REGIONS_MAX + 1), -E2BIG);
    check("spawn_shared(kernel pointer)",
          sys_spawn_shared("ipc_hostile", argv, 3, (const long *)KERNEL_TEXT, 1), -EFAULT);
    check("spawn_shared(unmapped pointer)",
          sys_spawn_shared("ipc_hostile", argv, 3, (const long *)UNMAPPED, 1), -EFAULT);
    long forged_one = SHM_GIVEN(5);
    check("spawn_shared(forged handle)", sys_spawn_shared("ipc_hostile", argv, 3, &forged_one, 1),
          -EBADF);
    long five_mib[] = { big, big, big, big, big };
    check("spawn_shared(more bytes than a child may hold)",
          sys_spawn_shared("ipc_hostile", argv, 3, five_mib, 5), -ENOSPC);
    check("spawn_shared(no such program)", sys_spawn_shared("no-such", argv, 3, &small, 1), -ENOENT);
    sys_shm_close(big);
    // A real gift: the child sees what we wrote and answers in the region.
    // Our handle's value is meaningless to it (a foreign handle).
    check("shm_map(gift)", sys_shm_map(small, SHM_AT, PROT_READ | PROT_WRITE), 4096);
    *word(SHM_AT) = PATTERN;
    char foreign[24];
    snprintf(foreign, sizeof(foreign), "%ld", small + 1);
    argv[2] = foreign;
    long id = sys_spawn_shared("ipc_hostile", argv, 3, &small, 1);
    check("spawn_shared(one region)", id > 0, 1);
    int status = -1;
    check("the child ran its checks", sys_wait(id, &status), id);
    check("the child's checks passed", status, 0);
    check("the child's answer is in the region", *word(SHM_AT + 4), PATTERN + 1);
    check("shm_unmap(gift)", sys_shm_unmap(SHM_AT), 0);
    check("shm_close(gift)", sys_shm_close(small), 0);
}

static int child(long foreign)
{
    who = "ipc_hostile child";
    check("shm_map(SHM_GIVEN(0))", sys_shm_map(SHM_GIVEN(0), SHM_AT, PROT_READ | PROT_WRITE),
          4096);
    check("sees the parent's data", *word(SHM_AT), PATTERN);
    check("SHM_GIVEN(1) was not given", sys_shm_map(SHM_GIVEN(1), SHM_AT + 0x100000,
                                                            PROT_READ), -EBADF);
    check("a handle of its parent's", sys_shm_close(foreign), -EBADF);
    *word(SHM_AT + 4) = PATTERN + 1;
    return failures != 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "child") == 0)
        return child((long)strtoul(argv[2], 0, 0));
    long r = sys_map(SCRATCH, 4096, PROT_READ | PROT_WRITE);
    if (r < 0) {
        printf("ipc_hostile: FAIL map scratch: %s\n", errno_name(r));
        return 1;
    }
    futex_checks();
    create_checks();
    handle_checks();
    map_checks();
    lifetime_checks();
    gift_checks();
    printf("ipc_hostile: %d failed\n", failures);
    return failures != 0;
}
