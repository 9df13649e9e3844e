// Isolation between environments, run as two siblings:
//   run=poke_other:owner,poke_other
// The owner maps POKE_ADDR and fills it; the attacker, a different
// environment, writes to the same address, which is mapped only in the
// owner's address space: the kernel must kill the attacker with a page
// fault, and the owner's page must be untouched.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POKE_ADDR  0x10000000UL
#define MAGIC      0x0123456789abcdefUL

// noinline: the kill report's rip must symbolize to this function.
__attribute__((noinline, noclone)) static void poke(uintptr_t addr)
{
    *(volatile uint64_t *)addr = 0xbad;
}

static int owner(void)
{
    long r = sys_map(POKE_ADDR, 4096, PROT_READ | PROT_WRITE);
    if (r < 0) {
        printf("poke_other: owner: map failed: %s\n", errno_name(r));
        return 1;
    }
    volatile uint64_t *p = (volatile uint64_t *)POKE_ADDR;
    *p = MAGIC;
    printf("poke_other: owner mapped 0x%lx\n", POKE_ADDR);
    sleep(300);                 // long enough for the attacker to try
    if (*p != MAGIC) {
        printf("poke_other: owner: FAIL page changed to 0x%lx\n", (unsigned long)*p);
        return 1;
    }
    puts("poke_other: owner: page intact");
    return 0;
}

static int attacker(void)
{
    sleep(50);                  // let the owner map first (not required: the write faults anyway)
    printf("poke_other: writing 0x%lx (mapped only in the owner)\n", POKE_ADDR);
    poke(POKE_ADDR);
    puts("poke_other: FAIL the write succeeded");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "owner") == 0)
        return owner();
    return attacker();
}
