// Interrupt and exception entry: one small stub per vector makes every frame
// look the same (vector and error code always present), then trap_common
// saves the general registers to complete a struct trapframe (trap.h) and
// calls trap(tf).

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
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        // The frame is 22 quadwords and the CPU aligned RSP to 16 before
        // pushing SS, so RSP is 16-aligned here as the ABI wants at a call.
        // (No swapgs yet: nothing runs in user mode. It belongs here, keyed
        // on tf->cs & 3, once per-CPU data exists.)
        cld
        movq %rsp, %rdi
        call trap
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp          // vector and error code
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
