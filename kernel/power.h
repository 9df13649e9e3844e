#ifndef POWER_H
#define POWER_H
#include <stdbool.h>
// Leave QEMU through isa-debug-exit: ok -> exit status 33, else 35.
void power_off(bool ok) __attribute__((noreturn));
// A simulated power cut (checkpoint_cut=STEP): QEMU exits with status 37
// at once, nothing flushed or printed after it.
void power_cut(void) __attribute__((noreturn));
// Exit with status 35 without the poweroff line (used by panic).
void power_exit_failure(void) __attribute__((noreturn));
#endif
