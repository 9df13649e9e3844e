#ifndef TIMER_H
#define TIMER_H
#include <stdint.h>
// Calibrate the clocks and start the periodic tick at `hz` per second.
void timer_init(unsigned long hz);     // 0 or above 1 MHz: 100
// Called from trap() on every tick.
void timer_tick(void);
// Ticks taken so far: a count of interrupts, not a clock (late ticks are
// dropped, not delivered twice).
uint64_t timer_ticks(void);
// Guest time since timer_init (the TSC, calibrated against the PIT).
uint64_t timer_ms(void);
uint64_t timer_ns(void);
unsigned timer_hz(void);
// From now on timer_ns() is at least `ns` (never moved back): a restored
// checkpoint's clock goes on from its capture (restore.c).
void timer_advance_to(uint64_t ns);
#endif
