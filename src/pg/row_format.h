// Row values: the framing of a table row's stored bytes, apart from Postgres so that it can be
// fuzzed and tested on its own (the build keeps this file free of Postgres headers).
//
// Format version 1 (documented in docs/sql.md):
//   byte 0        format version (1)
//   then, for each non-null, non-key column, in ascending attribute order:
//     varint attnum, u32 type oid (little-endian), varint length, the value's bytes
//
// Invariant: RowFieldReader yields only fields that lie wholly inside the bytes it was given, in
// strictly ascending attnum order, and stops at the first malformed byte with a reason; a value it
// reads to the end without a reason is exactly what EncodeRowFieldHeader and the fields' bytes
// encode (there is one encoding per row).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace eloqkv::pg {

inline constexpr uint8_t kRowFormatVersion = 1;
// Two varints of at most 10 bytes each and the 4-byte type.
inline constexpr size_t kMaxRowFieldHeaderSize = 24;

struct RowField {
  uint64_t attnum = 0;
  uint32_t type_oid = 0;
  std::string_view bytes;
};

class RowFieldReader {
 public:
  // `value` must outlive the reader and the fields it yields.
  explicit RowFieldReader(std::string_view value);

  // The next field: true and *field, or false at the end of the value or on malformed bytes
  // (then error() says what was wrong).
  bool Next(RowField* field);
  // Why reading stopped early, or nullptr.
  const char* error() const { return error_; }

 private:
  std::string_view rest_;
  uint64_t last_attnum_ = 0;
  const char* error_ = nullptr;
};

// Writes the header of a field of `len` bytes to buf (at least kMaxRowFieldHeaderSize bytes);
// returns its size. The caller appends the field's bytes after it.
size_t EncodeRowFieldHeader(uint64_t attnum, uint32_t type_oid, uint64_t len, char* buf);

// Whether a stored field of n bytes fits a column of the type's attlen (> 0 fixed, -1 varlena,
// -2 cstring) and byval: nullptr, or why not.
const char* CheckStoredSize(int attlen, bool byval, size_t n);

}  // namespace eloqkv::pg
