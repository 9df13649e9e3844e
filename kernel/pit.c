// The 8254 PIT, used only as a reference clock of known frequency to
// calibrate the LAPIC timer. Channel 2 is the one whose output can be read
// back (port 0x61 bit 5) without taking an interrupt.
#include "pit.h"
#include "x86.h"

#define PIT_CH2      0x42
#define PIT_CMD      0x43
#define SPEAKER_PORT 0x61
#define SPK_GATE2    0x01   // channel 2 gate
#define SPK_SPEAKER  0x02   // speaker data: keep off
#define SPK_OUT2     0x20   // channel 2 output (read)

void pit_oneshot_arm(unsigned ms)
{
    unsigned count = PIT_HZ * ms / 1000;    // <= 65535 for ms <= 54
    uint8_t spk = inb(SPEAKER_PORT) & ~(SPK_SPEAKER | SPK_GATE2);
    outb(SPEAKER_PORT, spk);
    outb(PIT_CMD, 0xb0);                    // channel 2, lo/hi byte, mode 0, binary
    outb(PIT_CH2, count & 0xff);
    outb(PIT_CH2, count >> 8);
}

bool pit_oneshot_wait(void)
{
    // Programming mode 0 drives OUT2 low. If it reads high, nothing is
    // there (an unassigned port reads as all ones).
    if (inb(SPEAKER_PORT) & SPK_OUT2)
        return false;
    // Gate high starts the count; mode 0 raises OUT2 when it reaches zero.
    outb(SPEAKER_PORT, (inb(SPEAKER_PORT) & ~SPK_SPEAKER) | SPK_GATE2);
    // The bound only matters if there is no PIT at all; a 50 ms interval
    // takes far fewer port reads than this even on real hardware.
    for (unsigned long i = 0; i < 2000000UL; i++)
        if (inb(SPEAKER_PORT) & SPK_OUT2)
            return true;
    return false;
}

bool pit_countdown_start(void)
{
    uint8_t spk = inb(SPEAKER_PORT) & ~(SPK_SPEAKER | SPK_GATE2);
    outb(SPEAKER_PORT, spk);
    outb(PIT_CMD, 0xb0);                    // channel 2, lo/hi byte, mode 0, binary
    outb(PIT_CH2, 0xff);
    outb(PIT_CH2, 0xff);
    if (inb(SPEAKER_PORT) & SPK_OUT2)       // as in pit_oneshot_wait: no PIT
        return false;
    outb(SPEAKER_PORT, spk | SPK_GATE2);
    return true;
}

uint16_t pit_count(void)
{
    outb(PIT_CMD, 0x80);                    // latch channel 2's count
    uint8_t lo = inb(PIT_CH2);
    return (uint16_t)(lo | inb(PIT_CH2) << 8);
}
