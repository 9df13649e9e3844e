#ifndef UART_H
#define UART_H
#include <stdbool.h>
#include <stdint.h>
void uart_init(void);
void uart_putc(char c);
void uart_write(const char *s, unsigned long n);
bool uart_rx_ready(void);       // a received byte is waiting
uint8_t uart_rx(void);          // take it (only when uart_rx_ready)
void uart_rx_irq(bool on);      // the receive interrupt (IRQ 4) on or off
#endif
