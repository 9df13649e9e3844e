// Boot entry: from 32-bit protected mode (paging off) to 64-bit C.
//
// Two loaders reach this file, both leaving us in flat 32-bit protected mode
// with paging off:
//   - QEMU -kernel (PVH): finds the XEN_ELFNOTE_PHYS32_ENTRY note below and
//     jumps to pvh_entry with EBX = physical address of hvm_start_info.
//   - GRUB (multiboot2): finds the header below and jumps to mb2_entry with
//     EAX = 0x36d76289 and EBX = physical address of the boot information.
// The kernel is linked at KERNEL_BASE + 1 MiB but loaded at 1 MiB, so until
// paging is on every symbol address must be converted with PHYS().
//
// There is deliberately no multiboot1 header: QEMU would prefer it over the
// PVH note and then refuse a 64-bit ELF.

#include "memlayout.h"

#define PHYS(x)  ((x) - KERNEL_BASE)

#define CR0_PG      (1 << 31)
#define CR4_PAE     (1 << 5)
#define EFER_LME    (1 << 8)
#define EFER_NXE    (1 << 11)
#define PTE_P       0x1
#define PTE_W       0x2
#define PTE_PS      0x80        // 2 MiB page in a page directory entry
#define MB2_MAGIC   0x36d76289
#define MSR_EFER_NUM 0xc0000080
#define COM1        0x3f8

// ---------------------------------------------------------------- PVH note
// QEMU reads the descriptor as a 64-bit value for an ELF64 image and aligns
// the name to the PT_NOTE segment's alignment, so: 4-byte alignment and a
// .quad descriptor.
        .section .note.Xen, "a", @note
        .balign 4
        .long 2f - 1f                   // namesz
        .long 4f - 3f                   // descsz
        .long 18                        // XEN_ELFNOTE_PHYS32_ENTRY
1:      .asciz "Xen"
2:      .balign 4
3:      .quad PHYS(pvh_entry)
4:      .balign 4

// ---------------------------------------------------------- multiboot2 header
// Must sit 8-aligned in the first 32 KiB of the file; the linker script puts
// .multiboot2 first in .text.
        .section .multiboot2, "a"
        .balign 8
mb2_header:
        .long 0xe85250d6                // magic
        .long 0                         // architecture: i386 protected mode
        .long mb2_header_end - mb2_header
        .long -(0xe85250d6 + (mb2_header_end - mb2_header))
        // Entry address tag: the ELF entry is a higher-half address that
        // GRUB cannot jump to from 32-bit mode.
        .balign 8
        .short 3, 0
        .long 12
        .long PHYS(mb2_entry)
        .balign 8
        .short 0, 0                     // end tag
        .long 8
mb2_header_end:

// ------------------------------------------------------------ 32-bit entry
        .section .text.boot, "ax"
        .code32

        .globl pvh_entry
pvh_entry:
        cli
        cld
        movl $BOOT_PROTO_PVH, %ebp
        movl %ebx, %esi
        jmp common32

        .globl mb2_entry
mb2_entry:
        cli
        cld
        movl $BOOT_PROTO_MB2, %ebp
        movl %ebx, %esi
        cmpl $MB2_MAGIC, %eax
        je common32
        movl $BOOT_PROTO_UNKNOWN, %ebp  // kmain says so on the console

// EBP = protocol, ESI = boot info (physical). Both survive to kmain.
common32:
        // No stack yet and none needed: everything here is straight-line.
        // Refuse politely on a CPU without long mode or NX instead of
        // triple-faulting later.
        movl $0x80000000, %eax
        cpuid
        cmpl $0x80000001, %eax
        jb no_long_mode
        movl $0x80000001, %eax
        cpuid
        testl $(1 << 29), %edx          // LM
        jz no_long_mode
        movl %edx, %ebx                 // keep the NX bit (20) for later

        // Zero .bss: the page tables and stacks live there, and not every
        // loader promises to clear memory beyond the file image.
        movl $PHYS(__bss_start), %edi
        movl $PHYS(__bss_end), %ecx
        subl %edi, %ecx
        shrl $2, %ecx
        xorl %eax, %eax
        rep stosl

        // Four page directories of 2 MiB pages map physical 0..4 GiB.
        movl $PHYS(boot_pd), %edi
        movl $(PTE_P | PTE_W | PTE_PS), %eax
        xorl %edx, %edx                 // high half of the entry
        movl $2048, %ecx
1:      movl %eax, (%edi)
        movl %edx, 4(%edi)
        addl $0x200000, %eax
        adcl $0, %edx
        addl $8, %edi
        loop 1b

        // Direct map: PML4[256] -> boot_pdpt_direct[0..3] -> boot_pd[0..3].
        movl $PHYS(boot_pdpt_direct), %edi
        movl $(PHYS(boot_pd) + PTE_P + PTE_W), %eax
        movl $4, %ecx
2:      movl %eax, (%edi)
        addl $PAGE_SIZE, %eax
        addl $8, %edi
        loop 2b
        movl $(PHYS(boot_pdpt_direct) + PTE_P + PTE_W), PHYS(boot_pml4) + 256 * 8

        // Identity map of 0..1 GiB, only so the instructions right after
        // enabling paging keep running; kmain removes it.
        movl $(PHYS(boot_pdpt_ident) + PTE_P + PTE_W), PHYS(boot_pml4)
        movl $(PHYS(boot_pd) + PTE_P + PTE_W), PHYS(boot_pdpt_ident)

        // Kernel: PML4[511] -> PDPT[510, 511] -> physical 0..2 GiB.
        movl $(PHYS(boot_pdpt_high) + PTE_P + PTE_W), PHYS(boot_pml4) + 511 * 8
        movl $(PHYS(boot_pd) + PTE_P + PTE_W), PHYS(boot_pdpt_high) + 510 * 8
        movl $(PHYS(boot_pd) + PAGE_SIZE + PTE_P + PTE_W), PHYS(boot_pdpt_high) + 511 * 8

        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl $PHYS(boot_pml4), %eax
        movl %eax, %cr3

        movl $MSR_EFER_NUM, %ecx
        rdmsr
        orl $EFER_LME, %eax
        testl $(1 << 20), %ebx          // NX supported?
        jz 3f
        orl $EFER_NXE, %eax
3:      wrmsr

        movl %cr0, %eax
        orl $CR0_PG, %eax
        movl %eax, %cr0

        lgdt PHYS(boot_gdt_ptr32)
        ljmp $0x08, $PHYS(entry64_low)

// Print a message on COM1 and stop; no stack, no C.
no_long_mode:
        movl $PHYS(no_long_mode_msg), %esi
1:      lodsb
        testb %al, %al
        jz 2f
        movw $COM1, %dx
        outb %al, %dx
        jmp 1b
2:      hlt
        jmp 2b

// ------------------------------------------------------------ 64-bit entry
        .code64
entry64_low:
        // Still running at the identity-mapped address; jump up.
        movabsq $entry64_high, %rax
        jmp *%rax

entry64_high:
        lgdt boot_gdt_ptr64             // same GDT, now at its virtual address
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        xorw %ax, %ax
        movw %ax, %fs
        movw %ax, %gs

        movabsq $(boot_stack + BOOT_STACK_SIZE), %rsp
        movl %ebp, %edi                 // kmain(protocol, boot info phys)
        movl %esi, %esi                 // zero-extend
        xorl %ebp, %ebp                 // end of the frame-pointer chain
        call kmain
1:      cli
        hlt
        jmp 1b

// ------------------------------------------------------------ early data
        .section .rodata
no_long_mode_msg:
        .asciz "Revenant: this CPU has no long mode; halting\n"

        .section .data
        .balign 16
// Just enough GDT to enter 64-bit mode; gdt.c installs the real one.
boot_gdt:
        .quad 0
        .quad 0x00af9a000000ffff        // 0x08: 64-bit kernel code
        .quad 0x00cf92000000ffff        // 0x10: kernel data
boot_gdt_end:
boot_gdt_ptr32:
        .short boot_gdt_end - boot_gdt - 1
        .long PHYS(boot_gdt)
        .balign 8
boot_gdt_ptr64:
        .short boot_gdt_end - boot_gdt - 1
        .quad boot_gdt

        .section .bss
        // 8 KiB: CR3 bit 12 means "a program's view" to the NMI handler
        // (trapasm.S), which may run while these boot tables are live: with
        // the bit set it would switch to the page after them and fault.
        .balign 2 * PAGE_SIZE
        .globl boot_pml4
boot_pml4:        .skip PAGE_SIZE
boot_pdpt_ident:  .skip PAGE_SIZE
boot_pdpt_direct: .skip PAGE_SIZE
boot_pdpt_high:   .skip PAGE_SIZE
boot_pd:          .skip 4 * PAGE_SIZE
        .globl boot_stack
boot_stack:       .skip BOOT_STACK_SIZE

        .section .note.GNU-stack, "", @progbits
