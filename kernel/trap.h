// The trap frame: the complete CPU state at the moment of an exception or
// interrupt, as built by trapasm.S on the kernel stack.
//
// It is complete on purpose. Later work copies it into a user-space
// activation record (an interrupt delivered to the program's own scheduler)
// and rewinds blocking system calls by editing rip, so every register the
// interrupted code could observe must be here, and writes to the frame must
// take effect on return (trapasm.S restores all of it with iretq).
#ifndef TRAP_H
#define TRAP_H
#include <stdint.h>

struct trapframe {
    // Pushed by trap_common (trapasm.S), last pushed first in memory.
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    // Pushed by the per-vector stub.
    uint64_t vector;
    uint64_t error;     // the CPU's error code, or 0 for vectors without one
    // Pushed by the CPU (always, in 64-bit mode, even without a privilege
    // change).
    uint64_t rip, cs, rflags, rsp, ss;
};

_Static_assert(sizeof(struct trapframe) == 22 * 8, "trapframe must match trapasm.S");

// Exception vectors.
enum {
    T_DIVIDE = 0, T_DEBUG = 1, T_NMI = 2, T_BREAKPOINT = 3, T_OVERFLOW = 4,
    T_BOUND = 5, T_INVALID_OP = 6, T_DEVICE = 7, T_DOUBLE_FAULT = 8,
    T_TSS = 10, T_SEGMENT = 11, T_STACK = 12, T_GPF = 13, T_PAGE_FAULT = 14,
    T_X87 = 16, T_ALIGNMENT = 17, T_MACHINE_CHECK = 18, T_SIMD = 19,
    T_VIRT = 20, T_CONTROL = 21, T_HV = 28, T_VMM_COMM = 29, T_SECURITY = 30,
};

#define T_TIMER     32      // LAPIC timer
#define T_COM1      36      // COM1 receive: ISA IRQ 4 through the I/O APIC (console.c)
#define T_KBD       37      // PS/2 keyboard: ISA IRQ 1, the host's checkpoint key (kbd.c)
#define T_SPURIOUS  0xff    // LAPIC spurious vector
#define T_PIC_BASE  0xf0    // legacy PIC, remapped out of the way and masked

void idt_init(void);
void trap(struct trapframe *tf);
void trap_user(struct trapframe *tf) __attribute__((noreturn));
const char *trap_name(uint64_t vector);
#endif
