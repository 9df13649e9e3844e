// void lcg_run(struct lcg *st, uint64_t n): advance seven 64-bit linear
// congruential streams n steps, summing each stream's outputs. Every
// general register except rsp holds live state for the whole loop (and the
// flags of `dec` decide the branch), so an activation record restored with
// any register or flag wrong changes the result.
//
// struct lcg { uint64_t x[7], s[7]; }    x: current value, s: sum of outputs
// Stream i: x = x * A_i + C_i (mod 2^64), s += x. The constants must match
// lcg.h, which computes the same result by jumping ahead instead.
#include "lcg.h"

.macro STEP x, s, a, c
    imul $\a, \x, \x
    add $\c, \x
    add \x, \s
.endm

    .text
    .globl lcg_run
    .type lcg_run, @function
lcg_run:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    push %rdi                   // the state pointer, for the way out
    mov %rsi, %r15              // the counter
    mov 0(%rdi), %rax
    mov 8(%rdi), %rcx
    mov 16(%rdi), %r8
    mov 24(%rdi), %r10
    mov 32(%rdi), %r12
    mov 40(%rdi), %r14
    mov 48(%rdi), %rsi
    mov 56(%rdi), %rbx
    mov 64(%rdi), %rdx
    mov 72(%rdi), %r9
    mov 80(%rdi), %r11
    mov 88(%rdi), %r13
    mov 96(%rdi), %rbp
    mov 104(%rdi), %rdi         // last: it was the pointer
    test %r15, %r15
    jz 2f
1:  STEP %rax, %rbx, LCG_A0, LCG_C0
    STEP %rcx, %rdx, LCG_A1, LCG_C1
    STEP %r8,  %r9,  LCG_A2, LCG_C2
    STEP %r10, %r11, LCG_A3, LCG_C3
    STEP %r12, %r13, LCG_A4, LCG_C4
    STEP %r14, %rbp, LCG_A5, LCG_C5
    STEP %rsi, %rdi, LCG_A6, LCG_C6
    dec %r15
    jnz 1b
2:  pop %r15                    // the state pointer
    mov %rax, 0(%r15)
    mov %rcx, 8(%r15)
    mov %r8, 16(%r15)
    mov %r10, 24(%r15)
    mov %r12, 32(%r15)
    mov %r14, 40(%r15)
    mov %rsi, 48(%r15)
    mov %rbx, 56(%r15)
    mov %rdx, 64(%r15)
    mov %r9, 72(%r15)
    mov %r11, 80(%r15)
    mov %r13, 88(%r15)
    mov %rbp, 96(%r15)
    mov %rdi, 104(%r15)
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    .size lcg_run, . - lcg_run

    .section .note.GNU-stack, "", @progbits
