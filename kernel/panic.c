// Kernel panic: report and stop.
//
// The report format is a contract with the toolkit (docs/boot.md), which
// symbolizes the raw addresses with the ELF's DWARF:
//   PANIC: <message>
//     rax=0x... rbx=0x... rcx=0x... rdx=0x...
//     ...
//     rip=0x<16 hex>
//   backtrace:
//     #0 0x<16 hex>        the faulting or panicking instruction
//     #1 0x<16 hex>        return addresses from here on (symbolize addr-1)
//   end of panic
#include <stdarg.h>
#include <stdbool.h>
#include "gdt.h"
#include "memlayout.h"
#include "panic.h"
#include "power.h"
#include "printf.h"
#include "x86.h"

#define PVPANIC_PORT     0x505
#define PVPANIC_PANICKED 0x1
#define MAX_FRAMES       32

static bool panicking;

static void print_registers(const struct trapframe *tf)
{
    kprintf("  rax=0x%016lx rbx=0x%016lx rcx=0x%016lx rdx=0x%016lx\n",
            tf->rax, tf->rbx, tf->rcx, tf->rdx);
    kprintf("  rsi=0x%016lx rdi=0x%016lx rbp=0x%016lx rsp=0x%016lx\n",
            tf->rsi, tf->rdi, tf->rbp, tf->rsp);
    kprintf("  r8=0x%016lx r9=0x%016lx r10=0x%016lx r11=0x%016lx\n",
            tf->r8, tf->r9, tf->r10, tf->r11);
    kprintf("  r12=0x%016lx r13=0x%016lx r14=0x%016lx r15=0x%016lx\n",
            tf->r12, tf->r13, tf->r14, tf->r15);
    kprintf("  rip=0x%016lx\n", tf->rip);
    kprintf("  rflags=0x%016lx cs=0x%lx ss=0x%lx vector=%lu error=0x%lx\n",
            tf->rflags, tf->cs, tf->ss, tf->vector, tf->error);
    kprintf("  cr0=0x%016lx cr2=0x%016lx cr3=0x%016lx cr4=0x%016lx\n",
            read_cr0(), read_cr2(), read_cr3(), read_cr4());
}

// A frame pointer is believable if it is aligned and points into kernel
// memory (the image, where the boot and IST stacks live, or the direct map,
// where future kernel stacks will). Anything else ends the walk rather than
// faulting inside the panic.
static bool plausible_frame(uint64_t fp)
{
    if (fp & 7)
        return false;
    if (fp >= (uint64_t)__kernel_start && fp + 16 <= (uint64_t)__kernel_end)
        return true;
    return fp >= DIRECT_MAP && fp + 16 <= DIRECT_MAP + DIRECT_MAP_SIZE;
}

static bool kernel_text(uint64_t addr)
{
    return addr >= (uint64_t)__text_start && addr < (uint64_t)__text_end;
}

int backtrace_walk(uint64_t rbp, int first, int max)
{
    int n = first;
    uint64_t fp = rbp;
    while (n < max && plausible_frame(fp)) {
        uint64_t *frame = (uint64_t *)fp;
        uint64_t ret = frame[1];
        if (!kernel_text(ret))
            break;
        kprintf("  #%d 0x%016lx\n", n++, ret);
        // Stacks grow down, so the caller's frame is strictly higher; this
        // also guarantees the walk terminates on a corrupt chain.
        if (frame[0] <= fp)
            break;
        fp = frame[0];
    }
    return n;
}

static void __attribute__((noreturn)) finish(const struct trapframe *tf, uint64_t pc0)
{
    print_registers(tf);
    kprintf("backtrace:\n");
    kprintf("  #0 0x%016lx\n", pc0);
    backtrace_walk(tf->rbp, 1, MAX_FRAMES);
    kprintf("end of panic\n");
    // pvpanic first so QMP sees GUEST_PANICKED; with -action panic=none
    // QEMU keeps running and the exit below decides the status.
    outb(PVPANIC_PORT, PVPANIC_PANICKED);
    power_exit_failure();
}

// A panic inside a panic (say, a fault while printing) must not recurse
// forever: get out with the failure status at once.
static void enter_panic(void)
{
    cli();
    if (panicking) {
        kprintf("PANIC: nested panic\nend of panic\n");
        power_exit_failure();
    }
    panicking = true;
}

// The report's first line.
static void print_message(const char *fmt, va_list ap)
{
    kprintf("PANIC: ");
    vkprintf(fmt, ap);
    kprintf("\n");
}

void panic_trap(struct trapframe *tf, const char *fmt, ...)
{
    enter_panic();
    va_list ap;
    va_start(ap, fmt);
    print_message(fmt, ap);
    va_end(ap);
    finish(tf, tf->rip);
}

// Snapshot the registers as they are now, so a software panic prints the
// same report shape as an exception.
static inline __attribute__((always_inline)) void capture(struct trapframe *tf)
{
    asm volatile(
        "movq %%rax, 0x70(%0)\n\t"
        "movq %%rbx, 0x68(%0)\n\t"
        "movq %%rcx, 0x60(%0)\n\t"
        "movq %%rdx, 0x58(%0)\n\t"
        "movq %%rsi, 0x50(%0)\n\t"
        "movq %%rdi, 0x48(%0)\n\t"
        "movq %%r8, 0x38(%0)\n\t"
        "movq %%r9, 0x30(%0)\n\t"
        "movq %%r10, 0x28(%0)\n\t"
        "movq %%r11, 0x20(%0)\n\t"
        "movq %%r12, 0x18(%0)\n\t"
        "movq %%r13, 0x10(%0)\n\t"
        "movq %%r14, 0x08(%0)\n\t"
        "movq %%r15, 0x00(%0)\n\t"
        :
        : "r"(tf)
        : "memory");
    _Static_assert(__builtin_offsetof(struct trapframe, rax) == 0x70, "capture offsets");
}

void panic(const char *fmt, ...)
{
    struct trapframe tf = { 0 };
    capture(&tf);
    enter_panic();
    // Report the caller's state: its frame pointer, and the call
    // instruction itself as frame 0 (panic is always called directly, and
    // a direct call is 5 bytes), so frame 0 names the panicking line even
    // when the call is the last instruction of its function.
    uint64_t *own_frame = __builtin_frame_address(0);
    uint64_t ret = (uint64_t)__builtin_return_address(0);
    tf.rbp = own_frame[0];
    tf.rsp = (uint64_t)(own_frame + 2);
    tf.rip = ret - 5;
    tf.cs = KERNEL_CS;
    tf.ss = KERNEL_DS;
    tf.rflags = read_rflags();

    va_list ap;
    va_start(ap, fmt);
    print_message(fmt, ap);
    va_end(ap);
    finish(&tf, tf.rip);
}
