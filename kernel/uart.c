// 16550 UART on COM1: the kernel's only console.
//
// Polled, no interrupts: the console must work in a panic with interrupts
// off, and under QEMU the transmitter is never actually busy.
#include "uart.h"
#include "x86.h"

#define COM1 0x3f8
#define THR  0      // transmit holding register (DLAB=0)
#define IER  1      // interrupt enable (DLAB=0)
#define DLL  0      // divisor latch low (DLAB=1)
#define DLM  1      // divisor latch high (DLAB=1)
#define FCR  2      // FIFO control
#define LCR  3      // line control
#define MCR  4      // modem control
#define LSR  5      // line status

#define LCR_DLAB   0x80
#define LCR_8N1    0x03
#define LSR_THRE   0x20

void uart_init(void)
{
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, LCR_DLAB);
    outb(COM1 + DLL, 1);            // 115200 baud
    outb(COM1 + DLM, 0);
    outb(COM1 + LCR, LCR_8N1);
    outb(COM1 + FCR, 0x07);         // enable and clear FIFOs
    outb(COM1 + MCR, 0x03);         // DTR, RTS
}

void uart_putc(char c)
{
    // Bounded wait: a missing or wedged UART must not hang a panic.
    for (int i = 0; i < 100000 && !(inb(COM1 + LSR) & LSR_THRE); i++)
        ;
    outb(COM1 + THR, (unsigned char)c);
}

// Lines end in a bare "\n" on purpose: the console contract with the
// toolkit is "\n"-terminated records, not a terminal's "\r\n".
void uart_write(const char *s, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++)
        uart_putc(s[i]);
}
