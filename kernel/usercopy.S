// The only kernel code that touches user memory.
//
// Each routine has exactly one instruction that can fault on a user
// address. The exception table below pairs it with a fixup label; trap()
// consults the table for page faults and general-protection faults taken in
// kernel mode, and instead of panicking resumes at the fixup, which returns
// -EFAULT. Callers (usercopy.c) have already refused kernel and
// non-canonical ranges, so a fault here means "not mapped" or "not
// writable"; the table is the second line of defence either way.
//
// With SMAP the kernel may touch user pages only while RFLAGS.AC is set:
// stac/clac bracket the access (both #UD without SMAP, hence the check).

#include "abi.h"

        .macro stac_if_smap
        cmpb $0, cpu_has_smap(%rip)
        je 91f
        stac
91:
        .endm

        .macro clac_if_smap
        cmpb $0, cpu_has_smap(%rip)
        je 92f
        clac
92:
        .endm

        .text

// long user_copy(void *dst, const void *src, uint64_t len): 0 or -EFAULT.
        .globl user_copy
user_copy:
        movq %rdx, %rcx
        stac_if_smap
user_copy_access:
        rep movsb
        clac_if_smap
        xorl %eax, %eax
        ret
user_copy_fixup:
        clac_if_smap
        movq $-EFAULT, %rax
        ret

// long user_strncpy(char *dst, const char *src, long max): the string's
// length if a NUL came within max bytes (NUL copied), max if not, -EFAULT.
        .globl user_strncpy
user_strncpy:
        stac_if_smap
        xorl %eax, %eax
1:      cmpq %rdx, %rax
        jae 2f
user_strncpy_access:
        movb (%rsi,%rax), %cl
        movb %cl, (%rdi,%rax)
        testb %cl, %cl
        jz 2f
        incq %rax
        jmp 1b
2:      clac_if_smap
        ret
user_strncpy_fixup:
        clac_if_smap
        movq $-EFAULT, %rax
        ret

        .section .rodata
        .balign 8
        .globl usercopy_extable, usercopy_extable_end
usercopy_extable:
        .quad user_copy_access, user_copy_fixup
        .quad user_strncpy_access, user_strncpy_fixup
usercopy_extable_end:

        .section .note.GNU-stack, "", @progbits
