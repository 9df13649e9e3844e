// echo[:lines[:ring[:delay_ms]]]: console input, echoed line by line.
//
// init gives the console to the first program of run=, so run this one
// first. It sleeps `delay_ms` (0) of guest time (what is typed meanwhile
// waits in the UART and the host: docs/restart.md), attaches a ring of
// `ring` (64) data bytes in its own memory, and prints
//   echo: attached ring=<size>
//   echo: <n> <text>            each line, n counting from 1 (a line longer
//                               than 200 bytes comes in pieces, a number each)
//   echo: done lines=<n> bytes=<n> waits=<n> blocked=<n>
// ending with status 0 after `lines` lines (0: never) or a line "quit".
// A small ring fills up often, so the kernel's flow control and the wait
// both run all the time.
//
// Nothing is kept outside this program's memory, so an in-place restart
// cannot lose or repeat a byte: the ring, the line so far and the line
// count survive it, and a console_wait it drops simply reruns. Every
// console_wait result is checked against the ABI: a head other than the
// one given, at most `ring` bytes ahead of what was consumed, and not ahead
// of ring->head (which may have moved on since, never back). Anything else is `echo: FAIL ...` and status 1; a blocked call
// whose rewind was lost "returns" its own number, 33.
#include <revenant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX 200
#define MS 1000000UL

static uint8_t ring_mem[sizeof(struct console_ring) + CONSOLE_RING_MAX] __attribute__((aligned(16)));
static char line[LINE_MAX + 1];
static int len;
static unsigned long nlines, nbytes, nwaits;

static uint64_t blocked(void)
{
    struct act_stats s;
    long r = sys_raw(SYS_act_stats, (long)&s, 0, 0, 0, 0, 0);
    return r == 0 ? s.blocked : 0;
}

// Print the line so far; 1 if it was "quit".
static int emit(void)
{
    line[len] = '\0';
    printf("echo: %lu %s\n", ++nlines, line);
    len = 0;
    return strcmp(line, "quit") == 0;
}

// Take one byte; 1 once the program should end.
static int take(char c, unsigned long want)
{
    nbytes++;
    if (c == '\r')
        return 0;
    if (c != '\n') {
        if (len == LINE_MAX)
            emit();
        line[len++] = c;
        return 0;
    }
    return emit() || (want && nlines >= want);
}

static int fail(const char *what, long r, uint32_t head, uint32_t tail, volatile struct console_ring *ring)
{
    printf("echo: FAIL %s: returned %ld (%s); head was %u, ring head %u, tail %u\n", what, r,
           r < 0 ? errno_name(r) : "-", head, ring->head, tail);
    return 1;
}

int main(int argc, char **argv)
{
    unsigned long want = argc > 1 ? strtoul(argv[1], 0, 0) : 0;
    unsigned long size = argc > 2 ? strtoul(argv[2], 0, 0) : 64;
    unsigned long delay = argc > 3 ? strtoul(argv[3], 0, 0) : 0;
    volatile struct console_ring *ring = (volatile struct console_ring *)ring_mem;
    if (delay && sys_sleep_until(sys_clock_ns() + delay * MS) != 0)
        return fail("sleep_until", -1, 0, 0, ring);
    long r = sys_console_attach((struct console_ring *)ring_mem, size);
    if (r < 0) {
        printf("echo: FAIL console_attach(ring=%lu): %s\n", size, errno_name(r));
        return 1;
    }
    printf("echo: attached ring=%lu\n", size);
    uint32_t head = 0, tail = 0;
    for (;;) {
        while (tail != head) {
            char c = (char)ring->data[tail % size];
            int end = take(c, want);
            ring->tail = ++tail;          // consumed only once it is in `line`
            if (end) {
                printf("echo: done lines=%lu bytes=%lu waits=%lu blocked=%lu\n", nlines, nbytes,
                       nwaits, (unsigned long)blocked());
                return 0;
            }
        }
        r = sys_console_wait(head, FUTEX_NO_DEADLINE);
        if (r < 0)
            return fail("console_wait", r, head, tail, ring);
        // ring->head may have moved on since (an interrupt), never back.
        if (r > (long)UINT32_MAX || (uint32_t)r == head || (uint32_t)r - tail > size ||
            (uint32_t)(ring->head - (uint32_t)r) > size - ((uint32_t)r - tail))
            return fail("console_wait broke its contract", r, head, tail, ring);
        head = (uint32_t)r;
        nwaits++;
    }
}
