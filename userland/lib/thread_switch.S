// The few instructions of the thread runtime that C cannot express: parking
// a thread (callee-saved registers on its own stack), the upcall entry, and
// the activation system calls.
//
// A parked thread's stack, from the saved rsp up:
//   r15 r14 r13 r12 rbx rbp, return address
// Everything else is dead across the call that parked it (SysV ABI), and a
// fresh thread gets the same shape with thread_start as the return address.
#include "../../kernel/abi.h"

// Save and restore that shape; the return address is the caller's.
.macro park
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
.endm

.macro unpark
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
.endm

    .text

// void uctx_switch(uint64_t *save_rsp, uint64_t load_rsp)
    .globl uctx_switch
    .type uctx_switch, @function
uctx_switch:
    park
    mov %rsp, (%rdi)
    mov %rsi, %rsp
uctx_restore:
    unpark
    ret
    .size uctx_switch, . - uctx_switch

// void uctx_switch_to_record(uint64_t *save_rsp, struct act_record *rec)
// Park the caller, then leave the critical section and resume `rec`. An
// upcall that lands between the two (after the flag is cleared, before the
// syscall has entered the kernel) must not treat the interrupted code as a
// thread: thread_upcall.c checks for [resume_tail_start, resume_tail_end)
// and resumes it at once, exactly as inside the critical section.
    .globl uctx_switch_to_record
    .type uctx_switch_to_record, @function
uctx_switch_to_record:
    park
    mov %rsp, (%rdi)
    mov %rsi, %rdi
    mov $SYS_act_resume, %eax
    movb $0, thread_in_sched(%rip)
    .globl resume_tail_start
resume_tail_start:
    syscall                     // does not return
    .globl resume_tail_end
resume_tail_end:
    ud2
    .size uctx_switch_to_record, . - uctx_switch_to_record

// void uctx_enter_enabled(uint64_t load_rsp): from the upcall handler (the
// vproc is disabled), continue a parked thread. act_enable runs on the
// thread's own stack, so an interrupt right after it is an ordinary
// preemption of that thread.
    .globl uctx_enter_enabled
    .type uctx_enter_enabled, @function
uctx_enter_enabled:
    mov %rdi, %rsp
    mov $SYS_act_enable, %eax
    syscall
    jmp uctx_restore
    .size uctx_enter_enabled, . - uctx_enter_enabled

// The upcall entry registered in the activation header: rdi = record,
// rsi = reason, rdx = vproc, rsp = the upcall stack. Realign (whatever the
// kernel left) and start a fresh outermost frame for backtraces.
    .globl thread_upcall_entry
    .type thread_upcall_entry, @function
thread_upcall_entry:
    xor %ebp, %ebp
    and $-16, %rsp
    call thread_upcall
    ud2
    .size thread_upcall_entry, . - thread_upcall_entry

// entry[ACT_RESTARTED], the same way into thread_restarted.
    .globl thread_restarted_entry
    .type thread_restarted_entry, @function
thread_restarted_entry:
    xor %ebp, %ebp
    and $-16, %rsp
    call thread_restarted
    ud2
    .size thread_restarted_entry, . - thread_restarted_entry

// entry[ACT_BLOCKED], the same way into thread_blocked.
    .globl thread_blocked_entry
    .type thread_blocked_entry, @function
thread_blocked_entry:
    xor %ebp, %ebp
    and $-16, %rsp
    call thread_blocked
    ud2
    .size thread_blocked_entry, . - thread_blocked_entry

// entry[ACT_UNBLOCKED]: the record handed back comes in r10 (the fourth
// argument, as for system calls); C wants it in rcx.
    .globl thread_unblocked_entry
    .type thread_unblocked_entry, @function
thread_unblocked_entry:
    xor %ebp, %ebp
    and $-16, %rsp
    mov %r10, %rcx
    call thread_unblocked
    ud2
    .size thread_unblocked_entry, . - thread_unblocked_entry

// A fresh thread's first "return": thread_start(void) in thread.c finds its
// function through thread_current.

.macro ACTCALL name, nr
    .globl \name
    .type \name, @function
\name:
    mov $\nr, %eax
    syscall
    ret
    .size \name, . - \name
.endm

ACTCALL act_resume, SYS_act_resume
ACTCALL act_enable, SYS_act_enable
ACTCALL act_stats,  SYS_act_stats
ACTCALL act_wait,   SYS_act_wait

    .section .note.GNU-stack, "", @progbits
