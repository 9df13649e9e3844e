#ifndef STDLIB_H
#define STDLIB_H
#include <stdint.h>
// main's arguments, saved by crt0 for code far from main.
extern int __argc;
extern char **__argv;

void exit(int status) __attribute__((noreturn));
int atoi(const char *s);
unsigned long strtoul(const char *s, char **end, int base);

// Sleep for `ms` milliseconds of guest time (only the calling thread: it is
// thread_sleep). The kernel only knows absolute deadlines (sleep_until), so
// that a sleep rewound and rerun after an interruption ends at the same
// instant instead of starting over.
void sleep(unsigned long ms);

// xorshift64*: small, fast, and reproducible from a printed seed.
struct rng { uint64_t s; };
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
uint64_t rng_below(struct rng *r, uint64_t n);     // uniform enough in [0, n)
#endif
