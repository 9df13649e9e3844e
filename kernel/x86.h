// Thin wrappers for instructions C cannot express.
#ifndef X86_H
#define X86_H

#include <stdint.h>

// outb/inb, outw/inw, outl/inl: the port I/O instructions of each width.
#define X86_PORT_IO(sfx, type)                                              \
    static inline void out##sfx(uint16_t port, type v)                      \
    {                                                                       \
        asm volatile("out" #sfx " %0, %1" : : "a"(v), "Nd"(port));          \
    }                                                                       \
    static inline type in##sfx(uint16_t port)                               \
    {                                                                       \
        type v;                                                             \
        asm volatile("in" #sfx " %1, %0" : "=a"(v) : "Nd"(port));           \
        return v;                                                           \
    }
X86_PORT_IO(b, uint8_t)
X86_PORT_IO(w, uint16_t)
X86_PORT_IO(l, uint32_t)

static inline void cli(void) { asm volatile("cli" ::: "memory"); }
static inline void sti(void) { asm volatile("sti" ::: "memory"); }
static inline void hlt(void) { asm volatile("hlt" ::: "memory"); }
static inline void cpu_relax(void) { asm volatile("pause" ::: "memory"); }

// Enable interrupts and halt in one step: sti's one-instruction shadow means
// an interrupt pending at this point wakes the hlt instead of being lost.
static inline void sti_hlt(void) { asm volatile("sti; hlt" ::: "memory"); }

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    asm volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    asm volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

#define READ_CR(n)                                              \
    static inline uint64_t read_cr##n(void)                    \
    {                                                          \
        uint64_t v;                                            \
        asm volatile("mov %%cr" #n ", %0" : "=r"(v));          \
        return v;                                              \
    }
READ_CR(0)
READ_CR(2)
READ_CR(3)
READ_CR(4)
#undef READ_CR

static inline void write_cr3(uint64_t v)
{
    asm volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

static inline uint64_t read_rflags(void)
{
    uint64_t v;
    asm volatile("pushfq; popq %0" : "=r"(v));
    return v;
}

#define MSR_APIC_BASE 0x1b
#define MSR_EFER      0xc0000080

#endif
