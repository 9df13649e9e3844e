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
    bool rejected[CMDLINE_MAXARG];         // by cmdline_validate: counts as absent
    bool truncated;
};

// The accepted keys (kernel/cmdline_keys.h is the table).
enum cmdline_kind { CMDLINE_FLAG, CMDLINE_WORD, CMDLINE_TEXT, CMDLINE_ULONG, CMDLINE_ENUM };
struct cmdline_key {
    const char *name;
    enum cmdline_kind kind;
    unsigned long min, max, dflt;   // ULONG
    const char *choices;            // ENUM: "a|b|c"
    const char *dflt_word;          // ENUM: the default word, "" for none
};

void cmdline_parse(struct cmdline *cl, const char *text);
// The last occurrence of `key` that is not rejected; its value ("" if bare).
bool cmdline_lookup(const struct cmdline *cl, const char *key, const char **value);

// The table entry of `name`, or NULL for a key the kernel does not know.
const struct cmdline_key *cmdline_key(const char *name);
// Mark the words the key table rejects (unknown key, bad or out-of-range
// value); returns how many. Rejected words count as absent from then on.
int cmdline_validate(struct cmdline *cl);
// Why word i was rejected and what is used instead, one line without "\n":
// "rejected hz=0: out of range 1..1000000; using hz=100".
void cmdline_explain(const struct cmdline *cl, int i, char *buf, size_t len);
// A ULONG key's value: its last valid occurrence (bare: the default), else the default.
unsigned long cmdline_lookup_ulong(const struct cmdline *cl, const char *key);

// The kernel's own command line (set once at boot, validated by cmdline_init).
void cmdline_init(const char *text);
// Print one `cmdline: rejected ...` line per word cmdline_init rejected.
void cmdline_report(void);
// cmdline_lookup_ulong on the kernel's command line.
unsigned long cmdline_ulong(const char *key);
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
