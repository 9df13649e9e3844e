// exit, number parsing, sleep and the PRNG.
#include <revenant.h>
#include <stdlib.h>
#include <thread.h>

void exit(int status)
{
    sys_exit(status);
}

unsigned long strtoul(const char *s, char **end, int base)
{
    unsigned long v = 0;
    while (*s == ' ')
        s++;
    if ((base == 0 || base == 16) && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        base = 16;
    } else if (base == 0) {
        base = 10;
    }
    for (;; s++) {
        int d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (*s >= 'a' && *s <= 'z')
            d = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'Z')
            d = *s - 'A' + 10;
        else
            break;
        if (d >= base)
            break;
        v = v * base + d;
    }
    if (end)
        *end = (char *)s;
    return v;
}

int atoi(const char *s)
{
    int neg = *s == '-';
    return (int)(neg ? -strtoul(s + 1, 0, 10) : strtoul(s, 0, 10));
}

void sleep(unsigned long ms)
{
    // Only the calling user thread sleeps; when no other thread can run,
    // the runtime sleeps the whole vproc in sleep_until. The deadline is
    // computed once: if the call is interrupted and rerun, it still ends
    // at the same instant.
    thread_sleep(ms);
}

void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9e3779b97f4a7c15ULL;  // xorshift's state must not be 0
}

uint64_t rng_next(struct rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

// The kernel maps at most MAP_MAX per call so that no call holds the CPU for
// long (kernel/abi.h). Between pieces this program may be preempted, like any
// other; an error unmaps what the earlier pieces mapped, so the range is
// either all mapped or left as it was (a piece that fails maps nothing).
long map_all(unsigned long va, unsigned long len, long prot)
{
    for (unsigned long done = 0; done < len; done += MAP_MAX) {
        unsigned long n = len - done < MAP_MAX ? len - done : MAP_MAX;
        long r = sys_map(va + done, n, prot);
        if (r < 0) {
            if (done)
                sys_unmap(va, done);
            return r;
        }
    }
    return 0;
}
