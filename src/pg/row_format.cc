#include "pg/row_format.h"

#include "engine/coding.h"

namespace eloqkv::pg {

static_assert(kMaxRowFieldHeaderSize == 2 * kMaxVarint64Size + 4);

RowFieldReader::RowFieldReader(std::string_view value) : rest_(value) {
  if (value.empty()) {
    error_ = "empty value";
  } else if (static_cast<uint8_t>(value.front()) != kRowFormatVersion) {
    error_ = "unknown row format version";
  } else {
    rest_.remove_prefix(1);
  }
}

bool RowFieldReader::Next(RowField* field) {
  if (error_ != nullptr || rest_.empty()) return false;
  uint64_t attnum, len;
  if (!GetVarint64(&rest_, &attnum) || rest_.size() < 4) {
    error_ = "truncated column header";
    return false;
  }
  // Attribute numbers start at 1 and each column is stored once, in order: anything else is not
  // a row EncodeRow wrote.
  if (attnum <= last_attnum_) {
    error_ = "columns out of order";
    return false;
  }
  const uint32_t type_oid = DecodeFixed32(rest_.data());
  rest_.remove_prefix(4);
  if (!GetVarint64(&rest_, &len) || len > rest_.size()) {
    error_ = "truncated value";
    return false;
  }
  last_attnum_ = attnum;
  field->attnum = attnum;
  field->type_oid = type_oid;
  field->bytes = rest_.substr(0, len);
  rest_.remove_prefix(len);
  return true;
}

size_t EncodeRowFieldHeader(uint64_t attnum, uint32_t type_oid, uint64_t len, char* buf) {
  size_t n = EncodeVarint64(buf, attnum);
  EncodeFixed32(buf + n, type_oid);
  n += 4;
  return n + EncodeVarint64(buf + n, len);
}

const char* CheckStoredSize(int attlen, bool byval, size_t n) {
  if (byval) {
    if (attlen != 1 && attlen != 2 && attlen != 4 && attlen != 8)
      return "unsupported by-value length";
    return n == static_cast<size_t>(attlen) ? nullptr : "wrong length for a by-value type";
  }
  if (attlen > 0 && n != static_cast<size_t>(attlen)) return "wrong length for a fixed-length type";
  if (attlen < -2 || attlen == 0) return "unsupported type length";
  // A varlena's length word has 30 bits, and includes itself.
  if (attlen == -1 && n > (uint64_t{1} << 30) - 1 - 4) return "value too long for its type";
  return nullptr;
}

}  // namespace eloqkv::pg
