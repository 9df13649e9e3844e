// Restore at boot: the newest valid checkpoint on the disk becomes the
// running system again (docs/persistence.md, "Restore").
#ifndef RESTORE_H
#define RESTORE_H
#include <stdbool.h>
#include <stdint.h>

// After blk_init and every other subsystem, instead of starting init:
// find the newest valid checkpoint of the two slots, rebuild its
// environments and make them runnable, print
//   restore: generation <g> from slot <A|B>, <n> envs, <p> pages, <t> ms
// and return true (the caller schedules). false: a clean boot (no disk, no
// checkpoint, none valid, one of a finished system, or restore=off), after
// one line saying why; nothing of a rejected checkpoint is left behind.
bool restore_boot(void);
// (The writer learns the generation restored through checkpoint_adopt.)
#endif
