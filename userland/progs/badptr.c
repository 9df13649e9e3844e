// badptr: every system call that takes a pointer must answer a bad one
// with -EFAULT (and the kernel must not fault), and must touch nothing
// outside the buffer it was given. Prints one line per check,
//   badptr: ok <what>      or      badptr: FAIL <what>: got <r>, want <w>
// and exits 1 if any check failed. The scratch page holds "LEAK" over and
// over: the suite fails if any of it reaches the console (a write that
// failed with -EFAULT must have printed nothing).
#include <check.h>
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KERNEL_TEXT   0xffffffff80100000UL
#define DIRECT_MAP    0xffff800000000000UL
#define NONCANONICAL  0x0000800000000000UL  // first address past the lower half
#define UNMAPPED      0x30000000UL          // nothing maps here
#define SCRATCH       0x20000000UL          // one mapped page; the next is not
#define WRITE_CHUNK   256                   // kernel/syscall.c copies writes in pieces this big
#define GUARD         0x5a
#define UNTOUCHED     999                   // no status wait() stores (0..255, 256 + vector, 512)

static const uintptr_t bad[] = { 0, KERNEL_TEXT, DIRECT_MAP, NONCANONICAL, UNMAPPED,
                                 USER_LIMIT - 1, UINTPTR_MAX };
static const char *const bad_name[] = { "null", "kernel text", "direct map", "non-canonical",
                                        "unmapped", "USER_LIMIT-1", "all ones" };
#define NBAD (sizeof(bad) / sizeof(bad[0]))

static void write_checks(void)
{
    char what[96];
    for (unsigned i = 0; i < NBAD; i++) {
        snprintf(what, sizeof(what), "write(1, %s, 8)", bad_name[i]);
        check(what, sys_write(1, (const void *)bad[i], 8), -EFAULT);
    }
    // Starts in a mapped page, ends in an unmapped one.
    check("write(1, straddling the end of a mapping, 16)",
          sys_write(1, (const void *)(SCRATCH + 4096 - 8), 16), -EFAULT);
    // All or nothing beyond one piece of the kernel's copy loop: the first
    // chunk and more are readable, the tail is not. Nothing may be printed.
    check("write(1, 2 chunks readable then an unmapped page, 3 chunks)",
          sys_write(1, (const void *)(SCRATCH + 4096 - 2 * WRITE_CHUNK), 3 * WRITE_CHUNK), -EFAULT);
    // A length that wraps the address space must not wrap the check.
    check("write(1, scratch, 2^64-1)", sys_write(1, (const void *)SCRATCH, UINT64_MAX), -EINVAL);
    check("write(7, scratch, 1)", sys_write(7, (const void *)SCRATCH, 1), -EBADF);
}

static void cmdline_checks(void)
{
    char what[96];
    for (unsigned i = 0; i < NBAD; i++) {
        snprintf(what, sizeof(what), "cmdline(%s, 64)", bad_name[i]);
        check(what, sys_cmdline((char *)bad[i], 64), -EFAULT);
    }
    // Our own code is mapped but read-only: the kernel must not write it.
    check("cmdline(program text, 64)", sys_cmdline((char *)USER_BASE, 64), -EFAULT);
}

// cmdline(buf, n) writes at most n bytes (n - 1 of the line and a NUL):
// the byte after them, a guard, stays as it was.
static void cmdline_bound_checks(void)
{
    static char full[1024];
    long len = sys_cmdline(full, sizeof(full));
    if (!check("cmdline longer than the 8-byte buffer below", len > 8, 1))
        return;
    static const unsigned long sizes[] = { 0, 1, 2, 8 };
    char buf[16], what[96];
    for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        unsigned long n = sizes[k];
        memset(buf, GUARD, sizeof(buf));
        snprintf(what, sizeof(what), "cmdline(buf, %lu) returns the full length", n);
        check(what, sys_cmdline(buf, n), len);
        unsigned long copied = n ? n - 1 : 0;
        snprintf(what, sizeof(what), "cmdline(buf, %lu) copies the first %lu bytes", n, copied);
        check(what, memcmp(buf, full, copied), 0);
        if (n) {
            snprintf(what, sizeof(what), "cmdline(buf, %lu) ends them with a NUL at buf[%lu]", n, n - 1);
            check(what, buf[n - 1], 0);
        }
        snprintf(what, sizeof(what), "cmdline(buf, %lu) leaves the guard at buf[%lu]", n, n);
        check(what, (unsigned char)buf[n], GUARD);
    }
}

static void spawn_checks(void)
{
    char what[96];
    char *argv[] = { "hello", NULL };
    for (unsigned i = 0; i < NBAD; i++) {
        snprintf(what, sizeof(what), "spawn(%s, argv, 1)", bad_name[i]);
        check(what, sys_spawn((const char *)bad[i], argv, 1), -EFAULT);
        snprintf(what, sizeof(what), "spawn(\"hello\", %s, 1)", bad_name[i]);
        check(what, sys_spawn("hello", (char *const *)bad[i], 1), -EFAULT);
        char *bad_arg[] = { (char *)bad[i], NULL };
        snprintf(what, sizeof(what), "spawn(\"hello\", {%s}, 1)", bad_name[i]);
        check(what, sys_spawn("hello", bad_arg, 1), -EFAULT);
    }
}

// wait() with a live child, so the only thing wrong is the status pointer.
static void wait_checks(void)
{
    char what[96];
    char *argv[] = { "hello", NULL };
    for (unsigned i = 1; i < NBAD; i++) {          // wait(id, NULL) is allowed
        long id = sys_spawn("hello", argv, 1);
        if (id < 0) {
            check("spawn(\"hello\") for a wait check", id, 0);
            return;
        }
        snprintf(what, sizeof(what), "wait(child, %s)", bad_name[i]);
        check(what, sys_wait(id, (int *)bad[i]), -EFAULT);
        // Copy first, reap second: the failed wait left the child, status and all.
        int status = UNTOUCHED;
        snprintf(what, sizeof(what), "wait(child, &status) after wait(child, %s)", bad_name[i]);
        check(what, sys_wait(id, &status), id);
        snprintf(what, sizeof(what), "its status after wait(child, %s)", bad_name[i]);
        check(what, status, 0);
    }
}

// Not a pointer check, but the same kind of promise: map() never hands out
// a page that is both writable and executable.
static void map_checks(void)
{
    check("map(W|X) refused (W^X)",
          sys_map(UNMAPPED, 4096, PROT_READ | PROT_WRITE | PROT_EXEC), -EINVAL);
    check("map(kernel half)", sys_map(KERNEL_TEXT, 4096, PROT_READ), -EINVAL);
    // Bounded work per call: more than MAP_MAX is refused before any page is
    // zeroed, and exactly MAP_MAX is fine (map_all splits larger ranges).
    check("map(MAP_MAX + a page)", sys_map(UNMAPPED, MAP_MAX + 4096, PROT_READ), -E2BIG);
    check("map(MAP_MAX)", sys_map(UNMAPPED, MAP_MAX, PROT_READ), 0);
    check("unmap(MAP_MAX)", sys_unmap(UNMAPPED, MAP_MAX), 0);
    check("map_all(4 * MAP_MAX)", map_all(UNMAPPED, 4 * MAP_MAX, PROT_READ), 0);
    check("unmap(4 * MAP_MAX)", sys_unmap(UNMAPPED, 4 * MAP_MAX), 0);
}

int main(void)
{
    long r = sys_map(SCRATCH, 4096, PROT_READ | PROT_WRITE);
    if (r < 0) {
        printf("badptr: FAIL map scratch: %s\n", errno_name(r));
        return 1;
    }
    for (int i = 0; i < 4096; i += 4)
        memcpy((char *)SCRATCH + i, "LEAK", 4);
    write_checks();
    cmdline_checks();
    cmdline_bound_checks();
    spawn_checks();
    wait_checks();
    map_checks();
    printf("badptr: %d failed\n", check_failures);
    return check_failures != 0;
}
