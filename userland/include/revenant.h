// The Revenant system-call interface as user programs see it: numbers,
// errors, the address-space layout, and one stub per call (lib/syscall.S).
// docs/abi.md is the prose version of this file.
#ifndef REVENANT_H
#define REVENANT_H
#include <stdint.h>

// The numbers, errnos and layout constants live in kernel/abi.h, the one
// file both sides compile against, so they cannot drift apart.
#include "../../kernel/abi.h"

// Raw stubs: each returns the kernel's rax (negative = -errno).
long sys_exit(long status) __attribute__((noreturn));
long sys_write(long fd, const void *buf, unsigned long len);
long sys_yield(void);
long sys_getpid(void);
long sys_clock_ns(void);
long sys_map(unsigned long va, unsigned long len, long prot);
long sys_unmap(unsigned long va, unsigned long len);
// map() of any length: MAP_MAX at a time; on an error nothing it mapped stays.
long map_all(unsigned long va, unsigned long len, long prot);
long sys_spawn(const char *name, char *const argv[], long argc);
long sys_wait(long id, int *status);
long sys_poweroff(long ok);
long sys_sleep_until(unsigned long deadline_ns);
long sys_cmdline(char *buf, unsigned long len);
// Blocking, restartable: -EAGAIN when *word != expected (also how a wake
// shows: the woken call reruns and finds the word changed), -ETIMEDOUT at
// the absolute deadline (FUTEX_NO_DEADLINE: none). Prefer futex_wait in
// <thread.h>, which lets the program's other threads run meanwhile.
long sys_futex_wait(const volatile uint32_t *word, uint32_t expected, unsigned long deadline_ns);
long sys_futex_wake(const volatile uint32_t *word, unsigned long n);
long sys_shm_create(unsigned long size);
long sys_shm_map(long handle, unsigned long va, long prot);
long sys_shm_unmap(unsigned long va);
long sys_shm_close(long handle);
long sys_spawn_shared(const char *name, char *const argv[], long argc, const long *handles,
                      long nhandles);
// Console input (docs/abi.md): the holder of the console attaches a ring in
// its own memory (size: data bytes, a power of two in CONSOLE_RING_MIN..MAX;
// ring 0 and size 0 detach); the kernel appends every received byte to it.
// console_wait returns head once it is not `seen` (blocking, restartable;
// -ETIMEDOUT at the absolute deadline, FUTEX_NO_DEADLINE: none).
long sys_console_attach(struct console_ring *ring, unsigned long size);
long sys_console_wait(uint32_t seen, unsigned long deadline_ns);
long sys_console_give(long id);
// Persistence (docs/persistence.md): checkpoint() writes one now and returns
// its generation once committed (-ENODEV without a disk); outcommit(mode)
// turns holding this program's output until a commit off or on
// (OUTCOMMIT_OFF/ON/QUERY) and returns the mode before.
long sys_checkpoint(void);
long sys_outcommit(long mode);

// Any number, any arguments: for the fuzzer.
long sys_raw(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

// The name of an errno value ("EFAULT"), or "E?" for one we do not know.
const char *errno_name(long err);
#endif
