#ifndef UART_H
#define UART_H
void uart_init(void);
void uart_putc(char c);
void uart_write(const char *s, unsigned long n);
#endif
