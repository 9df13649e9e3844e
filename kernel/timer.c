// The tick: the LAPIC timer in periodic mode at `hz` per second.
//
// The LAPIC timer's input clock is not architecturally known, so it is
// measured once against the PIT. Under TCG both run on QEMU's virtual clock,
// so "guest time" here is what the guest sees, whatever the host load.
#include "lapic.h"
#include "pit.h"
#include "printf.h"
#include "timer.h"
#include "trap.h"

#define CALIBRATE_SHORT_MS 2
#define CALIBRATE_LONG_MS  12
// QEMU's LAPIC counts at 1 GHz before the divider: the fallback when the
// PIT cannot be used.
#define FALLBACK_TICKS_PER_MS (1000000 / 16)

static volatile uint64_t ticks;
static unsigned hz;

// LAPIC counts elapsed over a PIT interval of `ms`; 0 if the PIT is absent.
static uint32_t lapic_counts_over(unsigned ms)
{
    // Arm the PIT first so that its programming is not inside the interval.
    pit_oneshot_arm(ms);
    lapic_timer_oneshot_masked(0xffffffff);
    bool ok = pit_oneshot_wait();
    uint32_t elapsed = 0xffffffff - lapic_timer_current();
    lapic_timer_stop();
    return ok ? elapsed : 0;
}

// LAPIC timer counts (after the divide-by-16) per millisecond. Two
// intervals of different length, so that the fixed cost of starting and
// polling (about 0.5% of a 10 ms run under TCG) cancels out in the
// difference.
static uint32_t calibrate(void)
{
    uint32_t shorter = lapic_counts_over(CALIBRATE_SHORT_MS);
    uint32_t longer = lapic_counts_over(CALIBRATE_LONG_MS);
    if (!shorter || longer <= shorter) {
        kprintf("timer: PIT calibration failed, assuming a 1 GHz APIC clock\n");
        return FALLBACK_TICKS_PER_MS;
    }
    return (longer - shorter) / (CALIBRATE_LONG_MS - CALIBRATE_SHORT_MS);
}

void timer_init(unsigned want_hz)
{
    if (want_hz == 0 || want_hz > 10000)
        want_hz = 100;
    hz = want_hz;
    uint32_t per_ms = calibrate();
    uint32_t initial = (uint32_t)((uint64_t)per_ms * 1000 / hz);
    lapic_timer_periodic(T_TIMER, initial ? initial : 1);
    kprintf("timer: lapic %u counts/ms, tick %u Hz\n", per_ms, hz);
}

void timer_tick(void)
{
    ticks++;
}

uint64_t timer_ticks(void)
{
    return ticks;
}

uint64_t timer_ms(void)
{
    return ticks * 1000 / hz;
}

unsigned timer_hz(void)
{
    return hz;
}
