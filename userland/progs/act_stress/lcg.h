// The seven streams of lcg.S. Multipliers are 1 mod 4 and increments odd
// (a full period mod 2^64); both fit a sign-extended 32-bit immediate.
#ifndef LCG_H
#define LCG_H
#define LCG_STREAMS 7
#define LCG_A0 1103515245
#define LCG_A1 69069
#define LCG_A2 1664525
#define LCG_A3 214013
#define LCG_A4 134775813
#define LCG_A5 22695477
#define LCG_A6 1140671485
#define LCG_C0 12345
#define LCG_C1 1
#define LCG_C2 1013904223
#define LCG_C3 2531011
#define LCG_C4 7
#define LCG_C5 0x3039
#define LCG_C6 12820163

#ifndef __ASSEMBLER__
#include <stdint.h>
struct lcg {
    uint64_t x[LCG_STREAMS];
    uint64_t s[LCG_STREAMS];
};
void lcg_run(struct lcg *st, uint64_t n);
#endif
#endif
