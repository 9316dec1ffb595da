#include "engine/record.h"

#include "engine/coding.h"
#include "engine/crc32c.h"
#include "engine/eloqkv.h"

namespace eloqkv {
namespace {

constexpr uint64_t kSegmentMagic = 0x31304745534B4C45ull;  // "ELKSEG01"

void EncodeHeader(const RecordHeader& h, char* p) {
  p[4] = static_cast<char>(h.type);
  p[5] = static_cast<char>(h.flags);
  EncodeFixed16(p + 6, h.key_len);
  EncodeFixed32(p + 8, h.value_len);
  EncodeFixed32(p + 12, h.keyspace);
  EncodeFixed32(p + 16, h.segment);
  EncodeFixed32(p + 20, h.durable_segment);
  EncodeFixed64(p + 24, h.seq);
  EncodeFixed64(p + 32, static_cast<uint64_t>(h.expire_at_ms));
}

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

}  // namespace

void EncodeRecord(const RecordHeader& h, std::string_view key, std::string_view value, char* dst) {
  EncodeHeader(h, dst);
  if (!key.empty()) std::memcpy(dst + kRecordHeaderSize, key.data(), key.size());
  if (!value.empty()) std::memcpy(dst + kRecordHeaderSize + key.size(), value.data(), value.size());
  ResealRecord(dst, kRecordHeaderSize + key.size() + value.size());
}

void AppendRecord(const RecordHeader& h, std::string_view key, std::string_view value,
                  std::string* out) {
  const size_t at = out->size();
  out->resize(at + kRecordHeaderSize + key.size() + value.size());
  EncodeRecord(h, key, value, out->data() + at);
}

void ResealRecord(char* record, size_t total_size) {
  EncodeFixed32(record, crc32c::Value(record + 4, total_size - 4));
}

void PatchRecordSeq(char* record, uint64_t seq) { EncodeFixed64(record + 24, seq); }
void PatchRecordSegment(char* record, uint32_t segment) { EncodeFixed32(record + 16, segment); }
void PatchRecordKeyspace(char* record, uint32_t keyspace) { EncodeFixed32(record + 12, keyspace); }
void PatchRecordDurableSegment(char* record, uint32_t segment) { EncodeFixed32(record + 20, segment); }
void PatchRecordType(char* record, RecordType type) { record[4] = static_cast<char>(type); }
void PatchRecordFlags(char* record, uint8_t flags) { record[5] = static_cast<char>(flags); }

DecodeResult DecodeRecordHeader(const char* data, size_t avail, RecordHeader* out) {
  if (avail < kRecordHeaderSize) return DecodeResult::kIncomplete;
  if (AllZero(data, kRecordHeaderSize)) return DecodeResult::kZero;
  RecordHeader h;
  const auto type = static_cast<uint8_t>(data[4]);
  if (type < static_cast<uint8_t>(RecordType::kPut) || type > static_cast<uint8_t>(RecordType::kRetire))
    return DecodeResult::kBad;
  h.type = static_cast<RecordType>(type);
  h.flags = static_cast<uint8_t>(data[5]);
  if ((h.flags & ~kRecordKnownFlags) != 0) return DecodeResult::kBad;
  h.key_len = DecodeFixed16(data + 6);
  h.value_len = DecodeFixed32(data + 8);
  h.keyspace = DecodeFixed32(data + 12);
  h.segment = DecodeFixed32(data + 16);
  h.durable_segment = DecodeFixed32(data + 20);
  if (h.durable_segment > h.segment) return DecodeResult::kBad;
  h.seq = DecodeFixed64(data + 24);
  h.expire_at_ms = static_cast<int64_t>(DecodeFixed64(data + 32));
  const size_t max_key = h.type == RecordType::kKeyspace ? kMaxKeyspaceNameSize : kMaxKeySize;
  if (h.key_len > max_key || h.value_len > kMaxValueSize || h.expire_at_ms < 0)
    return DecodeResult::kBad;
  *out = h;
  return DecodeResult::kOk;
}

DecodeResult DecodeRecord(const char* data, size_t avail, uint32_t expected_segment,
                          RecordView* out) {
  RecordHeader h;
  const DecodeResult r = DecodeRecordHeader(data, avail, &h);
  if (r != DecodeResult::kOk) return r;
  if (expected_segment != 0 && h.segment != expected_segment) return DecodeResult::kBad;
  const size_t total = h.total_size();
  if (avail < total) return DecodeResult::kIncomplete;
  if (crc32c::Value(data + 4, total - 4) != DecodeFixed32(data)) return DecodeResult::kBad;
  out->header = h;
  out->key = std::string_view(data + kRecordHeaderSize, h.key_len);
  out->value = std::string_view(data + kRecordHeaderSize + h.key_len, h.value_len);
  return DecodeResult::kOk;
}

std::string EncodeKeyspaceRecord(const KeyspaceRecord& r) {
  std::string s;
  PutFixed32(&s, r.id);
  PutFixed32(&s, r.flags);
  PutFixed64(&s, r.min_seq);
  return s;
}

bool DecodeKeyspaceRecord(std::string_view v, KeyspaceRecord* out) {
  if (v.size() != 16) return false;
  out->id = DecodeFixed32(v.data());
  out->flags = DecodeFixed32(v.data() + 4);
  out->min_seq = DecodeFixed64(v.data() + 8);
  return true;
}

std::string EncodeSegmentHeader(uint32_t segment_id) {
  std::string s(kSegmentHeaderSize, '\0');
  EncodeFixed64(s.data(), kSegmentMagic);
  EncodeFixed32(s.data() + 8, 1);  // format version
  EncodeFixed32(s.data() + 12, segment_id);
  EncodeFixed32(s.data() + kSegmentHeaderSize - 4, crc32c::Value(s.data(), kSegmentHeaderSize - 4));
  return s;
}

bool DecodeSegmentHeader(const char* data, size_t n, uint32_t* segment_id) {
  if (n < kSegmentHeaderSize) return false;
  if (DecodeFixed64(data) != kSegmentMagic || DecodeFixed32(data + 8) != 1) return false;
  if (crc32c::Value(data, kSegmentHeaderSize - 4) != DecodeFixed32(data + kSegmentHeaderSize - 4))
    return false;
  // Version 1 writes zeros between the id and the checksum: anything else is not ours.
  for (size_t i = 16; i < kSegmentHeaderSize - 4; ++i)
    if (data[i] != 0) return false;
  *segment_id = DecodeFixed32(data + 12);
  return true;
}

}  // namespace eloqkv
