// crasher:<how>: die from a CPU exception in user mode. The kernel must
// kill only this environment, with a report naming the exception.
//   divzero  #DE, integer division by zero
//   ud2      #UD, the defined invalid opcode
//   gp       #GP, `cli` at CPL 3 with IOPL 0
//   null     #PF, a write through a null pointer
//   sgdt sidt sldt str smsw
//            #GP where the kernel turned on UMIP (CR4.UMIP, if CPUID.7.0:ECX
//            bit 2 offers it): at CPL 3 these would read the kernel's GDT and
//            IDT addresses, its LDT and task register selectors, and CR0's
//            low bits. Each first prints `crasher: cpu umip <0|1>`.
#include <revenant.h>
#include <stdint.h>
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

// UMIP (user-mode instruction prevention): CPUID.(EAX=7,ECX=0):ECX bit 2.
static int cpu_has_umip(void)
{
    unsigned a, b, c, d;
    asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    if (a < 7)
        return 0;
    asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    return (c >> 2) & 1;
}

// The descriptor-table and machine-state stores UMIP forbids at CPL 3; what
// they read is printed, so a kernel without UMIP shows what leaked. -1: not
// one of them.
__attribute__((noinline, noclone)) static int crash_umip(const char *how)
{
    static const char *const modes[] = { "sgdt", "sidt", "sldt", "str", "smsw" };
    int known = 0;
    for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        known |= strcmp(how, modes[i]) == 0;
    if (!known)
        return -1;
    printf("crasher: cpu umip %d\n", cpu_has_umip());
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) table = { 0, 0 };
    uint16_t sel = 0xffff;
    unsigned long msw = ~0UL;
    if (strcmp(how, "sgdt") == 0)
        asm volatile("sgdt %0" : "=m"(table));
    else if (strcmp(how, "sidt") == 0)
        asm volatile("sidt %0" : "=m"(table));
    else if (strcmp(how, "sldt") == 0)
        asm volatile("sldt %0" : "=r"(sel));
    else if (strcmp(how, "str") == 0)
        asm volatile("str %0" : "=r"(sel));
    else
        asm volatile("smsw %0" : "=r"(msw));
    printf("crasher: %s read base=0x%lx limit=0x%x selector=0x%x msw=0x%lx\n",
           how, table.base, table.limit, sel, msw);
    return 0;
}

// A page the program mapped, wrote and unmapped again must fault at once,
// with isolation on (every return to user mode reloads CR3) and off (only
// the unmap's own TLB flush forgets the translation).
__attribute__((noinline, noclone)) static void crash_stale(void)
{
    volatile char *p = (volatile char *)0x200000000UL;
    // Two pages, so that the page table stays (freeing a table reloads CR3,
    // which would flush the TLB whatever unmap forgot).
    if (sys_map((uint64_t)p, 8192, PROT_READ | PROT_WRITE) != 0) {
        printf("crasher: FAIL map\n");
        return;
    }
    p[0] = 'x';
    p[4096] = 'y';
    sys_unmap((uint64_t)p, 4096);
    printf("crasher: FAIL read 0x%x from an unmapped page\n", p[0]);
}

// RFLAGS.AC is a user flag (popf sets it at CPL 3); every entry from user
// mode must drop it, or SMAP is off in the kernel until the next exit. The
// kernel checks on every interrupt from user mode; many ticks land here.
// Plain preemption (no upcall entry): an activation record with AC set is
// refused by design (docs/activations.md), a plain frame keeps it.
__attribute__((noinline, noclone)) static void run_with_ac(void)
{
    ((volatile struct act_header *)ACT_SEGMENT)->entry[ACT_PREEMPTED] = 0;
    asm volatile("pushfq; orq $0x40000, (%%rsp); popfq" ::: "memory", "cc");
    long end = sys_clock_ns() + 100 * 1000000L;
    while (sys_clock_ns() < end)
        for (volatile int i = 0; i < 100000; i++)
            ;
    asm volatile("pushfq; andq $~0x40000, (%%rsp); popfq" ::: "memory", "cc");
    printf("crasher: ran 100 ms with AC set\n");
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
    else if (strcmp(how, "stale") == 0)
        crash_stale();
    else if (strcmp(how, "ac") == 0) {
        run_with_ac();
        return 0;
    }
    else if (crash_umip(how) < 0) {
        printf("crasher: unknown way to crash: %s\n", how);
        return 2;
    }
    printf("crasher: FAIL survived %s\n", how);
    return 1;
}
