// The activation restore sequence: the code act_resume() returns to.
//
// It runs in USER mode (CPL 3), from a read-only, executable page the kernel
// maps at ACT_RESTORE in every environment (activation.c copies these bytes
// there; they are never executed at their kernel address). The kernel enters
// it with rsp = the address of the activation record being resumed
// (struct act_record, abi.h: 15 general registers, then rip cs rflags rsp ss).
//
// Why user mode and a kernel-known address range (docs/activations.md):
// an interrupt can land anywhere in here. The kernel recognizes the range,
// knows which record was being restored, and re-delivers that same record
// (the sequence never writes it, so it is intact); an entry from outside
// the range means the restore completed, and the record is freed then. The
// program never needs IOPL 3 or cli, and no record leaks.
//
// Why not iretq: QEMU 7.2's TCG pops an iretq frame executed at CPL 3 with a
// supervisor access, which SMAP (on with -cpu max) refuses on a user page:
// the iretq faulted on its own record. So the sequence restores rflags and
// rip the way user code can: it pushes them onto the thread's own stack,
// just below its rsp, and leaves with popfq; ret. That space is dead (user
// code is built with -mno-red-zone), and if an interrupt lands after the
// pushes the record is still intact, so re-delivery stays exact. cs and ss
// are not loaded: they are always the user selectors (act_resume checks).
// popfq at CPL 3 cannot change IOPL or IF; act_resume has refused any
// record whose flags would need it to.
//
// The bytes contain no `syscall` (0f 05) at any offset, and the rest of the
// page is int3: a program jumping into the page can never enter the kernel
// from inside the range except by an interrupt or a fault
// (kernel/tests/test_activation.c checks this).

#define REC_RAX    112          // offsets in struct act_record
#define REC_RIP    120
#define REC_RFLAGS 136
#define REC_RSP    144
#include "frame.h"

        .section .rodata
        .globl act_restore_code, act_restore_end
act_restore_code:
        pop_gprs_except_rax             // r15 ... rbx: 14 pops, all inside the range
        movq %rsp, %rax                                 // &record.rax
        movq REC_RSP - REC_RAX(%rax), %rsp              // the thread's stack
        pushq REC_RIP - REC_RAX(%rax)
        pushq REC_RFLAGS - REC_RAX(%rax)
        movq (%rax), %rax
        popfq
        ret                     // the restore is complete once this has executed
act_restore_end:

        .section .note.GNU-stack, "", @progbits
