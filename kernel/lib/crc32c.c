// CRC32C by table, a byte at a time: portable (no SSE4.2 needed, the user
// library is built for a plain x86-64) and small. The table is computed at
// the first call rather than spelled out: 256 numbers nobody can review.
#include "crc32c.h"

#define POLY 0x82F63B78U        // 0x1EDC6F41 bit-reversed

static uint32_t table[256];
static int table_ready;

static void make_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[i] = c;
    }
    table_ready = 1;
}

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
    if (!table_ready)
        make_table();
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_update(0, buf, len);
}
