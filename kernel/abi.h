// The system-call ABI: the one header both the kernel and user programs
// (userland/include/revenant.h) compile against. #defines only, so
// assembly can include it too, except for the activation structures at the
// end (C only). docs/abi.md describes every call, docs/activations.md the
// activation segment.
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
#define SYS_act_resume  12  // (record)                     never returns (activations)
#define SYS_act_enable  13  // () -> 0                      leave the disabled state
#define SYS_act_stats   14  // (&struct act_stats) -> 0
#define SYS_futex_wait  15  // (&word, expected, deadline_ns or 0) -> 0    blocking, restartable
#define SYS_futex_wake  16  // (&word, n) -> waiters woken
#define SYS_shm_create  17  // (size) -> handle
#define SYS_shm_map     18  // (handle, va, prot) -> region size in bytes
#define SYS_shm_unmap   19  // (va) -> 0
#define SYS_shm_close   20  // (handle) -> 0
#define SYS_spawn_shared 21 // (name, argv, argc, handles, nhandles) -> env id
#define SYS_act_wait    22  // (deadline_ns or 0, seen_seq) -> record or 0   restartable idle (activations)
// Persistence (docs/persistence.md).
#define SYS_checkpoint  23  // () -> generation committed, -ENODEV (no disk), -EIO, -ENOSPC
#define SYS_outcommit   24  // (mode: OUTCOMMIT_OFF/ON/QUERY) -> the caller's mode before
// Console input (docs/restart.md, "Input is state too"); numbered from 32 so
// that calls added on other branches meanwhile (22..31) do not collide.
#define SYS_console_attach 32   // (&struct console_ring, size) -> 0       the console holder only
#define SYS_console_wait   33   // (seen_head, deadline_ns or 0) -> head    blocking, restartable
#define SYS_console_give   34   // (child id, or 0: the next child spawned) -> 0
#define SYS_COUNT       35

#define EPERM        1
#define ENOENT       2
#define ESRCH        3
#define EIO          5  // blk: the disk failed, timed out or misbehaved
#define E2BIG        7
#define ENOEXEC      8
#define EBADF        9
#define ECHILD      10
#define EAGAIN      11  // futex_wait: the word is not the expected value
#define ENOMEM      12
#define EFAULT      14
#define EBUSY       16  // shm_map: this handle's region is mapped already
#define ENODEV      19  // console_attach: no interrupt route for console input
#define EINVAL      22
#define ENOSPC      28  // shm: the environment's region or byte limit
#define ENAMETOOLONG 36
#define ENOSYS      38
#define ETIMEDOUT  110  // futex_wait: the deadline has passed

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
// map() maps at most this much per call (-E2BIG beyond): every fresh page is
// zeroed with interrupts off, ~6.6 us each under TCG, so 128 pages stay under
// a 1 kHz tick. map_all() in the user library splits a larger range.
#define MAP_MAX     (512UL << 10)

// Futexes (docs/restart.md): a deadline of 0 means none.
#define FUTEX_NO_DEADLINE 0

// Shared memory regions (docs/abi.md). A handle is meaningful only in the
// environment that holds it, like a file descriptor. Every region an
// environment holds, by a handle or a mapping, counts against its limits.
#define SHM_REGION_MAX   (1UL << 20)    // bytes in one region (rounded up to pages)
#define SHM_REGIONS_MAX  8              // regions one environment holds at once
#define SHM_BYTES_MAX    (4UL << 20)    // bytes of regions one environment holds
// The handle a child finds for the i-th region spawn_shared handed it.
#define SHM_GIVEN(i)     ((1L << 8) | (i))

// outcommit(mode): whether the caller's console output is held until the
// next checkpoint commits (docs/persistence.md, "Output commit").
#define OUTCOMMIT_OFF    0      // this environment's output goes out at once
#define OUTCOMMIT_ON     1      // held until committed (the default while output commit is on)
#define OUTCOMMIT_QUERY  2      // change nothing

// Console input: a ring in the reader's own memory that the kernel appends
// received bytes to (docs/abi.md). head and tail count bytes since
// console_attach and wrap at 2^32; byte n is data[n % size]. The kernel
// writes head (after the bytes) and size and never trusts either back; it
// reads only tail, and refuses a tail that is ahead of head or more than
// size behind it.
#define CONSOLE_RING_MIN   16           // data bytes; a power of two in MIN..MAX
#define CONSOLE_RING_MAX   65536
#define CONSOLE_NEXT_CHILD 0            // console_give: to the caller's next spawn

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
#define ACT_SEGMENT     0x3FE00000UL            // activation segment, 2 MiB
#endif
#ifndef ACT_SEGMENT_SIZE
#define ACT_SEGMENT_SIZE 0x200000UL
#endif
#ifndef ACT_RESTORE
#define ACT_RESTORE     0x3FC00000UL            // kernel restore-sequence page
#endif

// ---------------------------------------------------------------- activations
// docs/activations.md. Every environment has an activation segment at
// ACT_SEGMENT: a header page, then ACT_RECORD_SIZE-byte records. A timer
// interrupt that lands in an enabled, registered program saves the
// interrupted state into a free record and enters the program at
// entry[ACT_PREEMPTED] with rdi = record address, rsi = reason, rdx = vproc
// index, rsp = upcall_stack - 8. act_resume(record) goes back to it through
// the restore sequence at ACT_RESTORE.
#define ACT_MAGIC        0x31544341U    // "ACT1" in memory order
#define ACT_VERSION      1
#define ACT_HEADER_SIZE  4096
#define ACT_RECORDS      (ACT_SEGMENT + ACT_HEADER_SIZE)     // record 0
#define ACT_RECORD_SIZE  256
#define ACT_POOL_DEFAULT 64                                  // kernel option act_pool=N
#define ACT_POOL_MAX     ((ACT_SEGMENT_SIZE - ACT_HEADER_SIZE) / ACT_RECORD_SIZE)   // 8176
#define ACT_NENTRIES     8

// Upcall reasons = indices into act_header.entry (0..3 reserved).
#define ACT_PREEMPTED    4      // a timer interrupt: the record holds the thread
#define ACT_BLOCKED      5      // the thread's syscall must wait: the record holds it, rewound
#define ACT_UNBLOCKED    6      // a blocked record (in r10) may rerun its syscall
#define ACT_RESTARTED    7      // an in-place restart: every wait dropped, every record handed back

#ifndef __ASSEMBLER__
#include <stdint.h>

// The first page of the segment. The program writes entry[] and
// upcall_stack; the kernel writes the rest (a mirror for the program to
// read: the kernel's own copy of every number lives in kernel memory).
struct act_header {
    uint32_t magic;             // ACT_MAGIC                             kernel
    uint32_t version;           // ACT_VERSION                           kernel
    uint64_t entry[ACT_NENTRIES];   // upcall entry per reason, 0 = none  program
    uint64_t upcall_stack;      // top of the scheduler's stack, 16-aligned  program
    uint32_t pool_size;         // records in the pool                   kernel
    uint32_t disabled;          // 1 while the upcall handler runs       kernel
    uint64_t delivered;         // counters as in struct act_stats       kernel
    uint64_t redelivered;
    uint64_t resumed;
    uint64_t freed;
    uint64_t disabled_saves;
    uint64_t free_records;
};

// One saved thread. The first 160 bytes are what the restore sequence pops:
// 15 general registers, then an iretq frame (rip cs rflags rsp ss). The
// FPU/SSE registers are not saved (user code is built without them).
struct act_record {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t rip, cs, rflags, rsp, ss;
    uint32_t reason;            // ACT_PREEMPTED, ...
    uint32_t index;             // this record's number in the pool
    uint32_t vproc;             // the virtual processor it was taken from
    uint32_t flags;             // 0 (reserved)
    uint64_t seq;               // delivery number, counting from 1 per environment
    uint64_t reserved[9];
};

// act_stats(): the kernel's authoritative counters.
struct act_stats {
    uint64_t pool_size;         // records in the pool
    uint64_t free_records;      // records free now
    uint64_t delivered;         // upcalls with a newly filled record
    uint64_t redelivered;       // upcalls re-delivering a record whose restore was cut short
    uint64_t resumed;           // successful act_resume calls
    uint64_t freed;             // records whose restore completed and were freed
    uint64_t disabled_saves;    // interrupts while disabled: saved in the kernel, resumed directly
    uint64_t blocked;           // times a vproc really blocked in wait/sleep_until/futex_wait (stopped, call rewound)
    // Blocking calls as upcalls (docs/activations.md, "Blocking calls"):
    uint64_t blocked_upcalls;   // blocked upcalls: a thread's call had to wait, its record took the wait
    uint64_t unblocked_upcalls; // unblocked upcalls: a woken record handed back
    uint64_t unblocked_waits;   // woken records handed back as act_wait's result instead
    uint64_t idle_waits;        // times act_wait stopped the vproc (nothing to run)
    uint64_t cancelled;         // blocked records resumed before their wake: the call reran
    uint64_t blocked_now;       // records waiting in the kernel right now
};

// The header of a console ring, 16-byte aligned; the data follows it.
struct console_ring {
    uint32_t head;              // bytes the kernel appended                kernel
    uint32_t tail;              // bytes the reader consumed                reader
    uint32_t size;              // capacity (console_attach's size)         kernel
    uint32_t reserved;          // 0                                        kernel
    uint8_t data[];
};

_Static_assert(sizeof(struct console_ring) == 16, "console_ring layout");
_Static_assert(sizeof(struct act_record) == ACT_RECORD_SIZE, "act_record layout");
_Static_assert(__builtin_offsetof(struct act_record, reason) == 160, "act_record layout");
_Static_assert(__builtin_offsetof(struct act_header, pool_size) == 80, "act_header layout");
_Static_assert(sizeof(struct act_header) == 136, "act_header layout");
#endif
#endif
