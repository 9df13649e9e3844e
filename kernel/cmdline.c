// Kernel command-line parsing: `test`, `test=GLOB`, `heartbeat=100`, ...
#include "cmdline.h"
#include "string.h"

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
        if (strcmp(cl->key[i], key) == 0) {
            if (value)
                *value = cl->value[i] ? cl->value[i] : "";
            return true;
        }
    }
    return false;
}

static struct cmdline kernel_cmdline;
static char kernel_cmdline_text[CMDLINE_MAX];  // unsplit, for the cmdline() syscall

void cmdline_init(const char *text)
{
    strlcpy(kernel_cmdline_text, text ? text : "", sizeof(kernel_cmdline_text));
    cmdline_parse(&kernel_cmdline, text);
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
