// CRC32C: the checkpoint format's checksum (kernel/lib/crc32c.c).
#include "crc32c.h"
#include "ktest.h"
#include "string.h"

static void standard_vector(struct ktest *t)
{
    KEXPECT_EQ(t, crc32c("123456789", 9), 0xE3069283U);    // RFC 3720 B.4 check value
    KEXPECT_EQ(t, crc32c("", 0), 0);
}

static void zeros_vector(struct ktest *t)
{
    uint8_t zeros[32];
    memset(zeros, 0, sizeof(zeros));
    KEXPECT_EQ(t, crc32c(zeros, sizeof(zeros)), 0x8A9136AAU);   // RFC 3720 B.4: 32 bytes of 0
}

static void chains(struct ktest *t)
{
    const char *s = "revenant checkpoint";
    uint32_t whole = crc32c(s, strlen(s));
    KEXPECT_EQ(t, crc32c_update(crc32c(s, 7), s + 7, strlen(s) - 7), whole);
}

static void one_bit_changes_it(struct ktest *t)
{
    char a[] = "generation 7";
    uint32_t before = crc32c(a, sizeof(a));
    a[3] ^= 1;
    KEXPECT_TRUE(t, crc32c(a, sizeof(a)) != before);
}

// The instruction path (where the CPU has it) and the table agree on every
// length and alignment, tails included.
static void both_ways_agree(struct ktest *t)
{
    static uint8_t buf[300];
    for (unsigned i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (unsigned off = 0; off < 9; off++)
        for (unsigned len = 0; len + off <= sizeof(buf); len += 37)
            KEXPECT_EQ(t, crc32c_update(5, buf + off, len), crc32c_table_update(5, buf + off, len));
}

KTEST_SUITE(crc32c,
            KTEST_CASE(both_ways_agree),
            KTEST_CASE(standard_vector),
            KTEST_CASE(zeros_vector),
            KTEST_CASE(chains),
            KTEST_CASE(one_bit_changes_it));
