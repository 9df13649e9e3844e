// The IDT and the C side of trap handling.
#include <stdint.h>
#include "activation.h"
#include "checkpoint.h"
#include "console.h"
#include "cpu.h"
#include "env.h"
#include "gdt.h"
#include "kbd.h"
#include "lapic.h"
#include "panic.h"
#include "restart.h"
#include "sched.h"
#include "timer.h"
#include "trap.h"
#include "usercopy.h"
#include "x86.h"

#define RFLAGS_AC (1UL << 18)

struct gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;           // P | DPL | type (0xe: interrupt gate)
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

#define GATE_INTERRUPT 0x8e // present, DPL 0, 64-bit interrupt gate (IF cleared)

// In the entry area, read-only in every page table (gdt.c says why).
static struct gate idt[256] __attribute__((section(".entry.ro"), aligned(4096)));
extern const uint64_t trap_vectors[256];   // trapasm.S
extern char nmi_entry[];                    // trapasm.S: a restart request

static void set_gate(int vector, uint64_t handler, int ist)
{
    idt[vector] = (struct gate){
        .offset_low = handler & 0xffff,
        .selector = KERNEL_CS,
        .ist = ist,
        .type = GATE_INTERRUPT,
        .offset_mid = (handler >> 16) & 0xffff,
        .offset_high = handler >> 32,
    };
}

void idt_init(void)
{
    for (int v = 0; v < 256; v++)
        set_gate(v, trap_vectors[v], 0);
    // A double fault often means the kernel stack is gone; take it on a
    // stack of its own so the panic can still print.
    set_gate(T_DOUBLE_FAULT, trap_vectors[T_DOUBLE_FAULT], IST_DOUBLE_FAULT);
    // An NMI may come at any instruction, even where RSP is the program's:
    // a stack of its own, and a handler that only counts (trapasm.S).
    set_gate(T_NMI, (uint64_t)nmi_entry, IST_NMI);

    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) ptr = { sizeof(idt) - 1, (uint64_t)idt };
    asm volatile("lidt %0" : : "m"(ptr));
}

static const char *const exception_names[32] = {
    [T_DIVIDE] = "divide error",
    [T_DEBUG] = "debug exception",
    [T_NMI] = "non-maskable interrupt",
    [T_BREAKPOINT] = "breakpoint",
    [T_OVERFLOW] = "overflow",
    [T_BOUND] = "bound range exceeded",
    [T_INVALID_OP] = "invalid opcode",
    [T_DEVICE] = "device not available",
    [T_DOUBLE_FAULT] = "double fault",
    [9] = "coprocessor segment overrun",
    [T_TSS] = "invalid TSS",
    [T_SEGMENT] = "segment not present",
    [T_STACK] = "stack-segment fault",
    [T_GPF] = "general protection fault",
    [T_PAGE_FAULT] = "page fault",
    [T_X87] = "x87 floating-point exception",
    [T_ALIGNMENT] = "alignment check",
    [T_MACHINE_CHECK] = "machine check",
    [T_SIMD] = "SIMD floating-point exception",
    [T_VIRT] = "virtualization exception",
    [T_CONTROL] = "control protection exception",
    [T_HV] = "hypervisor injection exception",
    [T_VMM_COMM] = "VMM communication exception",
    [T_SECURITY] = "security exception",
};

const char *trap_name(uint64_t vector)
{
    if (vector < 32 && exception_names[vector])
        return exception_names[vector];
    return vector < 32 ? "reserved exception" : "interrupt";
}

static void __attribute__((noreturn)) kernel_exception(struct trapframe *tf)
{
    if (tf->vector == T_PAGE_FAULT)
        panic_trap(tf, "page fault at 0x%016lx (error 0x%lx, rip 0x%016lx)",
                   read_cr2(), tf->error, tf->rip);
    panic_trap(tf, "%s (vector %lu, error 0x%lx, rip 0x%016lx)",
               trap_name(tf->vector), tf->vector, tf->error, tf->rip);
}

static void tick(void)
{
    timer_tick();
    sched_tick();
    lapic_eoi();
}

static bool stray_pic(uint64_t vector)
{
    // Legacy-PIC interrupts are masked; one that slips through is ignored.
    return vector >= T_PIC_BASE && vector < T_PIC_BASE + 16;
}

// A trap taken in kernel mode (the frame is on the kernel stack): the idle
// loop's interrupts, and faults. A page fault or #GP inside a user-access
// routine resumes at its fixup (-EFAULT); any other exception is a kernel bug.
void trap(struct trapframe *tf)
{
    if (tf->vector < 32) {
        uint64_t fixup;
        if ((tf->vector == T_PAGE_FAULT || tf->vector == T_GPF) &&
            (fixup = extable_fixup(tf->rip)) != 0) {
            tf->rip = fixup;
            return;
        }
        kernel_exception(tf);
    }
    switch (tf->vector) {
    case T_TIMER:
        tick();
        return;
    case T_COM1:
        console_irq();
        return;
    case T_KBD:
        kbd_irq();
        return;
    case T_SPURIOUS:
        return;     // no EOI for spurious LAPIC interrupts, by definition
    default:
        if (stray_pic(tf->vector))
            return;
        panic_trap(tf, "unexpected interrupt (vector %lu, rip 0x%016lx)", tf->vector, tf->rip);
    }
}

// A trap taken in user mode. The frame is the running vproc's own (the CPU
// pushed it at TSS.rsp0 = the end of vproc->tf), and we are on the CPU's
// kernel stack. Never returns: resume a vproc or schedule.
void trap_user(struct trapframe *tf)
{
    struct vproc *v = sched_current();
    if (!v || tf != &v->tf)
        panic_trap(tf, "trap from user mode outside a vproc frame (vector %lu)", tf->vector);
    if (tf->vector == T_DOUBLE_FAULT || tf->vector == T_MACHINE_CHECK || tf->vector == T_NMI)
        kernel_exception(tf);   // the machine, not the program, is in trouble
    // trap_common dropped the program's AC (interrupt gates keep it): with
    // it set, SMAP would be off in the kernel until the next exit.
    if (cpu_has_smap && (read_rflags() & RFLAGS_AC))
        panic_trap(tf, "RFLAGS.AC set in the kernel after an entry from user mode");
    // A record being restored is done once we enter from outside the restore
    // sequence; an entry from inside it means the restore was cut short.
    bool cut_short = v->act_resuming != ACT_NONE && act_settle(v);
    if (tf->vector < 32) {
        env_kill_fault(v->env, tf, tf->vector == T_PAGE_FAULT ? read_cr2() : 0);
        schedule();
    }
    if (tf->vector == T_TIMER) {
        tick();
        // A tick from user mode is a safe point (every vproc's frame is
        // complete): take a checkpoint that is due (checkpoint.c).
        if (checkpoint_due())
            checkpoint_run();
        // A tick from user mode is a safe point (every vproc's frame is
        // complete): act on a restart request here. The restart takes the
        // place of this tick's preemption upcall.
        if (restart_due()) {
            restart_run();
            if (!mycpu()->vproc)
                schedule();             // v's environment was killed (hostile header)
        } else if (!act_preempt(v, cut_short)) {
            schedule();                 // the environment was killed
        }
        if (sched_others_waiting()) {
            sched_make_runnable(v);     // preempted: to the back of the queue
            schedule();
        }
    } else if (tf->vector == T_COM1) {
        console_irq();                  // bytes into the reader's ring; v goes on
    } else if (tf->vector == T_KBD) {
        kbd_irq();                      // the host's checkpoint key: taken at the next tick
    } else if (tf->vector != T_SPURIOUS && !stray_pic(tf->vector)) {
        panic_trap(tf, "unexpected interrupt (vector %lu, rip 0x%016lx)", tf->vector, tf->rip);
    }
    vproc_resume(v);
}
