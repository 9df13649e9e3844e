// crasher:<how>: die from a CPU exception in user mode. The kernel must
// kill only this environment, with a report naming the exception.
//   divzero  #DE, integer division by zero
//   ud2      #UD, the defined invalid opcode
//   gp       #GP, `cli` at CPL 3 with IOPL 0
//   null     #PF, a write through a null pointer
#include <revenant.h>
#include <stdio.h>
#include <string.h>

// In assembly: a C division by zero is undefined behaviour, and the
// compiler is free to delete it.
__attribute__((noinline, noclone)) static void crash_divzero(void)
{
    asm volatile("xor %%ecx, %%ecx; mov $1, %%eax; cltd; idivl %%ecx" : : : "eax", "ecx", "edx");
}

__attribute__((noinline, noclone)) static void crash_ud2(void)
{
    asm volatile("ud2");
}

__attribute__((noinline, noclone)) static void crash_gp(void)
{
    asm volatile("cli");        // privileged: programs always run with IOPL 0
}

__attribute__((noinline, noclone)) static void crash_null(void)
{
    // Both volatile: the pointer so the compiler cannot prove it null (and
    // call the store undefined), the store so it cannot drop it.
    volatile int *volatile p = 0;
    *p = 1;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "null";
    printf("crasher: %s\n", how);
    if (strcmp(how, "divzero") == 0)
        crash_divzero();
    else if (strcmp(how, "ud2") == 0)
        crash_ud2();
    else if (strcmp(how, "gp") == 0)
        crash_gp();
    else if (strcmp(how, "null") == 0)
        crash_null();
    else {
        printf("crasher: unknown way to crash: %s\n", how);
        return 2;
    }
    printf("crasher: FAIL survived %s\n", how);
    return 1;
}
