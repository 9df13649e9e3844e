// Address spaces: 4-level page tables whose upper half (PML4 entries
// 256..511) is the one kernel mapping every address space shares, and
// whose lower half is one environment's user space. Each has a second,
// user-side PML4 that maps only the entry area of the kernel (pti.h); the
// `pml4` these functions take is always the kernel's view.
#ifndef VM_H
#define VM_H
#include <stdbool.h>
#include <stdint.h>

#define VM_READ  1
#define VM_WRITE 2
#define VM_EXEC  4      // without it the page is NX

// Page-table entry bits.
#define PTE_P   (1UL << 0)
#define PTE_W   (1UL << 1)
#define PTE_U   (1UL << 2)
#define PTE_A   (1UL << 5)
#define PTE_D   (1UL << 6)     // dirty: the CPU sets it on a write; checkpoints clear it (checkpoint.c)
#define PTE_PS  (1UL << 7)
#define PTE_NX  (1UL << 63)
// An available bit: the frame is not the address space's own but a shared
// region's (shm.c). Unmapping such a page (unmap, the end of the
// environment) clears the entry and leaves the frame to its region.
#define PTE_SHARED (1UL << 9)
#define PTE_ADDR 0x000ffffffffff000UL

void vm_init(void);
// The kernel-only address space (boot page tables), used when no
// environment's is loaded.
uint64_t *vm_kernel_aspace(void);

uint64_t *vm_new_aspace(void);                  // NULL on OOM
// The user's view of an address space (pti.h): its user half plus only the
// kernel's entry area.
uint64_t *vm_user_view(uint64_t *pml4);
// Is pml4 (the kernel's view) the loaded page table?
bool vm_loaded(uint64_t *pml4);
void vm_free_aspace(uint64_t *pml4);            // frees user pages and tables
void vm_switch(uint64_t *pml4);                 // load into CR3 (if not already)

// Anonymous zeroed pages at [va, va+len) in user space. 0, -ENOMEM (nothing
// left mapped), -EINVAL (unaligned, empty, outside user space, in the
// activation area, or overlapping an existing mapping).
int vm_map_user(uint64_t *pml4, uint64_t va, uint64_t len, int prot);
// The same for the kernel-owned activation area [ACT_RESTORE, ACT_SEGMENT
// + 2 MiB), which vm_map_user refuses: only activation.c maps there.
int vm_map_act(uint64_t *pml4, uint64_t va, uint64_t len, int prot);
// Unmap and free, and free the page tables (PT, PD) this empties; pages not
// mapped are skipped. 0, -EINVAL, or -ERESTART when one call's work budget
// ran out first: rerun it (the syscall is rewound) to finish the job.
int vm_unmap_user(uint64_t *pml4, uint64_t va, uint64_t len);
// Map the frames frames[0..n) (owned by a shared region, not by this
// address space: PTE_SHARED) at [va, va + n pages). The same rules as
// vm_map_user: 0, -EINVAL (bad range, activation area, overlap, bad prot),
// -ENOMEM (a page table could not be allocated; nothing left mapped).
int vm_map_frames(uint64_t *pml4, uint64_t va, const uint64_t *frames, uint64_t n, int prot);
// Unmap what is still mapped of such a mapping: only entries that are
// PTE_SHARED and hold frames[i] at va + i pages (the program may have
// unmapped or replaced some). Frees no frame; at most n pages of work.
void vm_unmap_frames(uint64_t *pml4, uint64_t va, const uint64_t *frames, uint64_t n);
// Copy into any address space through the direct map (no SMAP, no CR3
// switch): for loaders. -EFAULT if a page is not mapped.
int vm_write_aspace(uint64_t *pml4, uint64_t va, const void *src, uint64_t len);
// The leaf entry for va, or 0 if none.
uint64_t vm_lookup(uint64_t *pml4, uint64_t va);
// The leaf entry slot for va (user half), or NULL if no page is mapped there.
uint64_t *vm_pte(uint64_t *pml4, uint64_t va);
// Set the dirty bit of the page at va, if mapped: for the kernel's writes
// through the direct map, which the CPU does not mark in the user's entry
// (incremental checkpoints must still see them).
void vm_mark_dirty(uint64_t *pml4, uint64_t va);
// Call fn(va, pte slot, arg) for every present leaf of the user half, in
// ascending va order; stops early when fn returns nonzero (that value).
int vm_walk_user(uint64_t *pml4, int (*fn)(uint64_t va, uint64_t *pte, void *arg), void *arg);

// Address predicates (pure; tested in kernel/tests/test_vm.c).
static inline bool is_canonical(uint64_t va)
{
    // Bits 63..47 all equal: sign extension of a 48-bit address.
    return (uint64_t)((int64_t)(va << 16) >> 16) == va;
}
// [va, va+len) lies entirely below USER_LIMIT (hence canonical, never kernel).
bool is_user_range(uint64_t va, uint64_t len);

// User memory access with fault recovery (usercopy.c): -EFAULT, never a
// kernel fault, for unmapped, kernel or non-canonical addresses.
int copyin(void *dst, uint64_t uva, uint64_t len);
int copyout(uint64_t uva, const void *src, uint64_t len);
// Copies a NUL-terminated string of at most max-1 characters; returns its
// length, -EFAULT, or -ENAMETOOLONG when no NUL comes within max bytes.
long strncpy_from_user(char *dst, uint64_t uva, long max);
#endif
