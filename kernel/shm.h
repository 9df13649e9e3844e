// Shared memory regions: frames that several environments map at once
// (docs/abi.md, "Shared memory"). A region lives while any environment
// holds it, by a handle or by a mapping.
#ifndef SHM_H
#define SHM_H
#include <stdbool.h>
#include <stdint.h>
#include "abi.h"

struct env;
struct shm_region;

// One environment's hold on one region: a handle, a mapping, or both.
struct shm_slot {
    struct shm_region *region;  // NULL: the slot is free
    uint32_t gen;               // bumped when the handle goes: a stale handle misses
    bool has_handle;
    uint64_t va;                // where it is mapped, 0 if not
};

// Lives in struct env, zeroed with it.
struct shm_table {
    struct shm_slot slot[SHM_REGIONS_MAX];
    uint64_t bytes;             // sizes of the regions held, for SHM_BYTES_MAX
};

long sys_shm_create(uint64_t size);
long sys_shm_map(uint64_t handle, uint64_t va, uint64_t prot);
long sys_shm_unmap(uint64_t va);
long sys_shm_close(uint64_t handle);

// spawn_shared, in two steps around the spawn: check the caller's handles
// (copied from user memory) and note their regions in gift[]: n, or
// -E2BIG (more than SHM_REGIONS_MAX), -EFAULT, -EBADF, -ENOSPC (more bytes
// than a child may hold). Then, the child created and not yet run, give
// it the regions as its handles SHM_GIVEN(0..n-1); this cannot fail.
long shm_gift_check(struct env *e, uint64_t handles_uva, uint64_t n,
                    struct shm_region *gift[SHM_REGIONS_MAX]);
void shm_gift_give(struct env *child, struct shm_region *gift[], uint64_t n);
// The environment ended (its address space is gone already): let go of
// every region it held; a region nobody holds any more is freed.
void shm_env_release(struct env *e);
// For checkpoints (checkpoint.c): a region's identity (a creation number,
// never reused), its size in pages, and frame i (0 past the end).
uint64_t shm_region_serial(const struct shm_region *r);
uint64_t shm_region_pages(const struct shm_region *r);
uint64_t shm_region_frame(const struct shm_region *r, uint64_t i);

// Restore (restore.c). A region of npages zeroed frames held by the
// restore itself (NULL: a size no region can have, or no memory; its
// frames: shm_region_frame), and the restore's hold dropped once every
// environment's is made.
struct shm_region *shm_restore_region(uint64_t npages);
void shm_restore_put(struct shm_region *r);
// e holds r in slot i (handle generation gen) and/or maps it at va: the
// same rules as shm_map and the limits as shm_create. 0, -EINVAL, -ENOSPC,
// -ENOMEM.
int shm_restore_hold(struct env *e, uint32_t i, struct shm_region *r, uint32_t gen,
                     bool has_handle, uint64_t va, uint64_t prot);
// Pure parts (kernel/tests/test_shm.c).
uint64_t shm_handle(int slot, uint32_t gen);
int shm_handle_slot(uint64_t handle, uint32_t *gen);   // -1 if it cannot be one
#endif
