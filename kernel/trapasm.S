// Interrupt and exception entry: one small stub per vector makes every frame
// look the same (vector and error code always present), then trap_common
// saves the general registers to complete a struct trapframe (trap.h) and
// calls trap(tf).

#include "frame.h"

// Vectors for which the CPU pushes an error code itself.
#define HAS_ERROR(n) ((n) == 8 || ((n) >= 10 && (n) <= 14) || (n) == 17 || (n) == 21 || (n) == 29 || (n) == 30)

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

        .text
        .set i, 0
        .rept 256
        vector_stub %i
        .set i, i + 1
        .endr

trap_common:
        push_gprs
        cld
        // From user mode (CS.RPL 3 at offset 0x90)? Then the frame was pushed
        // at TSS.rsp0, i.e. into the running vproc's own trapframe: take the
        // kernel GS, drop any AC the program left set (SMAP), move to the
        // CPU's kernel stack and never come back here; trap_user() leaves
        // through the scheduler (syscallasm.S has the exits).
        testb $3, 0x90(%rsp)
        jz 1f
        swapgs
        cmpb $0, cpu_has_smap(%rip)
        je 2f
        clac
2:      movq %rsp, %rdi
        movq %gs:8, %rsp                // cpu->kstack_top (cpu.h)
        xorl %ebp, %ebp
        call trap_user
        ud2
        // From kernel mode: the frame is on the current kernel stack. It is
        // 22 quadwords and the CPU aligned RSP to 16 before pushing SS, so
        // RSP is 16-aligned here as the ABI wants at a call.
1:      movq %rsp, %rdi
        call trap
        pop_gprs_to_rip
        iretq

        .section .rodata
        .balign 8
        .globl trap_vectors
trap_vectors:
        .set i, 0
        .rept 256
        vector_addr %i
        .set i, i + 1
        .endr

        .section .note.GNU-stack, "", @progbits
