// Checkpoints: the user state of the whole system written to the disk
// (docs/persistence.md; the format is checkpoint_format.h).
#ifndef CHECKPOINT_H
#define CHECKPOINT_H
#include <stdbool.h>
#include <stdint.h>

// Boot, after blk_init: the command-line keys (checkpoint_every=,
// checkpoint_full=, checkpoint_cut=), the writer's buffers. Without a disk
// checkpoints are off and every request is refused (-ENODEV).
void checkpoint_init(void);
bool checkpoint_enabled(void);
// Ask for a checkpoint at the next safe point (the host's key, a writer
// waiting for held output to be released). Callable with interrupts off.
void checkpoint_request(const char *why);
// Cheap: checked at every safe point (trap.c, sched.c).
bool checkpoint_due(void);
// At a safe point only (every vproc's state is its saved frame): take one
// checkpoint and print its line. 0 or -errno.
int checkpoint_run(void);

// The restore path (another branch) tells the writer where the disk stands,
// so that the next checkpoint is newer and spares what it restored from:
// the generation restored. The writer re-reads the slots anyway.
void checkpoint_adopt(uint64_t generation);

// map() of len more bytes in the address space pml4: 0, or -ENOSPC if its
// own pages would exceed `page_quota` (only while checkpoints are on: the
// quota bounds what one environment adds to every checkpoint).
long checkpoint_quota_check(uint64_t *pml4, uint64_t len);

void checkpoint_at_poweroff(void);
int checkpoint_write_release_mark(uint64_t generation, uint64_t released_seq);
long sys_checkpoint(void);
#endif
