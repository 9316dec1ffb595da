// Little-endian fixed-width encoding helpers shared by the record, checkpoint and catalog formats.
//
// Invariant: every on-disk integer is little-endian regardless of the host.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace eloqkv {

inline void EncodeFixed16(char* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void EncodeFixed32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void EncodeFixed64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint16_t DecodeFixed16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t DecodeFixed32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t DecodeFixed64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void PutFixed32(std::string* s, uint32_t v) {
  char b[4];
  EncodeFixed32(b, v);
  s->append(b, 4);
}
inline void PutFixed64(std::string* s, uint64_t v) {
  char b[8];
  EncodeFixed64(b, v);
  s->append(b, 8);
}
inline constexpr size_t kMaxVarint64Size = 10;
// Writes v as a varint to dst (room for kMaxVarint64Size bytes); returns the bytes written.
inline size_t EncodeVarint64(char* dst, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    dst[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  dst[n++] = static_cast<char>(v);
  return n;
}
inline void PutVarint64(std::string* s, uint64_t v) {
  char b[kMaxVarint64Size];
  s->append(b, EncodeVarint64(b, v));
}
// Returns false on truncated or overlong input.
inline bool GetVarint64(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    result |= uint64_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80u) == 0) {
      // Only what PutVarint64 writes: no zero last byte after others (an overlong encoding, which
      // would give two byte strings one meaning), no bits past the 64th.
      if ((byte == 0 && shift > 0) || (shift == 63 && byte > 1)) return false;
      *v = result;
      return true;
    }
  }
  return false;
}
inline void PutLengthPrefixed(std::string* s, std::string_view v) {
  PutVarint64(s, v.size());
  s->append(v);
}
inline bool GetLengthPrefixed(std::string_view* in, std::string_view* v) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  *v = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}
inline bool GetLengthPrefixed(std::string_view* in, std::string* v) {
  std::string_view view;
  if (!GetLengthPrefixed(in, &view)) return false;
  v->assign(view);
  return true;
}

}  // namespace eloqkv
