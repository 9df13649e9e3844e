#ifndef IOAPIC_H
#define IOAPIC_H
#include <stdbool.h>
#include <stdint.h>
// Mask every input; false if no I/O APIC answers at its address.
bool ioapic_init(void);
// Deliver ISA interrupt line `irq` (edge, active high) as `vector` to the
// local APIC with id `apic_id`; false without an I/O APIC or such a line.
bool ioapic_route(int irq, int vector, uint32_t apic_id);
#endif
