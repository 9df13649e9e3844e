// The GDT and the TSS.
//
// In 64-bit mode segments are mostly vestigial; the GDT exists for the
// privilege levels in CS/SS and to point at the TSS, whose job here is to
// name the stacks the CPU switches to: rsp0 for entries from user mode, and
// an IST stack for double faults, so that a kernel stack overflow produces a
// readable panic instead of a triple fault.
//
// Both live in the entry area (pti.h): every user page table maps them
// read-only, because the CPU reads them on every entry from user mode.
// Read-only means the CPU must never need to write them: every descriptor
// is created with its accessed bit set (a segment load would otherwise set
// it, a write to a read-only page), and the TSS busy bit is set by `ltr`
// here, before the page becomes read-only (kernmap.c). For the same reason
// rsp0 never changes: it is the per-CPU entry stack (trapasm.S), and
// entries copy the frame from there into the running vproc.
#include <stdint.h>
#include "gdt.h"
#include "memlayout.h"

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

_Static_assert(sizeof(struct tss) == 104, "TSS layout");

// Descriptor flag bits (high dword of a segment descriptor).
#define SEG_LONG   (1ULL << 53)     // L: 64-bit code
#define SEG_DB     (1ULL << 54)     // D/B: 32-bit default (data: ignored in 64-bit)
#define SEG_GRAN   (1ULL << 55)     // limit in 4 KiB units
#define SEG_P      (1ULL << 47)
#define SEG_DPL(n) ((uint64_t)(n) << 45)
#define SEG_S      (1ULL << 44)     // code/data (not system)
#define SEG_CODE   (0xbULL << 40)   // execute/read, accessed
#define SEG_DATA   (0x3ULL << 40)   // read/write, accessed
#define SEG_TSS    (0x9ULL << 40)   // 64-bit TSS, available
#define SEG_LIMIT4G (0xffffULL | (0xfULL << 48))

#define CODE64(dpl) (SEG_LIMIT4G | SEG_GRAN | SEG_LONG | SEG_P | SEG_DPL(dpl) | SEG_S | SEG_CODE)
#define DATA(dpl)   (SEG_LIMIT4G | SEG_GRAN | SEG_DB | SEG_P | SEG_DPL(dpl) | SEG_S | SEG_DATA)

#define ENTRY_RO __attribute__((section(".entry.ro")))

static struct tss tss ENTRY_RO __attribute__((aligned(16)));
static uint64_t gdt[7] ENTRY_RO __attribute__((aligned(16)));
extern char df_stack_top[], nmi_stack_top[], entry_stack_top[];     // trapasm.S

// A 64-bit TSS descriptor takes two slots: the usual 8-byte layout plus
// the upper 32 bits of the base.
static void set_tss_descriptor(uint64_t *slot, uint64_t base, uint32_t limit)
{
    slot[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | SEG_TSS | SEG_P |
              ((uint64_t)((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    slot[1] = base >> 32;
}

static void load_gdt(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) ptr = { sizeof(gdt) - 1, (uint64_t)gdt };

    // A far return is the only way to reload CS in 64-bit mode.
    asm volatile(
        "lgdt %0\n\t"
        "pushq %1\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "movw %w2, %%ax\n\t"
        "movw %%ax, %%ds\n\t"
        "movw %%ax, %%es\n\t"
        "movw %%ax, %%ss\n\t"
        "xorl %%eax, %%eax\n\t"
        "movw %%ax, %%fs\n\t"
        "movw %%ax, %%gs\n\t"
        "ltr %w3"
        :
        : "m"(ptr), "i"(KERNEL_CS), "i"(KERNEL_DS), "r"((uint16_t)TSS_SEL)
        : "rax", "memory");
}

void gdt_init(void)
{
    gdt[0] = 0;
    gdt[KERNEL_CS >> 3] = CODE64(0);
    gdt[KERNEL_DS >> 3] = DATA(0);
    gdt[USER_DS >> 3] = DATA(3);
    gdt[USER_CS >> 3] = CODE64(3);
    set_tss_descriptor(&gdt[TSS_SEL >> 3], (uint64_t)&tss, sizeof(tss) - 1);

    tss.ist[IST_DOUBLE_FAULT - 1] = (uint64_t)df_stack_top;
    tss.ist[IST_NMI - 1] = (uint64_t)nmi_stack_top;
    tss.iomap_base = sizeof(tss);   // no I/O permission bitmap: user port I/O faults
    tss.rsp[0] = (uint64_t)entry_stack_top;

    load_gdt();
}
