// badptr: every system call that takes a pointer must answer a bad one
// with -EFAULT (and the kernel must not fault). Prints one line per check,
//   badptr: ok <what>      or      badptr: FAIL <what>: got <r>, want <w>
// and exits 1 if any check failed.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KERNEL_TEXT   0xffffffff80100000UL
#define DIRECT_MAP    0xffff800000000000UL
#define NONCANONICAL  0x0000800000000000UL  // first address past the lower half
#define UNMAPPED      0x30000000UL          // nothing maps here
#define SCRATCH       0x20000000UL          // one mapped page; the next is not

static int failures;

static void check(const char *what, long got, long want)
{
    if (got == want) {
        printf("badptr: ok %s\n", what);
    } else {
        printf("badptr: FAIL %s: got %ld (%s), want %ld (%s)\n", what, got, errno_name(got),
               want, errno_name(want));
        failures++;
    }
}

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
        // Reap it if the failed wait did not (either is fine).
        int status;
        long r = sys_wait(id, &status);
        if (r != id && r != -ECHILD)
            check("wait(child, &status) after the failed wait", r, id);
    }
}

// Not a pointer check, but the same kind of promise: map() never hands out
// a page that is both writable and executable.
static void map_checks(void)
{
    check("map(W|X) refused (W^X)",
          sys_map(UNMAPPED, 4096, PROT_READ | PROT_WRITE | PROT_EXEC), -EINVAL);
    check("map(kernel half)", sys_map(KERNEL_TEXT, 4096, PROT_READ), -EINVAL);
}

int main(void)
{
    long r = sys_map(SCRATCH, 4096, PROT_READ | PROT_WRITE);
    if (r < 0) {
        printf("badptr: FAIL map scratch: %s\n", errno_name(r));
        return 1;
    }
    memset((void *)SCRATCH, 'x', 4096);
    write_checks();
    cmdline_checks();
    spawn_checks();
    wait_checks();
    map_checks();
    printf("badptr: %d failed\n", failures);
    return failures != 0;
}
