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
// checkpoint, or none valid), after one line saying why; nothing of a
// rejected checkpoint is left behind.
bool restore_boot(void);

// The checkpoint restored at boot: its generation, and the slot (0, 1) it
// came from; 0 / -1 after a clean boot. For the checkpoint writer, whose
// next generation follows it.
uint64_t restore_generation(void);
int restore_slot(void);
#endif
