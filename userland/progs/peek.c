// peek[:address[:write]]: read (or, with `write`, overwrite) memory that is
// not ours, kernel memory by default. The kernel must kill this program
// with a page fault; printing a value, or surviving a write, would mean
// isolation is broken.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERNEL_TEXT 0xffffffff80100000UL    // kernel/memlayout.h: KERNEL_BASE + 1 MiB

// noinline: the kill report's rip must symbolize to these functions.
__attribute__((noinline, noclone)) static uint64_t peek(uintptr_t addr)
{
    return *(volatile uint64_t *)addr;
}

__attribute__((noinline, noclone)) static void scribble(uintptr_t addr)
{
    *(volatile uint64_t *)addr = 0xdeadbeefdeadbeefUL;
}

int main(int argc, char **argv)
{
    uintptr_t addr = argc > 1 ? strtoul(argv[1], 0, 0) : KERNEL_TEXT;
    if (argc > 2 && !strcmp(argv[2], "write")) {
        printf("peek: writing 0x%lx\n", (unsigned long)addr);
        scribble(addr);
        printf("peek: FAIL wrote 0x%lx\n", (unsigned long)addr);
        return 1;
    }
    printf("peek: reading 0x%lx\n", (unsigned long)addr);
    uint64_t v = peek(addr);
    printf("peek: FAIL read 0x%lx from 0x%lx\n", (unsigned long)v, (unsigned long)addr);
    return 1;
}
