// The host's checkpoint trigger: a key on the PS/2 keyboard.
//
// QMP cannot write guest memory, so the host needs a device to knock with.
// The NMI is taken (it asks for an in-place restart, restart.c) and carries
// no reason; the i8042 keyboard controller that every `-M pc` machine has
// does: QMP `send-key` presses a key, the controller raises IRQ 1 (through
// the I/O APIC, like COM1's IRQ 4), and the byte it holds says which key.
// F12 (make code 0x58 in scan code set 1, which the controller's
// translation produces) asks for a checkpoint; every other byte (other
// keys, break codes, the controller's own replies) is read and dropped.
// The request is only noted here: the checkpoint is taken at the next safe
// point (checkpoint.c).
#include "checkpoint.h"
#include "ioapic.h"
#include "kbd.h"
#include "lapic.h"
#include "trap.h"
#include "x86.h"

#define KBD_IRQ      1
#define PORT_DATA    0x60
#define PORT_STATUS  0x64
#define PORT_COMMAND 0x64
#define STATUS_OUT_FULL 0x01
#define STATUS_IN_FULL  0x02
#define CMD_WRITE_CONFIG 0x60
// Configuration byte: keyboard interrupt on, system flag, translation to
// set 1 on; the mouse port's interrupt off and its clock disabled.
#define CONFIG (0x01 | 0x04 | 0x20 | 0x40)
#define SPIN_MAX 100000

static bool wait_input_empty(void)
{
    for (int i = 0; i < SPIN_MAX; i++)
        if (!(inb(PORT_STATUS) & STATUS_IN_FULL))
            return true;
    return false;
}

static void drain(int max)
{
    for (int i = 0; i < max && (inb(PORT_STATUS) & STATUS_OUT_FULL); i++)
        if (kbd_is_checkpoint_key(inb(PORT_DATA)))
            checkpoint_request("host");
}

bool kbd_is_checkpoint_key(uint8_t scancode)
{
    return scancode == KBD_CHECKPOINT_SCANCODE;
}

bool kbd_init(void)
{
    if (inb(PORT_STATUS) == 0xff)       // nothing answers at the port
        return false;
    drain(16);
    if (!wait_input_empty())
        return false;
    outb(PORT_COMMAND, CMD_WRITE_CONFIG);
    if (!wait_input_empty())
        return false;
    outb(PORT_DATA, CONFIG);
    return ioapic_route(KBD_IRQ, T_KBD, lapic_id());
}

void kbd_irq(void)
{
    drain(16);
    lapic_eoi();
}
