// Per-CPU state and the CPU features the kernel turns on.
//
// The kernel runs with GS.base = &its struct cpu; user space has its own GS
// base, and every kernel entry from user mode swaps the two (swapgs), so
// entry code can find the kernel stack with a single %gs-relative load.
#ifndef CPU_H
#define CPU_H
#include <stdbool.h>
#include <stdint.h>

struct vproc;

struct cpu {
    // Read by syscallasm.S at fixed offsets: keep in sync (CPU_* below).
    uint64_t frame_top;     // end of the running vproc's trapframe: syscall builds the frame there
    uint64_t kstack_top;    // this CPU's one kernel stack
    uint64_t user_rsp;      // scratch: user RSP between syscall entry and the frame push
    struct cpu *self;
    // C only.
    struct vproc *vproc;    // running (or last resumed) vproc; NULL when idle or after it died
    struct vproc *fpu_owner;// whose FPU/SSE registers are live in the CPU
    struct vproc *seg_owner;// whose DS/ES/FS/GS are live in the CPU
};

#define CPU_FRAME_TOP  0
#define CPU_KSTACK_TOP 8
#define CPU_USER_RSP   16

extern bool cpu_has_smap;

void cpu_init(void);
// Inline: every system call needs it, on the path the null-call benchmark times.
static inline struct cpu *mycpu(void)
{
    struct cpu *c;
    asm volatile("movq %%gs:24, %0" : "=r"(c));   // offsetof(struct cpu, self)
    return c;
}

#define CR0_MP  (1UL << 1)
#define CR0_EM  (1UL << 2)
#define CR0_WP  (1UL << 16)
#define CR4_OSFXSR     (1UL << 9)
#define CR4_OSXMMEXCPT (1UL << 10)
#define CR4_UMIP       (1UL << 11)
#define CR4_SMEP       (1UL << 20)
#define CR4_SMAP       (1UL << 21)
#define EFER_SCE  (1UL << 0)
#define EFER_NXE  (1UL << 11)
#define MSR_STAR         0xc0000081
#define MSR_LSTAR        0xc0000082
#define MSR_FMASK        0xc0000084
#define MSR_GS_BASE      0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102

static inline void write_cr0(uint64_t v) { asm volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static inline void write_cr4(uint64_t v) { asm volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }
static inline void invlpg(uint64_t va) { asm volatile("invlpg (%0)" : : "r"(va) : "memory"); }
#endif
