// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the
// checkpoint format (kernel/checkpoint_format.h). Shared by the writer and
// the reader in the kernel; the host has its own (toolchain/persist/crc32c.py)
// and both are checked against the standard test vector
// crc32c("123456789") == 0xE3069283.
#ifndef CRC32C_H
#define CRC32C_H
#include <stddef.h>
#include <stdint.h>

// The CRC32C of buf[0..len): crc32c_update(0, buf, len). Chained, a buffer
// split in two gives the same value: crc32c_update(crc32c(a), b) == crc32c(ab).
uint32_t crc32c(const void *buf, size_t len);
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);
// The same by the table only (the tests hold the two ways to one answer).
uint32_t crc32c_table_update(uint32_t crc, const void *buf, size_t len);
#endif
