#ifndef PANIC_H
#define PANIC_H
#include "trap.h"

// Print the panic report (docs/boot.md: PANIC line, registers, backtrace,
// "end of panic"), signal pvpanic and exit QEMU with status 35.
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
// The same for a CPU exception: registers and frame 0 come from the frame.
void panic_trap(struct trapframe *tf, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

#define KASSERT(cond)                                                        \
    do {                                                                     \
        if (!(cond))                                                         \
            panic("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond); \
    } while (0)

// Walk the frame-pointer chain from `rbp`, printing " #n 0x..." lines
// starting at index `first`. Exposed for tests and future debugging aids.
int backtrace_walk(uint64_t rbp, int first, int max);
#endif
