// Console input that survives restarts: COM1's received bytes go straight
// into a ring in the reading program's own memory.
//
// A received byte is always in one of two places (docs/restart.md, "Input
// is state too"):
//   * still in the UART, QEMU or the host: not received yet. The kernel
//     reads the UART only when the ring has room for the byte, and turns
//     the receive interrupt off while it has none (no ring, ring full, ring
//     unusable). The 16550 then keeps the byte and QEMU takes no more from
//     the host, whose writes wait: flow control, nothing is dropped.
//   * in the ring: received. The kernel takes a byte from the UART, stores
//     it and then publishes head, all with interrupts off, so there is no
//     instant at which a byte has left the UART and is not in the ring.
// No received byte is ever held in kernel memory: a restart, which forgets
// only waits, cannot lose one, and there is nothing it could deliver twice.
//
// The kernel's own state is who holds the console and which ring it
// attached (struct con below). None of it is a wait, so a restart keeps it;
// a checkpoint must save it with the environment (docs/restart.md).
//
// Who may read: one environment at a time, the holder. At boot that is
// init. The holder may give the console to a child of its own, now or at
// its next spawn (then atomically with the spawn, so the child can never
// run before it holds the console). When the holder ends, the console goes
// back to init. Everyone else gets -EPERM from every console call.
//
// The ring is the reader's, so everything in it is hostile. The kernel
// reads only tail, once per pull, and refuses a tail ahead of head or more
// than size behind it; it never reads head or size back (it keeps its own
// and rewrites the ring's); at every pull it looks every page up again in
// the holder's page table and writes, through the direct map, only to a
// present, user, writable page of the holder, inside [ring, ring + 16 +
// size). A reader that corrupts its ring, unmaps it or never empties it
// stops its own input and nothing else.
//
// Waiting: console_wait(seen, deadline) first takes what the ring has room
// for, then returns head if it is not `seen`, or blocks as a futex waiter
// on the ring's head word (WAIT_FUTEX, key: its physical address, as
// futex.c computes it) and returns -ERESTART: the rewind rule. New bytes, a
// futex_wake on that word, the deadline or a restart rerun it from scratch,
// and a rerun that finds nothing new waits again. It has no effect a rerun
// could double: taking bytes from the UART is what the interrupt does too,
// and a byte taken is in the ring.
#include "abi.h"
#include "console.h"
#include "env.h"
#include "ioapic.h"
#include "lapic.h"
#include "memlayout.h"
#include "printf.h"
#include "sched.h"
#include "syscall.h"
#include "timer.h"
#include "trap.h"
#include "uart.h"
#include "vm.h"

#define COM1_IRQ    4
#define PULL_BUDGET 64          // bytes per pull: interrupts are off meanwhile
#define RING_HEADER sizeof(struct console_ring)
#define PTE_RING    (PTE_P | PTE_U | PTE_W)

static struct {
    int holder;                 // the environment that may attach a ring; 0: nobody
    bool give_next;             // console_give(CONSOLE_NEXT_CHILD): its next spawn takes it
    uint64_t ring;              // user address of the attached ring; 0: none
    uint32_t size;              // its capacity, a power of two
    uint32_t head;              // bytes appended since the attach; ring->head mirrors it
} con;
static bool routed;             // IRQ 4 reaches the CPU (an I/O APIC answered)

void console_checkpoint(int32_t *holder, uint32_t *give_next, uint64_t *ring_va,
                        uint32_t *ring_size, uint32_t *head)
{
    *holder = con.holder;
    *give_next = con.give_next;
    *ring_va = con.ring;
    *ring_size = con.ring ? con.size : 0;
    *head = con.head;
}

void console_init(void)
{
    con.holder = INIT_ENV_ID;
    uart_rx_irq(false);         // on only while a ring has room
    routed = ioapic_init() && ioapic_route(COM1_IRQ, T_COM1, lapic_id());
    if (!routed)
        kprintf("console: no I/O APIC at 0xfec00000: no console input\n");
}

// Where the holder's byte at `va` is in the kernel's direct map, or NULL
// unless it is on a present, user, writable page of the holder.
static volatile uint8_t *ring_at(struct env *e, uint64_t va)
{
    uint64_t pte = vm_lookup(e->pml4, va);
    uint64_t pa = (pte & PTE_ADDR) | (va & (PAGE_SIZE - 1));
    if ((pte & PTE_RING) != PTE_RING || pa >= DIRECT_MAP_SIZE)
        return NULL;
    vm_mark_dirty(e->pml4, va);         // written through the direct map: checkpoints must see it
    return P2V(pa);
}

static struct env *holder_env(void)
{
    struct env *e = con.holder ? env_find(con.holder) : NULL;
    return e && e->state == ENV_LIVE && e->pml4 ? e : NULL;
}

// The attached ring's header (16-aligned: one page), or NULL.
static volatile uint32_t *ring_header(struct env *e)
{
    return e && con.ring ? (volatile uint32_t *)ring_at(e, con.ring) : NULL;
}

// Take received bytes into the attached ring while it has room, then let
// the next byte interrupt only if there is room for it. 0, or why the ring
// cannot take any: -EBADF (none attached), -EFAULT (a page of it is no
// longer the holder's to write), -EINVAL (its tail is impossible).
static long pull(void)
{
    struct env *e = holder_env();
    volatile uint32_t *hdr = ring_header(e);
    if (!hdr) {
        uart_rx_irq(false);
        return e && con.ring ? -EFAULT : -EBADF;
    }
    uint32_t used = con.head - hdr[1];      // tail, read once: the reader may change it any time
    long err = used > con.size ? -EINVAL : 0;
    int moved = 0;
    while (!err && used < con.size && moved < PULL_BUDGET && uart_rx_ready()) {
        volatile uint8_t *dst = ring_at(e, con.ring + RING_HEADER + (con.head & (con.size - 1)));
        if (!dst) {
            err = -EFAULT;              // looked up before the byte is taken: it stays in the UART
            break;
        }
        *dst = uart_rx();
        con.head++;
        used++;
        moved++;
    }
    hdr[0] = con.head;                  // after the bytes; repairs a head the reader overwrote
    if (moved)
        sched_wake(WAIT_FUTEX, V2P(hdr));
    bool room = !err && used < con.size;
    if (room && moved == PULL_BUDGET)
        uart_rx_irq(false);             // bytes may be left: off and on is a new edge, a new interrupt
    uart_rx_irq(room);
    return err;
}

void console_irq(void)
{
    pull();     // a ring that cannot take bytes leaves the interrupt off until console_wait
    lapic_eoi();
}

static void detach(void)
{
    con.ring = 0;
    con.size = 0;
    con.head = 0;
    uart_rx_irq(false);
}

static void hand_to(int id)
{
    detach();
    con.holder = id;
    con.give_next = false;
}

void console_spawned(struct env *parent, int child_id)
{
    if (con.give_next && parent && parent->id == con.holder)
        hand_to(child_id);
}

void console_env_ended(struct env *e)
{
    if (e->id == con.holder)
        hand_to(e->id == INIT_ENV_ID ? 0 : INIT_ENV_ID);
}

static bool in_activation_area(uint64_t va, uint64_t len)
{
    return va < ACT_SEGMENT + ACT_SEGMENT_SIZE && va + len > ACT_RESTORE;
}

// A ring e may attach: 0, -EINVAL (size, alignment, activation area) or
// -EFAULT (not all of it e's to write).
static long ring_check(struct env *e, uint64_t ring, uint64_t size)
{
    if (size < CONSOLE_RING_MIN || size > CONSOLE_RING_MAX || (size & (size - 1)) || ring % 16)
        return -EINVAL;
    uint64_t len = RING_HEADER + size;
    if (!is_user_range(ring, len))
        return -EFAULT;
    // The activation area is the kernel's (records, restore page).
    if (in_activation_area(ring, len))
        return -EINVAL;
    for (uint64_t p = ring & ~(uint64_t)(PAGE_SIZE - 1); p < ring + len; p += PAGE_SIZE)
        if (!ring_at(e, p))
            return -EFAULT;
    return 0;
}

long sys_console_attach(uint64_t ring, uint64_t size)
{
    struct env *e = env_current();
    if (e->id != con.holder)
        return -EPERM;
    if (!routed)
        return -ENODEV;
    if (ring == 0 && size == 0) {
        detach();
        return 0;
    }
    long err = ring_check(e, ring, size);
    if (err < 0)
        return err;
    con.ring = ring;
    con.size = (uint32_t)size;
    con.head = 0;
    volatile uint32_t *hdr = ring_header(e);
    hdr[0] = 0;
    hdr[1] = 0;
    hdr[2] = (uint32_t)size;
    hdr[3] = 0;
    pull();                             // bytes that waited in the UART come now
    return 0;
}

long console_restore(int holder, bool give_next, uint64_t ring, uint64_t size, uint32_t head)
{
    struct env *e = holder ? env_find(holder) : NULL;
    if (holder && (!e || e->state != ENV_LIVE))
        return -ESRCH;
    hand_to(holder);
    con.give_next = give_next;
    if (!ring && !size)
        return 0;
    long err = e ? ring_check(e, ring, size) : -EINVAL;
    if (err < 0)
        return err;
    // The ring's bytes are restored with the holder's pages; the head the
    // kernel counted goes on from where it was (the reader's tail is judged
    // against it at every pull, as ever).
    con.ring = ring;
    con.size = (uint32_t)size;
    con.head = head;
    if (routed)
        pull();
    return 0;
}

long sys_console_wait(uint64_t seen, uint64_t deadline)
{
    struct env *e = env_current();
    if (e->id != con.holder)
        return -EPERM;
    if (seen > UINT32_MAX)
        return -EINVAL;                 // head has 32 bits: a wider value never matches, say so
    long r = pull();
    if (r < 0)
        return r;
    if (con.head != (uint32_t)seen)
        return con.head;
    if (deadline != FUTEX_NO_DEADLINE && timer_ns() >= deadline)
        return -ETIMEDOUT;
    struct vproc *v = sched_current();
    sched_block(v, WAIT_FUTEX, V2P(ring_header(e)));
    v->wait_deadline = deadline;
    return -ERESTART;
}

long sys_console_give(uint64_t id)
{
    struct env *e = env_current();
    if (e->id != con.holder)
        return -EPERM;
    if (id == CONSOLE_NEXT_CHILD) {
        con.give_next = true;
        return 0;
    }
    struct env *c = id <= INT32_MAX ? env_find((int)id) : NULL;
    if (!c || c->state != ENV_LIVE || c->parent != e->id)
        return -ESRCH;
    hand_to(c->id);
    return 0;
}
