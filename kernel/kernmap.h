// The kernel's own page tables (kernmap.c).
#ifndef KERNMAP_H
#define KERNMAP_H
#include <stdint.h>

// The kernel half every address space shares, and the page table the
// kernel runs on when no environment's is loaded.
extern uint64_t kernel_pml4[512];

// Build kernel_pml4 (W^X, see kernmap.c) and switch to it.
void kernmap_init(void);
// Map one 4 KiB page va -> pa with leaf `flags` in the tree under `pml4`,
// creating kernel-only intermediate tables. Boot time only: panics when
// memory runs out or when va already holds a large page.
void kmap_page(uint64_t *pml4, uint64_t va, uint64_t pa, uint64_t flags);
// The leaf flags (P, W, NX) of a kernel image page; its direct-map alias
// gets the same without execute.
uint64_t kernmap_image_flags(uint64_t va);
#endif
