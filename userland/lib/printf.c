// printf and puts: the shared formatter (kernel/lib/format.c) into a line
// buffer, written with one system call.
#include <revenant.h>
#include <stdio.h>

// Long enough for any console line; longer output is cut, not split, so
// that each call is still one write.
#define LINE_MAX 512

int printf(const char *fmt, ...)
{
    char buf[LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1)
        n = sizeof(buf) - 1;
    return (int)sys_write(1, buf, n);
}

int puts(const char *s)
{
    return printf("%s\n", s);
}
