#ifndef USERCOPY_H
#define USERCOPY_H
#include <stdint.h>
// The fixup address for a fault at `rip` inside a user-access routine, or
// 0 if `rip` is not one of them (trap.c).
uint64_t extable_fixup(uint64_t rip);
#endif
