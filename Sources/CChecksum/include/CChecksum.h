// CRC32C (Castagnoli), the checksum that ends every job, pipeline and step record
// (docs/FORMAT.md). SSE 4.2's crc32 instruction where the CPU has it, a table otherwise;
// both give the same value.
#ifndef JOBSTORE_CCHECKSUM_H
#define JOBSTORE_CCHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/// The CRC32C of `count` bytes at `bytes`, continuing `crc` (0 to start; pass a previous
/// result to checksum data given in pieces). CRC32C of "123456789" is 0xE3069283.
uint32_t jobstore_crc32c(uint32_t crc, const void *bytes, size_t count);

/// The same, always by table (what a CPU without SSE 4.2 runs); for the tests.
uint32_t jobstore_crc32c_portable(uint32_t crc, const void *bytes, size_t count);

#endif
