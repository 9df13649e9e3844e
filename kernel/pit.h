#ifndef PIT_H
#define PIT_H
#include <stdbool.h>
#include <stdint.h>
// A one-shot interval of `ms` milliseconds (1..50) on PIT channel 2, in two
// steps so the caller can start its own counter in between: arm programs
// the count with the gate closed, wait opens the gate and busy-waits for the
// end. wait returns false if the PIT never signalled (no PIT or speaker
// port, as on some microvm setups).
void pit_oneshot_arm(unsigned ms);
bool pit_oneshot_wait(void);
// Channel 2 counting down freely from 65535 (54.9 ms), gate open: false if
// there is no PIT. pit_count() reads the count (latched, so the two bytes
// belong together); the distance between two reads is PIT time elapsed.
#define PIT_HZ 1193182
bool pit_countdown_start(void);
uint16_t pit_count(void);
#endif
