// CPU setup: protection features and the per-CPU area.
//
//   NX    always: user pages are non-executable unless mapped VM_EXEC. The
//         boot code turns EFER.NXE on; a CPU without NX is refused here.
//   SMEP  when offered: the kernel can never execute a user page.
//   SMAP  when offered: the kernel can never touch a user page except inside
//         the copyin/copyout routines, which bracket the access with stac/clac.
//   UMIP  when offered: sgdt, sidt, sldt, smsw and str fault in user mode
//         (they would tell a program kernel addresses).
//   WP    supervisor writes honour read-only pages too (the entry area's
//         GDT/IDT/TSS rely on it, pti.c).
//   SSE   enabled for user programs (gcc's x86-64 baseline uses it); the
//         kernel itself is built without it, so only context switches touch
//         the XMM registers (fxsave/fxrstor, see sched.c).
#include "cpu.h"
#include "panic.h"
#include "printf.h"
#include "x86.h"

#define CPUID7_EBX_SMEP (1U << 7)
#define CPUID7_EBX_SMAP (1U << 20)
#define CPUID7_ECX_UMIP (1U << 2)
#define KSTACK_SIZE 16384

bool cpu_has_smap;

// One CPU for now; the array shape keeps the per-CPU idea honest.
static struct cpu cpus[1];
static uint8_t kstack[1][KSTACK_SIZE] __attribute__((aligned(16)));

_Static_assert(__builtin_offsetof(struct cpu, self) == 24, "mycpu offset");
_Static_assert(__builtin_offsetof(struct cpu, frame_top) == CPU_FRAME_TOP, "cpu layout");
_Static_assert(__builtin_offsetof(struct cpu, kstack_top) == CPU_KSTACK_TOP, "cpu layout");
_Static_assert(__builtin_offsetof(struct cpu, user_rsp) == CPU_USER_RSP, "cpu layout");

static void enable_protection(void)
{
    if (!(rdmsr(MSR_EFER) & EFER_NXE))
        panic("cpu: no NX (execute-disable) support; Revenant requires it");
    uint32_t a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    uint32_t smep = 0, smap = 0, umip = 0;
    if (a >= 7) {
        cpuid(7, &a, &b, &c, &d);
        smep = b & CPUID7_EBX_SMEP;
        smap = b & CPUID7_EBX_SMAP;
        umip = c & CPUID7_ECX_UMIP;
    }
    uint64_t cr4 = read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT;
    if (smep)
        cr4 |= CR4_SMEP;
    if (smap)
        cr4 |= CR4_SMAP;
    if (umip)
        cr4 |= CR4_UMIP;
    write_cr4(cr4);
    write_cr0((read_cr0() & ~CR0_EM) | CR0_MP | CR0_WP);
    cpu_has_smap = smap != 0;
    kprintf("cpu: nx on, smep %s, smap %s, umip %s\n", smep ? "on" : "off", smap ? "on" : "off",
            umip ? "on" : "off");
}

void cpu_init(void)
{
    enable_protection();
    struct cpu *c = &cpus[0];
    c->self = c;
    c->kstack_top = (uint64_t)(kstack[0] + KSTACK_SIZE);
    // Kernel GS now; user GS (0) waits in KERNEL_GS_BASE for the first swapgs.
    wrmsr(MSR_GS_BASE, (uint64_t)c);
    wrmsr(MSR_KERNEL_GS_BASE, 0);
}
