// Tests of the running kernel's machinery: the tick, the GDT/IDT state,
// the exception names the panic messages use.
#include "gdt.h"
#include "ktest.h"
#include "memlayout.h"
#include "pit.h"
#include "timer.h"
#include "trap.h"
#include "x86.h"

static void tick_advances(struct ktest *t)
{
    uint64_t start = timer_ticks();
    // Interrupts are off while tests run; let a few ticks in.
    for (int i = 0; i < 3; i++)
        sti_hlt();
    cli();
    KEXPECT_TRUE(t, timer_ticks() > start);
}

static void timer_ms_tracks_guest_time(struct ktest *t)
{
    // Check the tick clock against an independent one: 50 ms of PIT time
    // must read as 50 ms on timer_ms(), give or take a tick either way.
    uint64_t tick_ms = 1000 / timer_hz();
    pit_oneshot_arm(50);
    uint64_t start = timer_ms();
    sti();
    bool ok = pit_oneshot_wait();
    cli();
    uint64_t elapsed = timer_ms() - start;
    if (!ok)
        KTEST_SKIP(t, "no PIT to compare with");
    if (elapsed + tick_ms < 50 || elapsed > 50 + tick_ms)
        ktest_fail(t, __FILE__, __LINE__, "expected 50 ms (+-%lu), got %lu ms", tick_ms, elapsed);
}

static void segments_are_kernel(struct ktest *t)
{
    uint16_t cs, ss;
    asm volatile("mov %%cs, %0; mov %%ss, %1" : "=r"(cs), "=r"(ss));
    KEXPECT_EQ(t, cs, KERNEL_CS);
    KEXPECT_EQ(t, ss, KERNEL_DS);
    uint16_t tr;
    asm volatile("str %0" : "=r"(tr));
    KEXPECT_EQ(t, tr, TSS_SEL);
}

static void paging_state(struct ktest *t)
{
    KEXPECT_TRUE(t, read_cr0() & (1UL << 31));      // PG
    KEXPECT_TRUE(t, read_cr4() & (1UL << 5));       // PAE
    KEXPECT_TRUE(t, rdmsr(MSR_EFER) & (1UL << 10)); // LMA
    // The kernel is reachable through the direct map too.
    extern char __kernel_start[];
    KEXPECT_EQ(t, *(volatile char *)P2V(KV2P(__kernel_start)), *(volatile char *)__kernel_start);
}

static void exception_names(struct ktest *t)
{
    KEXPECT_STREQ(t, trap_name(T_PAGE_FAULT), "page fault");
    KEXPECT_STREQ(t, trap_name(T_DIVIDE), "divide error");
    KEXPECT_STREQ(t, trap_name(T_GPF), "general protection fault");
    KEXPECT_STREQ(t, trap_name(15), "reserved exception");
    KEXPECT_STREQ(t, trap_name(T_TIMER), "interrupt");
}

KTEST_SUITE(kernel,
            KTEST_CASE(tick_advances),
            KTEST_CASE(timer_ms_tracks_guest_time),
            KTEST_CASE(segments_are_kernel),
            KTEST_CASE(paging_state),
            KTEST_CASE(exception_names));
