// Output commit (EROS, Aurora): what programs write to the console after
// the last committed checkpoint is held in the kernel and goes out only
// once the next checkpoint commits (docs/persistence.md, "Output commit").
#ifndef OUTCOMMIT_H
#define OUTCOMMIT_H
#include <stdbool.h>
#include <stdint.h>

struct env;
struct pbuf;

#define OUT_HOLD_MAX 16384      // bytes held at most; a writer that does not fit waits

// Boot, after checkpoint_init: on with a disk and `checkpoint_every`,
// or as `outcommit=on|off` says.
void outcommit_init(bool disk, bool periodic);
bool outcommit_on(void);
// write(1 or 2) by e: true if its output is held (outcommit_write), false
// if it goes to the console at once.
bool outcommit_holds(const struct env *e);
// Hold len bytes from user memory: len, a shorter count (only for a write
// larger than the whole buffer), -EFAULT, or -ERESTART (the caller waits,
// rewound, until a checkpoint releases the buffer; one is requested).
long outcommit_write(uint64_t buf, uint64_t len);

// The checkpoint writer: bytes held now, the number of bytes released
// before them since the first boot, and a copy of them into the manifest.
uint64_t outcommit_held(void);
uint64_t outcommit_seq(void);
int outcommit_save(struct pbuf *b);
// The checkpoint holding the first n held bytes committed (or failed, or
// the machine powers off): print them, keep the rest, wake waiting writers.
void outcommit_release(uint64_t n);
// At power-off: one line with what output commit cost in latency.
void outcommit_report(void);
// The restore path: output released so far by the checkpoint restored.
void outcommit_restore(uint64_t seq);

long sys_outcommit(uint64_t mode);
#endif
