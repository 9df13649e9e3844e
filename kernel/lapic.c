// The local APIC, in xAPIC (MMIO) mode: interrupt acknowledgement and the
// per-CPU timer that drives the tick.
#include "lapic.h"
#include "memlayout.h"
#include "trap.h"
#include "x86.h"

// Register offsets (bytes).
#define LAPIC_ID       0x020
#define LAPIC_EOI      0x0b0
#define LAPIC_SVR      0x0f0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR  0x390
#define LAPIC_TIMER_DIV  0x3e0

#define SVR_ENABLE      0x100
#define LVT_MASKED      (1 << 16)
#define LVT_PERIODIC    (1 << 17)
#define LVT_DM_NMI      (4 << 8)
#define DIV_BY_16       0x3

static volatile uint32_t *lapic;

static uint32_t lapic_read(int reg)
{
    return lapic[reg / 4];
}

static void lapic_write(int reg, uint32_t v)
{
    lapic[reg / 4] = v;
    (void)lapic[LAPIC_ID / 4];  // read back: make sure the write is posted
}

void lapic_init(void)
{
    // The APIC's physical base is below 4 GiB, hence inside the direct map.
    // (Under TCG caching attributes do not matter; real hardware relies on
    // the firmware's MTRRs marking this range uncacheable.)
    uint64_t base = rdmsr(MSR_APIC_BASE) & ~0xfffULL;
    lapic = P2V(base);
    lapic_write(LAPIC_SVR, SVR_ENABLE | T_SPURIOUS);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    // LINT1 delivers NMIs (as firmware sets it up): QEMU's inject-nmi
    // arrives there, and the kernel takes it as a restart request.
    lapic_write(LAPIC_LVT_LINT1, LVT_DM_NMI);
    lapic_timer_stop();
}

uint32_t lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

void lapic_timer_oneshot_masked(uint32_t initial)
{
    lapic_write(LAPIC_TIMER_DIV, DIV_BY_16);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | T_TIMER);
    lapic_write(LAPIC_TIMER_INIT, initial);
}

void lapic_timer_periodic(int vector, uint32_t initial)
{
    lapic_write(LAPIC_TIMER_DIV, DIV_BY_16);
    lapic_write(LAPIC_LVT_TIMER, LVT_PERIODIC | vector);
    lapic_write(LAPIC_TIMER_INIT, initial);
}

uint32_t lapic_timer_current(void)
{
    return lapic_read(LAPIC_TIMER_CUR);
}

void lapic_timer_stop(void)
{
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | T_TIMER);
    lapic_write(LAPIC_TIMER_INIT, 0);
}
