// The I/O APIC: how a device's interrupt line reaches the local APIC.
//
// The legacy PICs stay masked (pic.c) and the LAPIC's LINT0 with them, so
// the I/O APIC is the one route for device interrupts. Only the UART's
// receive line uses it today (console.c). Each input has a redirection
// entry: vector, delivery mode, destination, trigger, mask.
//
// Its address is the one QEMU's pc and q35 machines (and the PC convention)
// use; the kernel reads no ACPI tables, so it does not look it up in the
// MADT. ISA line n is input n there, except the PIT's line 0 (input 2),
// which the kernel does not use: the tick is the LAPIC timer.
#include "ioapic.h"
#include "memlayout.h"

#define IOAPIC_PHYS  0xfec00000UL
#define IOREGSEL     0x00           // register select (byte offset)
#define IOWIN        0x10           // data window
#define REG_VER      0x01
#define REG_REDTBL   0x10           // entry n: low word at 0x10 + 2n, high word after it
#define RED_MASKED   (1U << 16)     // fixed delivery, physical, active high, edge: all 0

static volatile uint32_t *ioapic;
static int inputs;

static uint32_t ioapic_read(uint32_t reg)
{
    ioapic[IOREGSEL / 4] = reg;
    return ioapic[IOWIN / 4];
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    ioapic[IOREGSEL / 4] = reg;
    ioapic[IOWIN / 4] = v;
}

bool ioapic_init(void)
{
    ioapic = P2V(IOAPIC_PHYS);      // below 4 GiB: inside the direct map, like the LAPIC
    uint32_t ver = ioapic_read(REG_VER);
    if (ver == 0xffffffff || ver == 0) {
        ioapic = 0;                 // nothing answers there: no device interrupts
        return false;
    }
    inputs = (int)((ver >> 16) & 0xff) + 1;
    for (int i = 0; i < inputs; i++) {
        ioapic_write(REG_REDTBL + 2 * i, RED_MASKED);
        ioapic_write(REG_REDTBL + 2 * i + 1, 0);
    }
    return true;
}

bool ioapic_route(int irq, int vector, uint32_t apic_id)
{
    if (!ioapic || irq < 0 || irq >= inputs)
        return false;
    // High word first: the entry is unmasked only once its destination is right.
    ioapic_write(REG_REDTBL + 2 * irq + 1, apic_id << 24);
    ioapic_write(REG_REDTBL + 2 * irq, (uint32_t)vector);
    return true;
}
