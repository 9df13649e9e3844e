// act_hostile:<how>: registers an upcall handler, and on the first upcall
// breaks one rule of the activation ABI. The kernel must kill this
// environment, and nothing else, with a line naming the field:
//   env <id> (act_hostile) killed: hostile activation record <i>: <field> 0x<value>
//   env <id> (act_hostile) killed: hostile activation header: <field> 0x<value>
//   env <id> (act_hostile) killed: activation record pool exhausted (<n> records in use)
// <how> is a record field (cs ss rflags.IF rflags.IOPL rflags.TF rflags.NT
// rflags.AC rflags.VM rflags.RF rip rip.noncanonical rsp), `address` (a
// record address off its 256-byte boundary), `unused` (a record the kernel
// never handed out, like one resumed twice: freed by then), `outside` (a
// copy of the record in .bss), `entry` / `upcall_stack` (a bad header), or
// `exhaust` (never resume a record: each tick takes a new one).
// Reaching the end prints "act_hostile: FAIL survived <how>" and exits 1; a
// <how> not in this list prints "act_hostile: unknown mode <how> (...)" and
// exits 2 at once.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint8_t upcall_stack[8192] __attribute__((aligned(16)));
static const char *how = "";
static volatile int upcalls;
static struct act_record copy;

static long act_resume(struct act_record *r)
{
    return sys_raw(SYS_act_resume, (long)r, 0, 0, 0, 0, 0);
}

static void forge(struct act_record *r)
{
    if (!strcmp(how, "cs"))           r->cs = 0x08;
    else if (!strcmp(how, "ss"))      r->ss = 0x10;
    else if (!strcmp(how, "rflags.IF"))   r->rflags &= ~(1UL << 9);
    else if (!strcmp(how, "rflags.IOPL")) r->rflags |= 3UL << 12;
    else if (!strcmp(how, "rflags.TF"))   r->rflags |= 1UL << 8;
    else if (!strcmp(how, "rflags.NT"))   r->rflags |= 1UL << 14;
    else if (!strcmp(how, "rflags.AC"))   r->rflags |= 1UL << 18;
    else if (!strcmp(how, "rflags.VM"))   r->rflags |= 1UL << 17;
    else if (!strcmp(how, "rflags.RF"))   r->rflags |= 1UL << 16;
    else if (!strcmp(how, "rip"))     r->rip = 0xffffffff80100000UL;
    else if (!strcmp(how, "rip.noncanonical")) r->rip = 0x0000800000000000UL;
    else if (!strcmp(how, "rsp"))     r->rsp = 0x0000800000000000UL;
}

static void __attribute__((noreturn, used)) on_upcall(struct act_record *rec, uint64_t reason,
                                                      uint64_t vproc)
{
    (void)reason, (void)vproc;
    upcalls++;
    if (!strcmp(how, "exhaust")) {
        // Leave the disabled state without giving the record back: the
        // next tick needs a new one. Spin here (on the upcall stack).
        sys_raw(SYS_act_enable, 0, 0, 0, 0, 0, 0);
        for (;;)
            ;
    }
    if (!strcmp(how, "unused"))         // only record 0 is ever in use here
        act_resume((struct act_record *)(ACT_RECORDS + 5 * ACT_RECORD_SIZE));
    if (!strcmp(how, "outside")) {      // a faithful copy, but not in the segment
        copy = *rec;
        act_resume(&copy);
    }
    if (!strcmp(how, "address"))
        act_resume((struct act_record *)((uint8_t *)rec + 8));
    forge(rec);
    act_resume(rec);
    for (;;)
        ;
}

static const char *const modes[] = {
    "cs", "ss", "rflags.IF", "rflags.IOPL", "rflags.TF", "rflags.NT", "rflags.AC", "rflags.VM",
    "rflags.RF", "rip", "rip.noncanonical", "rsp", "address", "unused", "outside", "entry",
    "upcall_stack", "exhaust",
};

int main(int argc, char **argv)
{
    how = argc > 1 ? argv[1] : "";
    unsigned known = 0;
    while (known < sizeof(modes) / sizeof(modes[0]) && strcmp(how, modes[known]) != 0)
        known++;
    if (known == sizeof(modes) / sizeof(modes[0])) {
        printf("act_hostile: unknown mode %s (want one of:", *how ? how : "(none)");
        for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
            printf(" %s", modes[i]);
        printf(")\n");
        return 2;
    }
    volatile struct act_header *h = (volatile struct act_header *)ACT_SEGMENT;
    h->upcall_stack = (uint64_t)(upcall_stack + sizeof(upcall_stack));
    if (!strcmp(how, "upcall_stack"))
        h->upcall_stack = 0xffff800000000000UL;
    h->entry[ACT_PREEMPTED] = !strcmp(how, "entry") ? 0xffffffff80100000UL : (uint64_t)on_upcall;
    // Wait for a few upcalls: every case is tried at the first one.
    uint64_t deadline = (uint64_t)sys_clock_ns() + 3000000000UL;
    while (upcalls < 3 && (uint64_t)sys_clock_ns() < deadline)
        ;
    printf("act_hostile: FAIL survived %s\n", how);
    return 1;
}
