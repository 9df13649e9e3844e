#ifndef CMDLINE_H
#define CMDLINE_H
#include <stdbool.h>
#include <stddef.h>

#define CMDLINE_MAX    512
#define CMDLINE_MAXARG 32

// A parsed command line: words separated by spaces, each `key` or
// `key=value`. The parse is pure so tests can exercise it on any string.
struct cmdline {
    char buf[CMDLINE_MAX];
    int nargs;
    const char *key[CMDLINE_MAXARG];
    const char *value[CMDLINE_MAXARG];     // NULL for a bare `key`
    bool truncated;
};

void cmdline_parse(struct cmdline *cl, const char *text);
bool cmdline_lookup(const struct cmdline *cl, const char *key, const char **value);

// The kernel's own command line (set once at boot).
void cmdline_init(const char *text);
bool cmdline_has(const char *key);
// The whole command line as the loader passed it (truncated to CMDLINE_MAX).
const char *cmdline_text(void);
// The value of `key=value`; "" for a bare `key`; NULL if absent.
const char *cmdline_get(const char *key);
// The value parsed as a decimal number, or `dflt` if absent or malformed.
unsigned long cmdline_get_ulong(const char *key, unsigned long dflt);
// Parse a decimal number; false unless `s` is all digits (and not empty).
bool parse_ulong(const char *s, unsigned long *out);
#endif
