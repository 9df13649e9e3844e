// The kernel heap.
#ifndef KALLOC_H
#define KALLOC_H
#include <stddef.h>
// Zeroed memory, 16-byte aligned, or NULL when memory is exhausted.
// Sizes up to KMALLOC_MAX only (one page minus the header).
void *kmalloc(size_t size);
void kfree(void *p);

#define KMALLOC_MAX (4096 - 16)
#endif
