// victim[:ms]: the innocent bystander of breakin (tests/test_isolation_attacks.py).
// It makes up a secret, keeps it only in r12 while it yields for `ms` (200)
// milliseconds -- so whenever another program runs, the secret lives only in
// this vproc's saved frame in kernel memory -- and then checks it:
//
//   victim: secret 0x<16 hex> intact           exit 0
//   victim: FAIL secret changed to 0x<16 hex>  exit 1   (someone wrote our frame)
//   victim: hijacked                           exit 66  (someone moved our rip here)
//
// xmm8 holds a public beacon (VICTIM_BEACON) by which breakin finds this
// vproc among the kernel's; the secret is never in memory, only a
// fingerprint of it (secret * FINGERPRINT) to check it against at the end.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// No suffixes: the asm below uses them too.
#define VICTIM_BEACON 0x4e4f434145424956    // as in breakin.c
#define FINGERPRINT   0x9e3779b97f4a7c15    // odd: the fingerprint is one-to-one
#define STR_(x) #x
#define STR(x)  STR_(x)

uint64_t victim_spin(uint64_t deadline);
uint64_t victim_fingerprint;

// victim_spin(deadline) -> the secret as it is at the end. The loop uses
// r12 (secret), rbp (deadline), rax, rcx and r11 (syscall) and nothing else,
// so the registers breakin's kernel reads clobber next to the r12 slot of
// the frame (r15, r14, r13, r11, r10, r9) are dead here.
asm(
    "    .pushsection .text\n"
    "victim_spin:\n"
    "    push %rbp\n"
    "    push %rbx\n"
    "    push %r12\n"
    "    push %r13\n"
    "    push %r14\n"
    "    push %r15\n"
    "    mov %rdi, %rbp\n"
    "    movabs $" STR(VICTIM_BEACON) ", %rax\n"
    "    movq %rax, %xmm8\n"
    "    rdtsc\n"
    "    shl $32, %rdx\n"
    "    or %rdx, %rax\n"
    "    movabs $0xbf58476d1ce4e5b9, %rcx\n"
    "    imul %rcx, %rax\n"
    "    mov %rax, %rdx\n"
    "    shr $31, %rdx\n"
    "    xor %rdx, %rax\n"
    "    mov %rax, %r12\n"                  // the secret: from here on only in r12
    "    movabs $" STR(FINGERPRINT) ", %rcx\n"
    "    imul %rcx, %rax\n"
    "    mov %rax, victim_fingerprint(%rip)\n"
    "    xor %eax, %eax\n"
    "    xor %ecx, %ecx\n"
    "    xor %edx, %edx\n"
    "1:  mov $" STR(SYS_yield) ", %eax\n"
    "    syscall\n"
    "    mov $" STR(SYS_clock_ns) ", %eax\n"
    "    syscall\n"
    "    cmp %rbp, %rax\n"
    "    jb 1b\n"
    "    mov %r12, %rax\n"
    "    pop %r15\n"
    "    pop %r14\n"
    "    pop %r13\n"
    "    pop %r12\n"
    "    pop %rbx\n"
    "    pop %rbp\n"
    "    ret\n"
    "    .popsection\n"
    // Right after crt0's _start (userland/user.ld): breakin's redirect_lcall
    // sits at the same address in breakin, three bytes long, so the return
    // address it writes into our frame is victim_hijacked.
    "    .pushsection .text.zone, \"ax\", @progbits\n"
    "    .balign 16\n"
    "    nop; nop; nop\n"
    "    .globl victim_hijacked\n"
    "victim_hijacked:\n"
    "    lea hijacked_msg(%rip), %rsi\n"
    "    mov $1, %edi\n"
    "    mov $(hijacked_end - hijacked_msg), %edx\n"
    "    mov $" STR(SYS_write) ", %eax\n"
    "    syscall\n"
    "    mov $66, %edi\n"
    "    mov $" STR(SYS_exit) ", %eax\n"
    "    syscall\n"
    "    ud2\n"
    "    .popsection\n"
    "    .pushsection .rodata\n"
    "hijacked_msg: .ascii \"victim: hijacked\\n\"\n"
    "hijacked_end:\n"
    "    .popsection\n");

int main(int argc, char **argv)
{
    // Plain preemption: a tick saves us into the kernel frame, not into an
    // activation record in our own memory.
    ((volatile struct act_header *)ACT_SEGMENT)->entry[ACT_PREEMPTED] = 0;
    unsigned long ms = argc > 1 ? strtoul(argv[1], 0, 0) : 200;
    uint64_t secret = victim_spin(sys_clock_ns() + ms * 1000000UL);
    if (secret * FINGERPRINT != victim_fingerprint) {
        printf("victim: FAIL secret changed to 0x%016lx\n", secret);
        return 1;
    }
    printf("victim: secret 0x%016lx intact\n", secret);
    return 0;
}
