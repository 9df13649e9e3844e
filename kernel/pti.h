// Page-table isolation (docs/kernel.md, "Isolation").
//
// Every address space is a pair of PML4 pages, 8 KiB aligned: the kernel's
// view (user half + the whole kernel half) and, 4 KiB above it, the user's
// view (the same user half + only the entry area: entry code, GDT/IDT/TSS
// read-only, the entry stacks). The kernel runs on the first, user code on
// the second, so switching is setting or clearing one CR3 bit, which the
// entry and exit code can do without touching memory the user view lacks.
#ifndef PTI_H
#define PTI_H

#define PTI_USER_PML4_BIT 12
#define PTI_USER_PML4     0x1000        // CR3 of the user view = kernel view + this

#ifdef __ASSEMBLY__
// Load the kernel view of the current address space (clobbers \reg and
// the flags). A no-op with isolation off (`pti=off`): then the user runs
// on the kernel view and no CR3 write is paid.
        .macro switch_to_kernel_cr3 reg
        testb $1, pti_on(%rip)
        jz 99f
        movq %cr3, \reg
        andq $~PTI_USER_PML4, \reg
        movq \reg, %cr3
99:
        .endm

// The user view, from the kernel view that is loaded.
        .macro switch_to_user_cr3 reg
        testb $1, pti_on(%rip)
        jz 98f
        movq %cr3, \reg
        orq $PTI_USER_PML4, \reg
        movq \reg, %cr3
98:
        .endm
#else
#include <stdbool.h>
#include <stdint.h>

// Read by the entry code; in the read-only entry area.
extern volatile uint8_t pti_on;

// Parse `pti=on|off` and build the user view's kernel part (the entry
// area); before vm_init.
void pti_init(void);
// PML4 entry 511 of every user view: the entry area and nothing else.
uint64_t pti_entry_area_pml4e(void);
#endif
#endif
