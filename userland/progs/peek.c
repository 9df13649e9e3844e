// peek[:address]: read kernel memory. The kernel must kill this program
// with a page fault; printing the value would mean isolation is broken.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define KERNEL_TEXT 0xffffffff80100000UL    // kernel/memlayout.h: KERNEL_BASE + 1 MiB

// noinline: the kill report's rip must symbolize to this function.
__attribute__((noinline, noclone)) static uint64_t peek(uintptr_t addr)
{
    return *(volatile uint64_t *)addr;
}

int main(int argc, char **argv)
{
    uintptr_t addr = argc > 1 ? strtoul(argv[1], 0, 0) : KERNEL_TEXT;
    printf("peek: reading 0x%lx\n", (unsigned long)addr);
    uint64_t v = peek(addr);
    printf("peek: FAIL read 0x%lx from 0x%lx\n", (unsigned long)v, (unsigned long)addr);
    return 1;
}
