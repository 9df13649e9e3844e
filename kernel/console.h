// Console input: COM1's received bytes, delivered into a ring in the
// reading program's own memory (console.c, docs/restart.md).
#ifndef CONSOLE_H
#define CONSOLE_H
#include <stdbool.h>
#include <stdint.h>

struct env;

void console_init(void);        // route IRQ 4; init holds the console
void console_irq(void);         // T_COM1: take what the ring has room for, EOI
// A spawn by `parent` succeeded: the child takes the console if the parent
// holds it and asked for that (console_give(CONSOLE_NEXT_CHILD)).
void console_spawned(struct env *parent, int child_id);
// However e ends: if it held the console, the console goes back to init.
void console_env_ended(struct env *e);
// Restore (restore.c), once the environments are rebuilt: who holds the
// console and the ring it had attached (0, 0: none), judged as
// console_attach judges one. 0, -ESRCH (holder not a live environment),
// -EINVAL / -EFAULT (the ring; the console is then held with none attached).
long console_restore(int holder, bool give_next, uint64_t ring, uint64_t size, uint32_t head);

// For checkpoints: who holds the console and the state of its input ring.
void console_checkpoint(int32_t *holder, uint32_t *give_next, uint64_t *ring_va,
                        uint32_t *ring_size, uint32_t *head);

long sys_console_attach(uint64_t ring, uint64_t size);
long sys_console_wait(uint64_t seen, uint64_t deadline);
long sys_console_give(uint64_t id);
#endif
