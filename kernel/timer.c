// Time: a periodic tick for preemption, and a clock for "how late is it".
//
// They are deliberately separate. The tick is the LAPIC timer in periodic
// mode at `hz` per second; counting ticks is *not* a clock, because a tick
// delivered late (the host was busy, the guest had interrupts off) makes
// QEMU skip the periods it missed rather than deliver them twice, and the
// count falls behind. The clock is the TSC, read directly, so timer_ms()
// is right no matter how many ticks were lost.
//
// Neither clock's rate is architecturally known, so both are measured once
// against the PIT, whose input is a fixed 1.193182 MHz. Under TCG all of
// them run on QEMU's virtual clock, which stands still while the VM is
// stopped: "guest time" is what the guest experienced.
#include "lapic.h"
#include "pit.h"
#include "printf.h"
#include "timer.h"
#include "trap.h"
#include "x86.h"

#define CALIBRATE_SHORT_MS 1
#define CALIBRATE_LONG_MS  6
#define CALIBRATE_ROUNDS   3
// QEMU's LAPIC counts at 1 GHz before the divide-by-16: the assumption
// when there is no PIT to measure against (microvm without a speaker port).
#define FALLBACK_LAPIC_PER_MS (1000000 / 16)

static volatile uint64_t ticks;
static unsigned hz;
static uint64_t tsc_per_ms;
static uint64_t tsc_at_start;
// Added to the TSC's reading: a restored checkpoint's clock (restore.c)
// continues from where the checkpoint was taken, so clock_ns() and every
// absolute deadline saved in user memory never see time go back.
static uint64_t offset_ns;

struct sample {
    uint32_t lapic;     // LAPIC counts elapsed
    uint64_t tsc;       // TSC cycles elapsed
};

// Both counters over a PIT interval of `ms`; false if the PIT is absent.
static bool sample_over_pit(unsigned ms, struct sample *s)
{
    // Arm the PIT first so that its programming is not inside the interval.
    pit_oneshot_arm(ms);
    lapic_timer_oneshot_masked(0xffffffff);
    uint64_t tsc0 = rdtsc();
    bool ok = pit_oneshot_wait();
    s->tsc = rdtsc() - tsc0;
    s->lapic = 0xffffffff - lapic_timer_current();
    lapic_timer_stop();
    return ok;
}

// Without a PIT: trust the LAPIC rate and measure the TSC against it.
static void calibrate_without_pit(uint32_t *lapic_per_ms)
{
    kprintf("timer: no PIT, assuming a 1 GHz APIC clock\n");
    *lapic_per_ms = FALLBACK_LAPIC_PER_MS;
    lapic_timer_oneshot_masked(FALLBACK_LAPIC_PER_MS * 10);
    uint64_t tsc0 = rdtsc();
    while (lapic_timer_current() != 0)
        cpu_relax();
    tsc_per_ms = (rdtsc() - tsc0) / 10;
    lapic_timer_stop();
}

// Counts per millisecond of both counters. Two intervals of different
// length, so the fixed cost of starting and polling (0.5% of a 10 ms run
// under TCG) cancels out in the difference. Each is measured three times
// and the smallest reading kept: under TCG the counters follow host time,
// so a host that deschedules QEMU across the PIT's expiry makes a reading
// too long (seen on a loaded CI host: both rates doubled), never too short.
static bool shortest_over_pit(unsigned ms, struct sample *best)
{
    for (int i = 0; i < CALIBRATE_ROUNDS; i++) {
        struct sample s;
        if (!sample_over_pit(ms, &s))
            return false;
        if (i == 0 || s.lapic < best->lapic)
            best->lapic = s.lapic;
        if (i == 0 || s.tsc < best->tsc)
            best->tsc = s.tsc;
    }
    return true;
}

static void calibrate(uint32_t *lapic_per_ms)
{
    struct sample shorter, longer;
    if (!shortest_over_pit(CALIBRATE_SHORT_MS, &shorter) ||
        !shortest_over_pit(CALIBRATE_LONG_MS, &longer) ||
        longer.lapic <= shorter.lapic || longer.tsc <= shorter.tsc) {
        calibrate_without_pit(lapic_per_ms);
        return;
    }
    unsigned span = CALIBRATE_LONG_MS - CALIBRATE_SHORT_MS;
    *lapic_per_ms = (longer.lapic - shorter.lapic) / span;
    tsc_per_ms = (longer.tsc - shorter.tsc) / span;
}

void timer_init(unsigned long want_hz)
{
    // Judged as the full unsigned long the command line gave: narrowed
    // first, hz=4294967297 would have become a 1 Hz tick.
    if (want_hz == 0 || want_hz > 1000000)   // 1 MHz: a tick every ~1000 instructions under icount
        want_hz = 100;
    hz = (unsigned)want_hz;
    uint32_t lapic_per_ms;
    calibrate(&lapic_per_ms);
    if (tsc_per_ms == 0)
        tsc_per_ms = 1;     // a TSC that does not move: keep timer_ms() defined
    tsc_at_start = rdtsc();
    uint32_t initial = (uint32_t)((uint64_t)lapic_per_ms * 1000 / hz);
    lapic_timer_periodic(T_TIMER, initial ? initial : 1);
    kprintf("timer: lapic %u counts/ms, tsc %lu cycles/ms, tick %u Hz\n",
            lapic_per_ms, tsc_per_ms, hz);
}

void timer_tick(void)
{
    ticks++;
}

uint64_t timer_ticks(void)
{
    return ticks;
}

uint64_t timer_ns(void)
{
    if (!tsc_per_ms)
        return 0;           // before timer_init
    uint64_t cycles = rdtsc() - tsc_at_start;
    // Split to stay within 64 bits (no libgcc for 128-bit division).
    return offset_ns + cycles / tsc_per_ms * 1000000 +
           cycles % tsc_per_ms * 1000000 / tsc_per_ms;
}

uint64_t timer_ms(void)
{
    if (!tsc_per_ms)
        return 0;           // before timer_init
    return offset_ns / 1000000 + (rdtsc() - tsc_at_start) / tsc_per_ms;
}

void timer_advance_to(uint64_t ns)
{
    uint64_t now = timer_ns();
    if (ns > now)
        offset_ns += ns - now;
}

unsigned timer_hz(void)
{
    return hz;
}
