// kernel/lib: the freestanding library the kernel and the user programs
// share. Its sources are compiled into the kernel and, with the user flags,
// into every user program (toolchain/userbuild.py), so they include nothing
// outside kernel/lib and the compiler's own freestanding headers.
//
// printf-style formatting. Conversions: %d %i %u %x %X %p %s %c %%, with
// flags '-' '0', a width (digits or '*'), a precision for %s, and length
// modifiers h hh l ll z. %p prints 0x and 16 hex digits. An unknown
// conversion is printed as written.
#ifndef FORMAT_H
#define FORMAT_H
#include <stdarg.h>
#include <stddef.h>

// Format into buf, always NUL-terminated (if size > 0). Returns the length
// the full output has (like C99), even when it was truncated to fit.
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Stream the output one character at a time to put(c, arg), with no length
// limit; returns the number of characters.
int vformat(void (*put)(char c, void *arg), void *arg, const char *fmt, va_list ap);
#endif
