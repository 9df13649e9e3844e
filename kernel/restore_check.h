// The restore path's judgement of a checkpoint (restore_check.c): pure
// functions over records copied out of the disk, so the KTAP suite
// `restore_check` tries each one with hostile values. Each returns NULL if
// the record may be used, else the name of the first field that may not
// (a short string for the kernel's one line), with the bad value in *value.
#ifndef RESTORE_CHECK_H
#define RESTORE_CHECK_H
#include <stdint.h>
#include "checkpoint_format.h"

// A manifest larger than this is absurd (checked before it is read).
#define RESTORE_MANIFEST_MAX (64UL << 20)
// A clock beyond this (146 years) is absurd: deadlines add to it.
#define RESTORE_CLOCK_MAX (1UL << 62)
// Held console output a checkpoint may carry.
#define RESTORE_OUTPUT_MAX (1UL << 20)

// The slot header of slot `slot` (0 or 1) on a disk of `disk_blocks`
// blocks: magic, size, checksum, version, generation, geometry, every count.
const char *ckpt_check_header(const struct ckpt_header *h, int slot, uint64_t disk_blocks,
                              uint64_t *value);
// The section table: types in order, record sizes this kernel knows, counts
// within what a kernel can hold, every section inside the manifest.
const char *ckpt_check_sections(const struct ckpt_header *h, uint64_t *value);
// A thread's saved frame, selectors, FPU image (against the CPU's MXCSR
// mask) and flags: what vproc_resume, seg_load and fxrstor would take
// without faulting in the kernel, and nothing a program could not have set.
const char *ckpt_check_thread(const struct ckpt_thread *t, uint32_t mxcsr_mask, uint64_t *value);
// A page record of checkpoint h: its block, generation, protection, flags
// (its owner and address are judged where they are used).
const char *ckpt_check_page(const struct ckpt_page *p, const struct ckpt_header *h,
                            uint64_t *value);
// An environment record of checkpoint h.
const char *ckpt_check_env(const struct ckpt_env *e, const struct ckpt_header *h, uint64_t *value);
#endif
