#ifndef PRINTF_H
#define PRINTF_H
#include <stdarg.h>
#include "format.h"     // vsnprintf, snprintf (kernel/lib, shared with user space)

// Formatted output to the console.
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vkprintf(const char *fmt, va_list ap);
#endif
