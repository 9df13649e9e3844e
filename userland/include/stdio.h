// Formatted output. The formatter is the kernel's (kernel/lib/format.h, whose
// comment lists the conversions), compiled for user space.
// printf formats into one buffer and writes it with a single write(1, ...)
// call, so a line from one program never interleaves with another's.
#ifndef STDIO_H
#define STDIO_H
#include <stdarg.h>
#include <stddef.h>
#include "../../kernel/lib/format.h"    // vsnprintf, snprintf
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int puts(const char *s);        // s and a newline, in one write
#endif
