#ifndef TIMER_H
#define TIMER_H
#include <stdint.h>
// Start the periodic tick at `hz` interrupts per second (LAPIC timer).
void timer_init(unsigned hz);
// Called from trap() on every tick.
void timer_tick(void);
uint64_t timer_ticks(void);
// Guest time since timer_init, in milliseconds (tick resolution).
uint64_t timer_ms(void);
unsigned timer_hz(void);
#endif
