#ifndef LAPIC_H
#define LAPIC_H
#include <stdint.h>
void lapic_init(void);
void lapic_eoi(void);
uint32_t lapic_id(void);       // this CPU's APIC id: where device interrupts go
// Timer: counts down from `initial` at the bus clock divided by 16.
void lapic_timer_oneshot_masked(uint32_t initial);
void lapic_timer_periodic(int vector, uint32_t initial);
uint32_t lapic_timer_current(void);
void lapic_timer_stop(void);
#endif
