// Formatted output to the console: the shared formatter (kernel/lib/format.c)
// streaming straight to the UART.
#include "printf.h"
#include "uart.h"

static void put_console(char c, void *arg)
{
    (void)arg;
    uart_putc(c);
}

int vkprintf(const char *fmt, va_list ap)
{
    return vformat(put_console, NULL, fmt, ap);
}

int kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vkprintf(fmt, ap);
    va_end(ap);
    return n;
}
