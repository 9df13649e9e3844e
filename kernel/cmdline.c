// Kernel command-line parsing: `test`, `test=GLOB`, `heartbeat=100`, ...
// and checking every word against the key table (kernel/cmdline_keys.h).
#include "abi.h"
#include "cmdline.h"
#include "format.h"
#include "printf.h"
#include "string.h"

#define KEY_FLAG(n, help)                 { #n, CMDLINE_FLAG, 0, 0, 0, NULL, NULL },
#define KEY_WORD(n, help)                 { #n, CMDLINE_WORD, 0, 0, 0, NULL, NULL },
#define KEY_TEXT(n, help)                 { #n, CMDLINE_TEXT, 0, 0, 0, NULL, NULL },
#define KEY_ULONG(n, lo, hi, dflt, help)  { #n, CMDLINE_ULONG, lo, hi, dflt, NULL, NULL },
#define KEY_ENUM(n, choices, dflt, help)  { #n, CMDLINE_ENUM, 0, 0, 0, choices, dflt },
static const struct cmdline_key keys[] = {
#include "cmdline_keys.h"
};
#undef KEY_FLAG
#undef KEY_WORD
#undef KEY_TEXT
#undef KEY_ULONG
#undef KEY_ENUM

// The table's literals must be the kernel's own limits.
_Static_assert(ACT_POOL_MAX == 8176, "kernel/cmdline_keys.h: act_pool's maximum is ACT_POOL_MAX");
_Static_assert(ACT_POOL_DEFAULT == 64, "kernel/cmdline_keys.h: act_pool's default is ACT_POOL_DEFAULT");

void cmdline_parse(struct cmdline *cl, const char *text)
{
    size_t len = strlcpy(cl->buf, text ? text : "", sizeof(cl->buf));
    cl->truncated = len >= sizeof(cl->buf);
    cl->nargs = 0;

    // Split in place: each word becomes a NUL-terminated key, and the '='
    // (if any) becomes the NUL that ends the key and starts the value.
    char *p = cl->buf;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            *p++ = '\0';
        if (!*p)
            break;
        if (cl->nargs == CMDLINE_MAXARG) {
            cl->truncated = true;
            break;
        }
        cl->key[cl->nargs] = p;
        cl->value[cl->nargs] = NULL;
        cl->rejected[cl->nargs] = false;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '=' && !cl->value[cl->nargs]) {
                *p = '\0';
                cl->value[cl->nargs] = p + 1;
            }
            p++;
        }
        cl->nargs++;
    }
}

// The last occurrence wins, so an option appended later overrides.
bool cmdline_lookup(const struct cmdline *cl, const char *key, const char **value)
{
    for (int i = cl->nargs - 1; i >= 0; i--) {
        if (!cl->rejected[i] && strcmp(cl->key[i], key) == 0) {
            if (value)
                *value = cl->value[i] ? cl->value[i] : "";
            return true;
        }
    }
    return false;
}

const struct cmdline_key *cmdline_key(const char *name)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

// Is `word` one of the '|'-separated `choices`?
static bool one_of(const char *choices, const char *word)
{
    size_t n = strlen(word);
    for (const char *c = choices; *c; ) {
        const char *end = strchr(c, '|');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == n && strncmp(c, word, n) == 0)
            return true;
        if (!end)
            break;
        c = end + 1;
    }
    return false;
}

// Why `value` (NULL: bare) is no good for `k`, or NULL if it is good.
static const char *problem(const struct cmdline_key *k, const char *value, char *buf, size_t len)
{
    unsigned long v;
    if (!k)
        return "unknown key";
    switch (k->kind) {
    case CMDLINE_FLAG:
        return value ? "takes no value" : NULL;
    case CMDLINE_WORD:
        return NULL;
    case CMDLINE_TEXT:
        return value && *value ? NULL : "needs a value";
    case CMDLINE_ULONG:
        if (!value)
            return NULL;                    // bare: the default
        if (!parse_ulong(value, &v))
            return "not a decimal number";
        if (v < k->min || v > k->max) {
            snprintf(buf, len, "out of range %lu..%lu", k->min, k->max);
            return buf;
        }
        return NULL;
    case CMDLINE_ENUM:
        if (value && one_of(k->choices, value))
            return NULL;
        snprintf(buf, len, "%s %s", value ? "not one of" : "needs a value:", k->choices);
        return buf;
    }
    return "unknown kind";
}

int cmdline_validate(struct cmdline *cl)
{
    char why[64];
    int n = 0;
    for (int i = 0; i < cl->nargs; i++) {
        cl->rejected[i] = problem(cmdline_key(cl->key[i]), cl->value[i], why, sizeof(why)) != NULL;
        n += cl->rejected[i];
    }
    return n;
}

unsigned long cmdline_lookup_ulong(const struct cmdline *cl, const char *key)
{
    const struct cmdline_key *k = cmdline_key(key);
    unsigned long dflt = k ? k->dflt : 0, v;
    const char *value;
    if (!cmdline_lookup(cl, key, &value) || !parse_ulong(value, &v))
        return dflt;                        // absent, or bare
    return v;
}

void cmdline_explain(const struct cmdline *cl, int i, char *buf, size_t len)
{
    char why_buf[64];
    const char *key = cl->key[i], *value = cl->value[i];
    const struct cmdline_key *k = cmdline_key(key);
    const char *why = problem(k, value, why_buf, sizeof(why_buf));
    int n = snprintf(buf, len, "rejected %s%s%s: %s; ", key, value ? "=" : "", value ? value : "",
                     why ? why : "accepted");
    if (n < 0 || (size_t)n >= len)
        return;
    buf += n, len -= (size_t)n;
    const char *used;
    if (!k) {
        snprintf(buf, len, "ignored");
    } else if (k->kind == CMDLINE_ULONG) {
        snprintf(buf, len, "using %s=%lu", key, cmdline_lookup_ulong(cl, key));
    } else if (!cmdline_lookup(cl, key, &used)) {
        if (k->kind == CMDLINE_ENUM && *k->dflt_word)
            snprintf(buf, len, "using %s=%s", key, k->dflt_word);
        else
            snprintf(buf, len, "ignored");
    } else {
        snprintf(buf, len, "using %s%s%s", key, *used || k->kind == CMDLINE_TEXT ? "=" : "", used);
    }
}

static struct cmdline kernel_cmdline;
static char kernel_cmdline_text[CMDLINE_MAX];  // unsplit, for the cmdline() syscall

void cmdline_init(const char *text)
{
    strlcpy(kernel_cmdline_text, text ? text : "", sizeof(kernel_cmdline_text));
    cmdline_parse(&kernel_cmdline, text);
    cmdline_validate(&kernel_cmdline);
}

void cmdline_report(void)
{
    char line[CMDLINE_MAX + 128];
    for (int i = 0; i < kernel_cmdline.nargs; i++) {
        if (!kernel_cmdline.rejected[i])
            continue;
        cmdline_explain(&kernel_cmdline, i, line, sizeof(line));
        kprintf("cmdline: %s\n", line);
    }
    if (kernel_cmdline.truncated)
        kprintf("cmdline: rejected everything after word %d or byte %d: too long; ignored\n",
                CMDLINE_MAXARG, CMDLINE_MAX - 1);
}

unsigned long cmdline_ulong(const char *key)
{
    return cmdline_lookup_ulong(&kernel_cmdline, key);
}

const char *cmdline_text(void)
{
    return kernel_cmdline_text;
}

bool cmdline_has(const char *key)
{
    return cmdline_lookup(&kernel_cmdline, key, NULL);
}

const char *cmdline_get(const char *key)
{
    const char *v;
    return cmdline_lookup(&kernel_cmdline, key, &v) ? v : NULL;
}

bool parse_ulong(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned long next = v * 10 + (unsigned long)(*s - '0');
        if (next / 10 != v)
            return false;   // overflow
        v = next;
    }
    *out = v;
    return true;
}

unsigned long cmdline_get_ulong(const char *key, unsigned long dflt)
{
    unsigned long v;
    return parse_ulong(cmdline_get(key), &v) ? v : dflt;
}
