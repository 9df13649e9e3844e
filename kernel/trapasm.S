// Interrupt and exception entry: one small stub per vector makes every frame
// look the same (vector and error code always present), then trap_common
// saves the general registers to complete a struct trapframe (trap.h).
//
// All of this file sits in .entry.text, the only kernel code a user address
// space maps (docs/kernel.md, "Isolation"): an interrupt from user mode
// arrives with the *user* page table loaded, so until the CR3 switch below
// nothing outside the entry area (this code, the GDT/IDT/TSS, the entry
// stacks) may be touched.
//
// From user mode the CPU pushes the frame at TSS.rsp0 = the top of the
// per-CPU entry stack. trap_common completes it there, switches to the
// kernel page table, copies the frame into the running vproc (struct
// vproc starts with it; cpu->frame_top is its end), scrubs the entry stack
// so the next program finds nothing of this one there, and calls trap_user
// on the CPU's kernel stack. Exits are in syscallasm.S.
//
// From kernel mode (the idle loop's interrupts, faults in copyin/copyout,
// kernel bugs) the frame is on the current stack; the page table is the
// kernel's unless the trap hit the few instructions of an entry or exit
// where the user's is loaded (only a double fault, NMI or machine check
// can): then the kernel's is loaded for the handler and the original one
// put back before returning.

#include "frame.h"
#include "pti.h"

// Vectors for which the CPU pushes an error code itself.
#define HAS_ERROR(n) ((n) == 8 || ((n) >= 10 && (n) <= 14) || (n) == 17 || (n) == 21 || (n) == 29 || (n) == 30)

#define FRAME_WORDS 22          // struct trapframe
#define CPU_FRAME_TOP  0        // cpu.h
#define CPU_KSTACK_TOP 8

        .altmacro
        .macro vector_stub n
        .balign 16
vector\n:
        .if !(HAS_ERROR(\n))
        pushq $0
        .endif
        pushq $\n
        jmp trap_common
        .endm

        .macro vector_addr n
        .quad vector\n
        .endm

        .section .entry.text, "ax"
        .set i, 0
        .rept 256
        vector_stub %i
        .set i, i + 1
        .endr
        .noaltmacro                     // `%rax` is a register again

trap_common:
        testb $3, 24(%rsp)              // CS.RPL of the interrupted code (vector, error, rip, cs)
        jz from_kernel
        swapgs
        push_gprs
        switch_to_kernel_cr3 %rax       // rax is saved: it is free now
        cld
        cmpb $0, cpu_has_smap(%rip)
        je 1f
        clac                            // drop any AC the program left set
1:      // Copy the frame into the vproc, then zero it here.
        movq %rsp, %rsi
        movq %gs:CPU_FRAME_TOP, %rdi
        subq $FRAME_WORDS * 8, %rdi
        movq %rdi, %rdx                 // the vproc's frame: trap_user's argument
        movl $FRAME_WORDS, %ecx
        rep movsq
        movq %rsp, %rdi
        xorl %eax, %eax
        movl $FRAME_WORDS, %ecx
        rep stosq
        movq %rdx, %rdi
        movq %gs:CPU_KSTACK_TOP, %rsp
        xorl %ebp, %ebp                 // backtraces end here
        call trap_user
        ud2

from_kernel:
        // The frame is on the current stack: 22 quadwords after push_gprs,
        // and the CPU aligned RSP to 16 before pushing SS. The original CR3
        // and a pad word keep it aligned for the call.
        push_gprs
        cld
        movq %cr3, %rax
        pushq %rax
        pushq %rax
        btrq $PTI_USER_PML4_BIT, %rax
        jnc 1f
        movq %rax, %cr3
1:      leaq 16(%rsp), %rdi
        call trap
        popq %rax
        popq %rax
        movq %cr3, %rcx
        cmpq %rax, %rcx
        je 2f
        movq %rax, %cr3
2:      pop_gprs_to_rip
        iretq

// NMI: the host asks for an in-place restart (QMP inject-nmi, docs/restart.md).
// An NMI can arrive at any instruction, even with interrupts off: in the
// `syscall` entry before the stack switch (RSP is still the program's),
// in an exit after the switch to the user view, in the idle loop, in C.
// So it runs on its own IST stack (gdt.c), which the entry area maps, and
// does the least that is safe anywhere: no GS (it may be the program's),
// no C, no stack but its own. It loads the kernel view if the user view
// was loaded (the request counter is kernel memory), counts the request,
// puts CR3 back and returns. restart.c acts on the count at the next safe
// point, never here, and scrubs this stack then; the two registers pushed
// here are zeroed before iretq.
        .globl nmi_entry
        .balign 16
nmi_entry:
        pushq %rax
        pushq %rcx
        movq %cr3, %rax
        movq %rax, %rcx
        btrq $PTI_USER_PML4_BIT, %rax
        jnc 1f
        movq %rax, %cr3
1:      lock incq nmi_requests(%rip)
        cmpq %rax, %rcx
        je 2f
        movq %rcx, %cr3
2:      popq %rcx
        popq %rax
        movq $0, -8(%rsp)
        movq $0, -16(%rsp)
        iretq

        .altmacro
        .section .rodata
        .balign 8
        .globl trap_vectors
trap_vectors:
        .set i, 0
        .rept 256
        vector_addr %i
        .set i, i + 1
        .endr

// The per-CPU entry stacks (one CPU). The CPU pushes a user-mode interrupt
// frame at the top of entry_stack (TSS.rsp0); double faults run on their
// own IST stack, so that a fault on the way in still panics readably.
// entry_scratch holds the user RSP between `syscall` and the frame, and on
// the way out (syscallasm.S). NMIs run on the small IST stack just above
// it, at the bottom of the entry stack's page, which entries from user mode
// (22 words from the top) never reach. All are mapped in user page tables;
// none holds anything of another program while a program runs (an NMI's
// 5-word frame stays until the next safe point scrubs it, restart.c, and
// that comes before any other program runs).
        .section .entry.stack, "aw", @nobits
        .balign 4096
        .globl df_stack_top, entry_stack_top, entry_scratch, entry_stack_bottom
        .globl nmi_stack, nmi_stack_top
df_stack:
        .skip 8192
df_stack_top:
entry_stack_bottom:
entry_scratch:
        .skip 8
nmi_stack:
        .skip 256 - 8
nmi_stack_top:
        .skip 4096 - 256
entry_stack_top:

        .section .note.GNU-stack, "", @progbits
