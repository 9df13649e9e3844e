// System-call stubs. The kernel's ABI is the C calling convention except
// for the fourth argument (rcx is clobbered by `syscall`, so it travels in
// r10) and the number in rax.
//
// Every stub puts all of its inputs in registers *before* the `syscall`
// instruction and reads nothing but rax after it. That is what makes the
// kernel's restart rule work: a blocking call is rewound to the `syscall`
// instruction itself (rip -= 2) with the argument registers untouched, so
// running it again from there is exactly the original call.
#include "../../kernel/abi.h"

.macro STUB name, nr
    .text
    .globl \name
    .type \name, @function
\name:
    mov $\nr, %eax
    mov %rcx, %r10
    syscall
    ret
    .size \name, . - \name
.endm

STUB sys_exit,        SYS_exit
STUB sys_write,       SYS_write
STUB sys_yield,       SYS_yield
STUB sys_getpid,      SYS_getpid
STUB sys_clock_ns,    SYS_clock_ns
STUB sys_map,         SYS_map
STUB sys_unmap,       SYS_unmap
STUB sys_spawn,       SYS_spawn
STUB sys_wait,        SYS_wait
STUB sys_poweroff,    SYS_poweroff
STUB sys_sleep_until, SYS_sleep_until
STUB sys_cmdline,     SYS_cmdline
STUB sys_futex_wait,  SYS_futex_wait
STUB sys_futex_wake,  SYS_futex_wake
STUB sys_shm_create,  SYS_shm_create
STUB sys_shm_map,     SYS_shm_map
STUB sys_shm_unmap,   SYS_shm_unmap
STUB sys_shm_close,   SYS_shm_close
STUB sys_spawn_shared, SYS_spawn_shared
STUB sys_console_attach, SYS_console_attach
STUB sys_console_wait, SYS_console_wait
STUB sys_console_give, SYS_console_give
STUB sys_checkpoint,  SYS_checkpoint
STUB sys_outcommit,   SYS_outcommit

// long sys_raw(nr, a0, a1, a2, a3, a4, a5): shift the C arguments down one
// register; the sixth comes from the stack.
    .globl sys_raw
    .type sys_raw, @function
sys_raw:
    mov %rdi, %rax
    mov %rsi, %rdi
    mov %rdx, %rsi
    mov %rcx, %rdx
    mov %r8, %r10
    mov %r9, %r8
    mov 8(%rsp), %r9
    syscall
    ret
    .size sys_raw, . - sys_raw

    .section .note.GNU-stack, "", @progbits
