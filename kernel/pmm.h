// The physical frame allocator: every usable 4 KiB frame of RAM that is not
// the kernel image, boot data or the low 1 MiB.
#ifndef PMM_H
#define PMM_H
#include <stdint.h>
#include "bootinfo.h"

// Take every usable frame of `mm` (clipped to the direct map), minus the
// reserved ranges.
void pmm_init(const struct memmap *mm);
// A zeroed frame's physical address, or 0 when memory is exhausted (a
// condition callers report as -ENOMEM, never a panic).
uint64_t pmm_alloc(void);
// Two zeroed frames, the first 8 KiB aligned (an address space's PML4
// pair, pti.h); 0 when no such pair is free. Freed one frame at a time.
uint64_t pmm_alloc_pair(void);
// `n` (1..64) physically contiguous zeroed frames, for a device that wants
// one DMA area (a legacy virtio queue); 0 when no such run is free. The run
// never crosses a bitmap word (64 frames, 256 KiB). Freed one frame at a time.
uint64_t pmm_alloc_run(unsigned n);
void pmm_free(uint64_t pa);
uint64_t pmm_free_count(void);
uint64_t pmm_total_count(void);
#endif
