// Assembler macros (for .S files only) that save and restore the general
// registers in the order of struct trapframe (trap.h) and struct act_record
// (abi.h): both start with r15 at offset 0 and end with rax at 0x70, so the
// registers are pushed rax first and popped r15 first.
#ifndef FRAME_H
#define FRAME_H
#ifndef __ASSEMBLY__
#error "frame.h holds assembler macros: include it from .S files only"
#endif

// Push the 15 general registers below what is already on the stack,
// completing a trapframe whose vector and error code are in place.
        .macro push_gprs
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
        .endm

// Pop r15 ... rbx, leaving RSP at the saved rax.
        .macro pop_gprs_except_rax
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
        .endm

// Pop the general registers of the trapframe at RSP and skip its vector
// and error code, leaving RSP at tf->rip: ready for iretq.
        .macro pop_gprs_to_rip
        pop_gprs_except_rax
        popq %rax
        addq $16, %rsp                  // vector, error
        .endm
#endif
