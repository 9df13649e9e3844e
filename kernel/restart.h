// In-place restart: drop every wait in the kernel and let every blocked
// call rerun (docs/restart.md).
#ifndef RESTART_H
#define RESTART_H
#include <stdbool.h>
#include <stdint.h>

// Boot: `restart_every=MS` (0 or absent: only on request), `restart_at=NS`
// (one restart once the guest clock reaches NS ns).
void restart_init(void);
// A restart has been asked for (an NMI came, restart_every or restart_at is
// due).
// Cheap: checked at every safe point.
bool restart_due(void);
// At a safe point only (every vproc's frame complete: a tick from user
// mode, or the scheduler loop): make every blocked vproc runnable at its
// rewound syscall, give every environment that registered one a restarted
// upcall (now, or once its vproc leaves the disabled state), and print
//   restart <n>: dropped <k> waiters (<f> futex, <s> sleep, <c> child); ...
// May kill an environment whose activation header is hostile.
void restart_run(void);

// Incremented by the NMI handler (trapasm.S), read only here.
extern volatile uint64_t nmi_requests;
#endif
