// The system-call ABI: the one header both the kernel and user programs
// (userland/include/revenant.h) compile against. Plain #defines only, so
// assembly can include it too. docs/abi.md describes every call.
//
// `syscall`: rax = number; arguments rdi, rsi, rdx, r10, r8, r9; result in
// rax, negative = -errno; rcx and r11 are clobbered, everything else kept.
#ifndef ABI_H
#define ABI_H

#define SYS_exit        0   // (status)                    never returns
#define SYS_write       1   // (fd, buf, len) -> len
#define SYS_yield       2   // () -> 0
#define SYS_getpid      3   // () -> env id
#define SYS_clock_ns    4   // () -> ns since boot, monotonic
#define SYS_map         5   // (va, len, prot) -> 0
#define SYS_unmap       6   // (va, len) -> 0
#define SYS_spawn       7   // (name, argv, argc) -> env id
#define SYS_wait        8   // (id or -1, &status) -> id    blocking, restartable
#define SYS_poweroff    9   // (ok)                         env 1 only
#define SYS_sleep_until 10  // (deadline_ns) -> 0           blocking, restartable
#define SYS_cmdline     11  // (buf, len) -> len
#define SYS_COUNT       12

#define EPERM        1
#define ENOENT       2
#define ESRCH        3
#define E2BIG        7
#define ENOEXEC      8
#define EBADF        9
#define ECHILD      10
#define ENOMEM      12
#define EFAULT      14
#define EINVAL      22
#define ENAMETOOLONG 36
#define ENOSYS      38

// The status wait() reports. exit(n) gives n & 0xff (0..255). An
// environment the kernel killed gets a value above that range, so the two
// never collide and a kill is never 0 ("success"):
//   STATUS_KILLED(v)     a CPU exception, vector v, in user mode (page
//                        fault 14 -> 270, GP 13 -> 269, divide error -> 256)
//   STATUS_KILLED_OTHER  killed for any other reason (e.g. an invalid frame)
#define STATUS_KILLED_BASE   256
#define STATUS_KILLED(v)     (STATUS_KILLED_BASE + (v))
#define STATUS_KILLED_OTHER  512
#define STATUS_WAS_KILLED(s) ((s) >= STATUS_KILLED_BASE)

// map() protection bits (no PROT_EXEC: the page is NX).
#define PROT_READ   1
#define PROT_WRITE  2
#define PROT_EXEC   4

#define WRITE_MAX   (1UL << 20)     // write() refuses longer buffers: -EINVAL

// The user address space. The kernel's memlayout.h may define the same
// names; these guards keep one definition.
#ifndef USER_BASE
#define USER_BASE       0x400000UL              // programs link here; below is unmapped
#endif
#ifndef USER_LIMIT
#define USER_LIMIT      0x00007ffffffff000UL    // first address user space cannot use
#endif
#ifndef USER_STACK_TOP
#define USER_STACK_TOP  0x00007fffffff0000UL
#endif
#ifndef USER_STACK_SIZE
#define USER_STACK_SIZE 0x10000UL               // 64 KiB, grows down from USER_STACK_TOP
#endif
#ifndef ACT_SEGMENT
#define ACT_SEGMENT     0x3FE00000UL            // activation segment (issue 4), 2 MiB
#endif
#ifndef ACT_SEGMENT_SIZE
#define ACT_SEGMENT_SIZE 0x200000UL
#endif
#ifndef ACT_RESTORE
#define ACT_RESTORE     0x3FC00000UL            // kernel restore-sequence page (issue 4)
#endif
#endif
