// Formatted output. Conversions: %d %i %u %x %lx %p %s %c %% with the
// length modifiers l, ll, z, a width and the '0' and '-' flags.
// printf formats into one buffer and writes it with a single write(1, ...)
// call, so a line from one program never interleaves with another's.
#ifndef STDIO_H
#define STDIO_H
#include <stdarg.h>
#include <stddef.h>
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int puts(const char *s);        // s and a newline, in one write
#endif
