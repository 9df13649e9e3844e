// Page-table isolation: what a user address space maps of the kernel.
//
// QEMU 7.2's TCG does the stack accesses of far call, far return and iretq
// executed at CPL 3 as supervisor accesses, so every supervisor page in a
// user page table is readable, and unless read-only writable, by any
// program (facts.md; Meltdown gives the same on real CPUs). So the user
// view of an address space (pti.h) maps, besides the user half, only what
// the CPU needs to enter the kernel, at the kernel addresses it has there:
//   .entry.text   R-X  the vector stubs, syscall entry, exits (trapasm.S,
//                      syscallasm.S): code every program may read anyway
//   .entry.ro     R--  IDT, GDT, TSS, pti_on: read by the CPU on entry;
//                      readable, they tell a program kernel addresses and
//                      nothing else; never written after boot (gdt.c)
//   .entry.stack  RW-  the entry stack and the double-fault stack: the CPU
//                      pushes there; they hold only the running program's
//                      own registers (trapasm.S scrubs each entry's frame)
// docs/kernel.md lists them with the reasons. The tables describing this
// area are shared by every user view (PML4 entry 511) and live outside it.
#include "cmdline.h"
#include "kernmap.h"
#include "memlayout.h"
#include "panic.h"
#include "pmm.h"
#include "printf.h"
#include "pti.h"
#include "string.h"
#include "vm.h"

volatile uint8_t pti_on __attribute__((section(".entry.ro"))) = 1;

static uint64_t area_pml4e;

static int map_range(uint64_t *pml4, const char *start, const char *end, uint64_t flags)
{
    int pages = 0;
    for (uint64_t va = (uint64_t)start; va < (uint64_t)end; va += PAGE_SIZE, pages++)
        kmap_page(pml4, va, KV2P(va), flags);
    return pages;
}

void pti_init(void)
{
    const char *v = cmdline_get("pti");     // on or off: cmdline_report named anything else
    if (v && strcmp(v, "off") == 0)
        pti_on = 0;
    // A scratch top-level table: only its entry 511 is kept.
    uint64_t pa = pmm_alloc();
    if (!pa)
        panic("pti: no memory for the entry area's tables");
    uint64_t *top = P2V(pa);
    int n = map_range(top, __entry_text_start, __entry_text_end, PTE_P);
    n += map_range(top, __entry_ro_start, __entry_ro_end, PTE_P | PTE_NX);
    n += map_range(top, __entry_stack_start, __entry_stack_end, PTE_P | PTE_W | PTE_NX);
    area_pml4e = top[511];
    pmm_free(pa);
    if (pti_on)
        kprintf("pti: on: user page tables map %d kernel pages (entry area)\n", n);
    else
        kprintf("pti: off: user code runs on the kernel's page tables (comparison only)\n");
}

uint64_t pti_entry_area_pml4e(void)
{
    return area_pml4e;
}
