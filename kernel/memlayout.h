// Virtual memory layout, shared by the boot assembly and C.
//
//   0xffffffff80000000  KERNEL_BASE: phys 0..2 GiB, the kernel image lives at
//                       KERNEL_BASE + 1 MiB (mcmodel=kernel needs the top 2 GiB)
//   0xffff800000000000  DIRECT_MAP: all physical memory (at least 4 GiB), so the
//                       kernel can reach boot info, page tables and MMIO by
//                       physical address without mapping anything on demand
//   0x00007ffffffff000  USER_LIMIT: first address user space cannot use (the
//                       last canonical page stays unmapped, so a syscall can
//                       never return to a non-canonical RIP)
//   0x00007fffffff0000  USER_STACK_TOP: 64 KiB initial stack below it
//   0x000000003fe00000  ACT_SEGMENT (2 MiB) and, at 0x3fc00000, ACT_RESTORE:
//                       reserved for activations; map() refuses them
//   0x0000000000400000  USER_BASE: programs link here
//   0x0000000000000000  unmapped up to USER_BASE, so null pointers fault
// The user-side numbers are in abi.h (shared with user space); each
// environment has its own PML4 entries 0..255, entries 256..511 are the one
// shared kernel half (vm.c). That is the kernel's view; the user's view of
// the same address space maps only the entry area of the kernel half
// (pti.h, docs/kernel.md).
#ifndef MEMLAYOUT_H
#define MEMLAYOUT_H

#ifdef __ASSEMBLER__
#define _UL(x) x
#else
#define _UL(x) x##UL
#endif

#define KERNEL_BASE     _UL(0xffffffff80000000)
#define KERNEL_LOAD     _UL(0x100000)           // physical load address
#define DIRECT_MAP      _UL(0xffff800000000000)
#define DIRECT_MAP_SIZE _UL(0x100000000)        // 4 GiB mapped at boot

#define PAGE_SIZE       4096
#define BOOT_STACK_SIZE 16384

// Boot protocols, as passed from boot/entry.S to kmain().
#define BOOT_PROTO_UNKNOWN 0
#define BOOT_PROTO_PVH     1
#define BOOT_PROTO_MB2     2

#ifndef __ASSEMBLER__
#include <stdint.h>

// Kernel image addresses <-> physical.
#define KV2P(a) ((uint64_t)(a) - KERNEL_BASE)
// Any physical address (< DIRECT_MAP_SIZE) <-> direct-map virtual address.
#define P2V(a)  ((void *)((uint64_t)(a) + DIRECT_MAP))
#define V2P(a)  ((uint64_t)(a) - DIRECT_MAP)

// Symbols from boot/linker.ld.
extern char __kernel_start[], __kernel_end[];
extern char __text_start[], __text_end[];
extern char __rodata_start[], __data_start[];
extern char __bss_start[], __bss_end[];
extern char boot_pml4[];                // boot/entry.S: the tables until vm_init
// The entry area (pti.h): all a user page table maps of the kernel.
extern char __entry_text_start[], __entry_text_end[];
extern char __entry_ro_start[], __entry_ro_end[];
extern char __entry_stack_start[], __entry_stack_end[];
#endif

#endif
