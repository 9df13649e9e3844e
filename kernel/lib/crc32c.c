// CRC32C. Two ways to the same number: the SSE4.2 `crc32` instruction,
// eight bytes at a time, where the CPU has it (QEMU's `-cpu max` does, and
// so does every x86-64 since 2008), and a table, a byte at a time,
// everywhere else. The instruction is plain integer code (no SSE register
// is touched), so the kernel may use it; the choice is made once, by
// CPUID, at the first call. The table is computed then too rather than
// spelled out: 256 numbers nobody can review.
#include "crc32c.h"

#define POLY 0x82F63B78U        // 0x1EDC6F41 bit-reversed
#define CPUID1_ECX_SSE42 (1U << 20)

static uint32_t table[256];
static int mode;                // 0: not chosen yet, 1: table, 2: instruction

static void make_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[i] = c;
    }
}

static int choose(void)
{
    uint32_t a = 1, b, c = 0, d;
    asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    make_table();
    return (c & CPUID1_ECX_SSE42) ? 2 : 1;
}

static uint32_t by_table(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

static uint32_t by_instruction(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        __builtin_memcpy(&v, p, 8);
        asm("crc32q %1, %0" : "+r"(c) : "rm"(v));
    }
    uint32_t c32 = (uint32_t)c;
    for (; len; p++, len--)
        asm("crc32b %1, %0" : "+r"(c32) : "rm"(*p));
    return c32;
}

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
    if (!mode)
        mode = choose();
    crc = ~crc;
    crc = mode == 2 ? by_instruction(crc, buf, len) : by_table(crc, buf, len);
    return ~crc;
}

uint32_t crc32c_table_update(uint32_t crc, const void *buf, size_t len)
{
    if (!mode)
        mode = choose();
    return ~by_table(~crc, buf, len);
}

uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_update(0, buf, len);
}
