#ifndef GDT_H
#define GDT_H
#include <stdint.h>

// Selector layout. The order is dictated by syscall/sysret: with
// STAR[47:32] = KERNEL_CS, syscall loads CS = 0x08 and SS = 0x10; with
// STAR[63:48] = 0x10, sysretq loads SS = 0x10 + 8 = USER_DS and
// CS = 0x10 + 16 = USER_CS. Hence user data *before* user code.
#define KERNEL_CS  0x08
#define KERNEL_DS  0x10
#define USER_DS    (0x18 | 3)
#define USER_CS    (0x20 | 3)
#define TSS_SEL    0x28     // 16-byte descriptor: slots 5 and 6

// Interrupt stack table slots (1-based, as the IDT gate encodes them).
#define IST_DOUBLE_FAULT 1
#define IST_NMI          2

void gdt_init(void);
#endif
