// Deliberate crashes (`crash=pagefault|divzero|assert|doublefault|hang`).
//
// Each is a real fault, not a simulated one, and each function is noinline
// so that the panic's frame 0 symbolizes to its name.
#include <stdint.h>
#include "crash.h"
#include "panic.h"
#include "string.h"
#include "x86.h"

// Hidden behind volatile so gcc cannot prove anything about the values and
// replace the faulting instruction with ud2 or fold it away.
static volatile uint64_t *volatile bad_pointer = (uint64_t *)0x00000000dead0000UL;
static volatile int zero = 0;
static volatile int one = 1;
static volatile int sink;

__attribute__((noinline)) void crash_pagefault(void)
{
    *bad_pointer = 0x5a;    // unmapped once the boot identity map is gone
}

__attribute__((noinline)) void crash_divzero(void)
{
    sink = one / zero;     // both volatile: gcc rewrites 1/x without a divide
}

__attribute__((noinline)) void crash_assert(void)
{
    int answer = zero + 41;
    KASSERT(answer == 42);
}

// A page fault that cannot be delivered, because the stack it would be
// pushed on is unmapped: the CPU escalates to a double fault, which only
// panics readably because it runs on its own IST stack.
__attribute__((noinline)) void crash_doublefault(void)
{
    asm volatile("movq %0, %%rsp\n\t"
                 "pushq $0"
                 :
                 : "r"((uint64_t)bad_pointer)
                 : "memory");
}

// A hung kernel: no output, interrupts off, forever. hlt with IF=0 only
// wakes for NMI/SMI, and the loop takes it back.
__attribute__((noinline)) void crash_hang(void)
{
    for (;;) {
        cli();
        hlt();
    }
}

void crash(const char *how)
{
    if (strcmp(how, "pagefault") == 0)
        crash_pagefault();
    else if (strcmp(how, "divzero") == 0)
        crash_divzero();
    else if (strcmp(how, "assert") == 0)
        crash_assert();
    else if (strcmp(how, "doublefault") == 0)
        crash_doublefault();
    else if (strcmp(how, "hang") == 0)
        crash_hang();
    panic("crash=%s: unknown crash (want pagefault, divzero, assert, doublefault or hang), or it did not crash", how);
}
