// CRC32C (Castagnoli), the checksum of every record, segment header and checkpoint block.
//
// Invariant: Value() gives the same result on every CPU; the SSE4.2 instruction is used when the
// CPU has it (checked once at run time) and a table-driven fallback otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace eloqkv::crc32c {

// Extends `crc` (the CRC of some preceding bytes, 0 for none) over data[0, n).
uint32_t Extend(uint32_t crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// Which implementation Extend uses: "sse4.2" or "table".
const char* Implementation();

namespace internal {
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
bool HardwareAvailable();
uint32_t ExtendHardware(uint32_t crc, const void* data, size_t n);
}  // namespace internal

}  // namespace eloqkv::crc32c
