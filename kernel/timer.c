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

#define CALIBRATE_MS     3
#define CALIBRATE_ROUNDS 5
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

// The three counters read back to back.
struct stamp {
    uint16_t pit;
    uint64_t tsc;
    uint32_t lapic;
};

static void take_stamp(struct stamp *s)
{
    s->pit = pit_count();
    s->tsc = rdtsc();
    s->lapic = lapic_timer_current();
}

// Rates over one stretch of CALIBRATE_MS: both ends are stamps, and the PIT
// says how much time really passed between them, so a host that deschedules
// QEMU in the middle stretches all three counters alike (under TCG they all
// follow host time) and the rates stay right. Only a deschedule inside one
// stamp (three port/register reads) skews a sample; the median drops it.
// Waiting for the PIT's expiry instead, as this once did, counts the delay
// before the expiry is seen into one counter's interval and not the PIT's:
// under load, readings came out 0.02x to 5.6x the true rate.
static bool sample_over_pit(uint64_t *tsc_per_ms_out, uint32_t *lapic_per_ms_out)
{
    if (!pit_countdown_start())
        return false;
    lapic_timer_oneshot_masked(0xffffffff);
    struct stamp a, b;
    take_stamp(&a);
    unsigned want = PIT_HZ / 1000 * CALIBRATE_MS;
    unsigned long spins = 0;
    do {
        take_stamp(&b);
    } while ((uint16_t)(a.pit - b.pit) < want && ++spins < 10000000UL);
    lapic_timer_stop();
    uint64_t pit = (uint16_t)(a.pit - b.pit);
    if (pit < want)
        return false;
    *tsc_per_ms_out = (b.tsc - a.tsc) * PIT_HZ / pit / 1000;
    *lapic_per_ms_out = (uint32_t)((uint64_t)(a.lapic - b.lapic) * PIT_HZ / pit / 1000);
    return true;
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

static void sort_u64(uint64_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

// The median of CALIBRATE_ROUNDS samples, for each counter.
static void calibrate(uint32_t *lapic_per_ms)
{
    uint64_t tsc[CALIBRATE_ROUNDS], lapic[CALIBRATE_ROUNDS];
    for (int i = 0; i < CALIBRATE_ROUNDS; i++) {
        uint32_t l;
        if (!sample_over_pit(&tsc[i], &l)) {
            calibrate_without_pit(lapic_per_ms);
            return;
        }
        lapic[i] = l;
    }
    sort_u64(tsc, CALIBRATE_ROUNDS);
    sort_u64(lapic, CALIBRATE_ROUNDS);
    tsc_per_ms = tsc[CALIBRATE_ROUNDS / 2];
    *lapic_per_ms = (uint32_t)lapic[CALIBRATE_ROUNDS / 2];
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
