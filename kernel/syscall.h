#ifndef SYSCALL_H
#define SYSCALL_H
#include "trap.h"
// A handler asking for the rewind rule: the vproc is blocked; its frame is
// moved back to the `syscall` instruction, arguments untouched, so the call
// runs again from scratch when the vproc is woken. Never seen by user space.
#define ERESTART 513

void syscall_init(void);
void syscall_dispatch(struct trapframe *tf) __attribute__((noreturn));
#endif
