// The on-disk record: the only unit the log holds.
//
//   offset size field
//   0      4    crc32c of bytes [4, 40 + key_len + value_len)
//   4      1    type (RecordType)
//   5      1    flags (kBatchEnd on the last record of a batch, kRelocated for compaction copies)
//   6      2    key_len
//   8      4    value_len
//   12     4    keyspace id
//   16     4    segment id the record was written to (a copy in the wrong file is rejected)
//   20     4    durable segment: when the record was written, every segment before this one was
//                complete and synced (recovery uses it to tell media damage from a torn tail)
//   24     8    sequence number (unique, increasing in log order except for copies that
//                compaction made: those keep the original's number and carry kRelocated)
//   32     8    expire_at_ms (0: never)
//   40     ...  key, then value
//
// Invariant: DecodeRecord accepts a byte range only if its checksum matches and every field is
// within limits, so a single flipped bit anywhere in a record is always detected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace eloqkv {

enum class RecordType : uint8_t {
  kPut = 1,
  kDelete = 2,
  kKeyspace = 3,  // catalog change; key = keyspace name, value = KeyspaceRecord
  kSeal = 4,      // last record of a segment
  kVoid = 5,      // padding, or an op skipped by its write condition
  kRetire = 6,    // a compacted segment was deleted; value = its id (u32), then (not in older
                  // logs) the clock its removals of expired keys had reached (i64 ms)
};

enum RecordFlags : uint8_t {
  kRecordBatchEnd = 1u << 0,
  kRecordRelocated = 1u << 1,
};

inline constexpr size_t kRecordHeaderSize = 40;
inline constexpr uint8_t kRecordKnownFlags = kRecordBatchEnd | kRecordRelocated;

struct RecordHeader {
  RecordType type = RecordType::kPut;
  uint8_t flags = 0;
  uint16_t key_len = 0;
  uint32_t value_len = 0;
  uint32_t keyspace = 0;
  uint32_t segment = 0;
  uint32_t durable_segment = 0;
  uint64_t seq = 0;
  int64_t expire_at_ms = 0;

  size_t total_size() const { return kRecordHeaderSize + key_len + value_len; }
};

struct RecordView {
  RecordHeader header;
  std::string_view key;
  std::string_view value;
};

// Writes header + key + value into dst (which must hold total_size() bytes) and seals it with
// its checksum.
void EncodeRecord(const RecordHeader& h, std::string_view key, std::string_view value, char* dst);
// Appends an encoded record to out.
void AppendRecord(const RecordHeader& h, std::string_view key, std::string_view value,
                  std::string* out);
// Recomputes the checksum of an encoded record in place (after patching seq/segment/flags).
void ResealRecord(char* record, size_t total_size);
// Patches header fields of an encoded record (checksum NOT updated; call ResealRecord).
void PatchRecordSeq(char* record, uint64_t seq);
void PatchRecordSegment(char* record, uint32_t segment);
void PatchRecordKeyspace(char* record, uint32_t keyspace);
void PatchRecordDurableSegment(char* record, uint32_t segment);
void PatchRecordType(char* record, RecordType type);
void PatchRecordFlags(char* record, uint8_t flags);

enum class DecodeResult {
  kOk,
  kIncomplete,  // fewer bytes than the header promises: read more (or the log ends here)
  kZero,        // an all-zero header: unwritten (preallocated) space
  kBad,         // checksum or field check failed
};

// Parses the header only; returns kBad if a field is out of range. Does not verify the checksum.
DecodeResult DecodeRecordHeader(const char* data, size_t avail, RecordHeader* out);
// Parses and verifies a whole record at data[0, avail). expected_segment == 0 skips that check.
DecodeResult DecodeRecord(const char* data, size_t avail, uint32_t expected_segment,
                          RecordView* out);

// Catalog records (RecordType::kKeyspace).
struct KeyspaceRecord {
  uint32_t id = 0;
  uint32_t flags = 0;  // kKeyspaceDropped
  uint64_t min_seq = 0;  // records with a smaller seq are invisible (truncate)
};
inline constexpr uint32_t kKeyspaceDropped = 1;
std::string EncodeKeyspaceRecord(const KeyspaceRecord& r);
bool DecodeKeyspaceRecord(std::string_view v, KeyspaceRecord* out);

// Segment file header, at offset 0 of every segment file.
inline constexpr size_t kSegmentHeaderSize = 64;
std::string EncodeSegmentHeader(uint32_t segment_id);
bool DecodeSegmentHeader(const char* data, size_t n, uint32_t* segment_id);

}  // namespace eloqkv
