// The legacy 8259 PICs. Revenant uses the local APIC; the PICs only need to
// be silenced. They are remapped first because the BIOS leaves them at
// vectors 8-15, where a spurious IRQ 7 would look like a double fault.
#include "pic.h"
#include "trap.h"
#include "x86.h"

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xa0
#define PIC2_DATA 0xa1

void pic_disable(void)
{
    outb(PIC1_CMD, 0x11);           // ICW1: init, expect ICW4
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, T_PIC_BASE);    // ICW2: vector base
    outb(PIC2_DATA, T_PIC_BASE + 8);
    outb(PIC1_DATA, 1 << 2);        // ICW3: slave on IRQ 2
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 0x01);          // ICW4: 8086 mode
    outb(PIC2_DATA, 0x01);
    outb(PIC1_DATA, 0xff);          // mask everything
    outb(PIC2_DATA, 0xff);
}
