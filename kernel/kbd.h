// The PS/2 keyboard as the host's checkpoint button (kbd.c): QMP send-key
// of F12 asks for a checkpoint (`invoke checkpoint`).
#ifndef KBD_H
#define KBD_H
#include <stdbool.h>
#include <stdint.h>

#define KBD_CHECKPOINT_SCANCODE 0x58    // F12 pressed, scan code set 1 (the i8042 translates)

// Route IRQ 1; only when checkpoints are on. False without an i8042 or a route.
bool kbd_init(void);
void kbd_irq(void);                     // T_KBD: drain the controller, EOI
// Pure (kernel/tests/test_kbd.c): does this byte from the controller ask for a checkpoint?
bool kbd_is_checkpoint_key(uint8_t scancode);
#endif
