// The `syscall` entry and the two ways back to user space.
//
// Entry (syscall_entry, the LSTAR target). The CPU has put the user RIP in
// RCX and RFLAGS in R11, masked RFLAGS with FMASK (IF, TF, DF, AC, NT clear)
// and switched CS/SS, nothing else: RSP is still the user's, GS.base too.
// We swap in the kernel GS, then build a complete struct trapframe (trap.h)
// *in the running vproc*, at cpu->frame_top, in exactly the shape an
// interrupt from user mode leaves there: rip = RCX, rflags = R11, user
// CS/SS, vector = VEC_SYSCALL (this frame came from a syscall instruction,
// rip - 2 is that instruction). Only then do we move to the CPU's kernel
// stack and call C. The vproc's frame is therefore always the complete user
// state: the scheduler, the restart rule (rip -= 2) and, later, activations
// (copy the frame to a user record) all work on that one structure.
//
// Exit. user_return_sysret(tf) / user_return_iret(tf) load a frame and
// leave. sysretq is the fast path, for frames sysret_safe() accepts (a
// syscall frame with a canonical user RIP, see sched.c and CVE-2012-0217);
// every other frame leaves with iretq, which restores all registers.

#define CPU_FRAME_TOP  0        // cpu.h
#define CPU_KSTACK_TOP 8
#define CPU_USER_RSP   16
#define USER_DS     (0x18 | 3)  // gdt.h
#define USER_CS     (0x20 | 3)
#define VEC_SYSCALL 0x100       // sched.h
#include "frame.h"

        .text
        .globl syscall_entry
        .balign 16
syscall_entry:
        swapgs
        movq %rsp, %gs:CPU_USER_RSP
        movq %gs:CPU_FRAME_TOP, %rsp
        pushq $USER_DS                  // ss
        pushq %gs:CPU_USER_RSP          // rsp
        pushq %r11                      // rflags
        pushq $USER_CS                  // cs
        pushq %rcx                      // rip
        pushq $0                        // error
        pushq $VEC_SYSCALL              // vector
        push_gprs
        movq %rsp, %rdi
        movq %gs:CPU_KSTACK_TOP, %rsp
        xorl %ebp, %ebp                 // backtraces end here
        call syscall_dispatch           // never returns
        ud2

// Interrupts are off from here to user space: the frame is being used as a
// stack and GS is about to become the user's.
        .globl user_return_sysret
user_return_sysret:
        movq %rdi, %rsp
        pop_gprs_to_rip
        movq (%rsp), %rcx               // rip
        movq 16(%rsp), %r11             // rflags
        movq 24(%rsp), %rsp             // user rsp
        swapgs
        sysretq

        .globl user_return_iret
user_return_iret:
        movq %rdi, %rsp
        pop_gprs_to_rip
        swapgs
        iretq

        .section .note.GNU-stack, "", @progbits
