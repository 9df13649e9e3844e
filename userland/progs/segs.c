// segs:set:<variant>[:ms] / segs:watch[:ms]: are DS, ES, FS and GS each
// program's own? (tests/test_isolation_misc.py)
//
//   set     loads its own selectors (two variants, every register different
//           in each) and checks they keep them for `ms` (1000) of guest time
//           while it makes system calls and is preempted
//   watch   loads nothing and checks its own stay 0 all the while
//
// A fresh program must start with all four 0, so both check that first.
// At CPL 3 only null selectors and DPL-3 segments load: the user data
// segment 0x18 with any RPL will do. Loading FS or GS also zeroes its base
// (nothing here uses either). Lines:
//   segs: <mode> start ds=0x.. es=0x.. fs=0x.. gs=0x..
//   segs: <mode> ok checks=<n> syscalls=<s> switched=<k> upcalls=<u>
//   segs: <mode> FAIL bad=<b> of checks=<n> ... first at check <c>: ds=... (want ds=...)
// switched counts the gaps in clock_ns() long enough that someone else ran.
// Exits 0 iff everything held.
#include <revenant.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread.h>

#define SWITCH_GAP_NS 50000     // a tick at hz=10000 is 100 us

struct segs {
    uint16_t ds, es, fs, gs;
};

static const struct segs variants[2] = {
    { 0x1b, 0x19, 0x1a, 0x18 },
    { 0x18, 0x1a, 0x1b, 0x19 },
};

static struct segs read_segs(void)
{
    struct segs s;
    asm volatile("mov %%ds, %0" : "=r"(s.ds));
    asm volatile("mov %%es, %0" : "=r"(s.es));
    asm volatile("mov %%fs, %0" : "=r"(s.fs));
    asm volatile("mov %%gs, %0" : "=r"(s.gs));
    return s;
}

static void load_segs(const struct segs *s)
{
    asm volatile("mov %0, %%ds" : : "r"(s->ds) : "memory");
    asm volatile("mov %0, %%es" : : "r"(s->es) : "memory");
    asm volatile("mov %0, %%fs" : : "r"(s->fs) : "memory");
    asm volatile("mov %0, %%gs" : : "r"(s->gs) : "memory");
}

static int same(const struct segs *a, const struct segs *b)
{
    return a->ds == b->ds && a->es == b->es && a->fs == b->fs && a->gs == b->gs;
}

static int show(char *buf, size_t len, const struct segs *s)
{
    return snprintf(buf, len, "ds=0x%x es=0x%x fs=0x%x gs=0x%x", s->ds, s->es, s->fs, s->gs);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "watch";
    int set = strcmp(mode, "set") == 0;
    if (!set && strcmp(mode, "watch") != 0) {
        printf("segs: unknown mode %s\n", mode);
        return 2;
    }
    unsigned long variant = set && argc > 2 ? strtoul(argv[2], 0, 10) & 1 : 0;
    unsigned long ms = strtoul(argc > 2 + set ? argv[2 + set] : "1000", 0, 10);
    char label[16], text[96], want_text[96];
    snprintf(label, sizeof(label), set ? "set %lu" : "watch", variant);

    static const struct segs zero;
    struct segs want = set ? variants[variant] : zero, got = read_segs(), first = got;
    show(text, sizeof(text), &got);
    printf("segs: %s start %s\n", label, text);
    unsigned long checks = 1, bad = !same(&got, &zero), first_at = 0, syscalls = 0, switched = 0;
    if (set)
        load_segs(&want);

    long end = sys_clock_ns() + (long)ms * 1000000, last = sys_clock_ns();
    for (long now = last; now < end; last = now, checks++) {
        now = sys_clock_ns();
        if (checks % 256 == 0)
            sys_yield();
        else
            sys_getpid();
        syscalls += 2;
        switched += now - last > SWITCH_GAP_NS;
        got = read_segs();
        if (!same(&got, &want)) {
            if (!bad++)
                first = got, first_at = checks;
            if (set)
                load_segs(&want);      // go on showing ours to the others
        }
    }
    struct thread_stats st;
    thread_get_stats(&st);
    if (!bad) {
        printf("segs: %s ok checks=%lu syscalls=%lu switched=%lu upcalls=%lu\n",
               label, checks, syscalls, switched, (unsigned long)st.upcalls);
        return 0;
    }
    show(text, sizeof(text), &first);
    show(want_text, sizeof(want_text), first_at ? &want : &zero);
    printf("segs: %s FAIL bad=%lu of checks=%lu syscalls=%lu switched=%lu upcalls=%lu, "
           "first at check %lu: %s (want %s)\n", label, bad, checks, syscalls, switched,
           (unsigned long)st.upcalls, first_at, text, want_text);
    return 1;
}
