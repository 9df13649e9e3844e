// The `syscall` entry and the two ways back to user space.
//
// Entry (syscall_entry, the LSTAR target). The CPU has put the user RIP in
// RCX and RFLAGS in R11, masked RFLAGS with FMASK (IF, TF, DF, AC, NT clear)
// and switched CS/SS, nothing else: RSP is still the user's, GS.base too,
// and so is the page table (the user view, which maps only the entry area:
// pti.h). The user RSP goes to entry_scratch, the only writable word we can
// reach; then the kernel view is loaded and we build a complete struct
// trapframe (trap.h) *in the running vproc*, at cpu->frame_top, in exactly
// the shape an interrupt from user mode leaves there: rip = RCX, rflags =
// R11, user CS/SS, vector = VEC_SYSCALL (this frame came from a syscall
// instruction, rip - 2 is that instruction). Only then do we move to the
// CPU's kernel stack and call C. The vproc's frame is therefore always the
// complete user state: the scheduler, the restart rule (rip -= 2) and
// activations all work on that one structure.
//
// Exit. user_return_sysret(tf) / user_return_iret(tf) load a frame and
// leave. sysretq is the fast path, for frames sysret_safe() accepts (a
// syscall frame with a canonical user RIP, see sched.c and CVE-2012-0217);
// every other frame leaves with iretq, which restores all registers. Both
// read the frame under the kernel view, keep what they still need after
// the switch to the user view in the entry area (entry_scratch, the top of
// the entry stack), and leave behind only the resumed program's own values.
//
// Everything here is in .entry.text: the exits run their last instructions
// with the user view loaded.

#define CPU_FRAME_TOP  0        // cpu.h
#define USER_DS     (0x18 | 3)  // gdt.h
#define USER_CS     (0x20 | 3)
#define VEC_SYSCALL 0x100       // sched.h
#define TF_RIP      136
#define TF_RSP      160
#include "frame.h"
#include "pti.h"

        .section .entry.text, "ax"
        .globl syscall_entry
        .balign 16
syscall_entry:
        movq %rsp, entry_scratch(%rip)
        switch_to_kernel_cr3 %rsp       // RFLAGS is saved in r11: the flags are free
        swapgs
        movq %gs:CPU_FRAME_TOP, %rsp
        pushq $USER_DS                  // ss
        pushq entry_scratch(%rip)       // rsp
        pushq %r11                      // rflags
        pushq $USER_CS                  // cs
        pushq %rcx                      // rip
        pushq $0                        // error
        pushq $VEC_SYSCALL              // vector
        push_gprs
        movq %rsp, %rdi
        movq %gs:8, %rsp                // cpu->kstack_top
        xorl %ebp, %ebp                 // backtraces end here
        call syscall_dispatch           // never returns
        ud2

// Interrupts are off from here to user space: the frame is being used as a
// stack and GS is about to become the user's. RCX and R11 are dead in a
// sysret frame (they get RIP and RFLAGS), and the flags are loaded by
// sysretq, so all three are free once the general registers are loaded.
        .globl user_return_sysret
user_return_sysret:
        movq %rdi, %rsp
        movq TF_RSP(%rdi), %rax
        movq %rax, entry_scratch(%rip)  // the program's own RSP, read after the switch
        pop_gprs_to_rip
        movq (%rsp), %rcx               // rip
        movq 16(%rsp), %r11             // rflags
        switch_to_user_cr3 %rsp
        movq entry_scratch(%rip), %rsp
        swapgs
        sysretq

// The iretq frame goes to the top of the entry stack, where an entry from
// user mode pushes its own; the program's rax is parked just below it for
// the CR3 switch. Nothing else is left on the entry stack (trap_common
// zeroed what the last entry pushed).
        .globl user_return_iret
user_return_iret:
        movq %rdi, %rsi
        leaq entry_stack_top - 40(%rip), %rdi   // rip cs rflags rsp ss
        addq $TF_RIP, %rsi
        movl $5, %ecx
        cld
        rep movsq
        movq -16(%rsi), %rax            // tf->rsp (rsi is past ss now)
        movq %rax, entry_scratch(%rip)
        leaq -TF_RIP - 40(%rsi), %rsp   // tf
        pop_gprs_except_rax
        popq %rax
        leaq entry_stack_top - 40(%rip), %rsp
        pushq %rax
        switch_to_user_cr3 %rax
        popq %rax
        swapgs
        iretq

        .section .note.GNU-stack, "", @progbits
