// Power off. There is no ACPI driver: under QEMU the isa-debug-exit device
// (iobase 0xf4) ends the process with status (value << 1) | 1, which lets
// the toolkit tell success (33) from failure (35) from an unexpected reset
// (0 with -no-reboot).
#include "checkpoint.h"
#include "outcommit.h"
#include "power.h"
#include "printf.h"
#include "x86.h"

#define DEBUG_EXIT_PORT 0xf4
#define DEBUG_EXIT_OK   0x10    // QEMU exits 33
#define DEBUG_EXIT_FAIL 0x11    // QEMU exits 35
#define DEBUG_EXIT_CUT  0x12    // QEMU exits 37: a simulated power cut

static void __attribute__((noreturn)) halt_forever(void)
{
    // Only reached without isa-debug-exit (real hardware, other VMMs).
    for (;;) {
        cli();
        hlt();
    }
}

void power_off(bool ok)
{
    checkpoint_at_poweroff();   // commits (and so releases) the output it holds
    // Held program output goes out now, uncommitted: the machine is ending
    // cleanly, and a line kept back forever would be a line lost
    // (docs/persistence.md, "Output commit").
    outcommit_release(outcommit_held());
    outcommit_report();
    kprintf("revenant: poweroff status=%d\n", ok ? 0 : 1);
    outb(DEBUG_EXIT_PORT, ok ? DEBUG_EXIT_OK : DEBUG_EXIT_FAIL);
    halt_forever();
}

void power_cut(void)
{
    outb(DEBUG_EXIT_PORT, DEBUG_EXIT_CUT);
    halt_forever();
}

void power_exit_failure(void)
{
    outb(DEBUG_EXIT_PORT, DEBUG_EXIT_FAIL);
    halt_forever();
}
