// 16550 UART on COM1: the kernel's only console.
//
// Output is polled, no interrupts: the console must work in a panic with
// interrupts off, and under QEMU the transmitter is never actually busy.
// Input raises the receive interrupt (IRQ 4), which console.c turns on only
// while it has somewhere to put a byte: until the kernel reads a byte it
// stays in the UART, and QEMU's 16550 then takes no more from the host
// (flow control), so nothing is dropped for lack of room.
#include "uart.h"
#include "x86.h"

#define COM1 0x3f8
#define RBR  0      // receive buffer register (DLAB=0, read)
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
#define LSR_DR     0x01      // a received byte waits in RBR
#define LSR_THRE   0x20
#define IER_RDI    0x01      // interrupt when a received byte is available
#define MCR_DTR_RTS 0x03
#define MCR_OUT2   0x08      // on a PC, gates the UART's interrupt line to the IRQ

void uart_init(void)
{
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, LCR_DLAB);
    outb(COM1 + DLL, 1);            // 115200 baud
    outb(COM1 + DLM, 0);
    outb(COM1 + LCR, LCR_8N1);
    // Enabling the FIFOs also empties them: a byte received before this
    // point (before the kernel ran) is lost, which is why the toolkit sends
    // nothing before the kernel's banner (toolchain/machine.py, send).
    outb(COM1 + FCR, 0x07);         // enable and clear FIFOs; receive trigger at 1 byte
    outb(COM1 + MCR, MCR_DTR_RTS | MCR_OUT2);
}

bool uart_rx_ready(void)
{
    return inb(COM1 + LSR) & LSR_DR;
}

uint8_t uart_rx(void)
{
    return inb(COM1 + RBR);
}

void uart_rx_irq(bool on)
{
    outb(COM1 + IER, on ? IER_RDI : 0);
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
