#ifndef PRINTF_H
#define PRINTF_H
#include <stdarg.h>
#include <stddef.h>

// Conversions: %d %i %u %x %X %p %s %c %%, with flags '-' '0', a width
// (digits or '*'), a precision for %s, and length modifiers h hh l ll z.
// %p prints 0x and 16 hex digits. Returns the length the full output has
// (like C99), even when it was truncated to fit.
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Formatted output to the console.
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vkprintf(const char *fmt, va_list ap);
#endif
