// libFuzzer target for every decoder of stored bytes, built with ASan and UBSan by the ELOQKV_FUZZ
// configure (see bench/README.md): log records, catalog (keyspace) records, segment headers,
// RESP values and hashes, large-hash headers and field-record keys, table descriptions, RESP
// users and the framing of table rows (the part of the row decoder that reads bytes; the rest is
// Postgres's own type code, given only fields that passed these checks). These read what is on
// disk, which a crash, a bad disk or another version may have left: whatever the bytes, a decoder
// must answer "bad" or a value, never read out of bounds.
//
// Invariants checked (any violation traps):
//  * a log record DecodeRecord accepts lies within the bytes given and encodes back to exactly
//    those bytes; the input is also tried with its checksum made valid (so the field checks behind
//    the checksum are reached), and then with one bit flipped, which must never be accepted;
//  * an accepted keyspace record, segment header, value or large-hash header encodes back to
//    exactly the bytes it came from; an accepted field-record key is rebuilt exactly from its
//    parts;
//  * an accepted hash, table description or user encodes to bytes that decode again to the same
//    encoding (their encodings are canonical once decoded);
//  * every row field lies inside the value, attnums ascend, and a row read to its end without
//    error encodes back to exactly its bytes; a field whose size CheckStoredSize accepts for a
//    column type holds exactly the bytes the row decoder then copies.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/record.h"
#include "pg/row_format.h"
#include "resp/hash_value.h"
#include "resp/store.h"
#include "resp/tables.h"
#include "resp/users.h"

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "decoders_fuzz: invariant violated at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                         \
      __builtin_trap();                                                                            \
    }                                                                                              \
  } while (0)

namespace eloqkv {
namespace {

// Decodes bytes as a record; checks what an accepted record must satisfy. Returns the result.
DecodeResult CheckRecord(const std::string& bytes) {
  // An exact-size heap copy: ASan sees any read past it.
  std::vector<char> copy(bytes.begin(), bytes.end());
  RecordView view;
  const DecodeResult r = DecodeRecord(copy.data(), copy.size(), 0, &view);
  if (r != DecodeResult::kOk) return r;
  const size_t total = view.header.total_size();
  FUZZ_CHECK(total <= copy.size());
  FUZZ_CHECK(view.key.size() == view.header.key_len);
  FUZZ_CHECK(view.value.size() == view.header.value_len);
  FUZZ_CHECK(view.key.data() == copy.data() + kRecordHeaderSize);
  FUZZ_CHECK(view.value.data() == view.key.data() + view.key.size());
  std::string again;
  AppendRecord(view.header, view.key, view.value, &again);
  FUZZ_CHECK(again == std::string_view(copy.data(), total));
  return r;
}

void FuzzRecords(std::string_view in) {
  const std::string raw(in);
  (void)CheckRecord(raw);
  RecordHeader h;
  std::vector<char> header(raw.begin(), raw.end());
  if (DecodeRecordHeader(header.data(), header.size(), &h) != DecodeResult::kOk) return;
  const size_t total = h.total_size();
  if (total > raw.size()) return;
  // The same bytes with a valid checksum: the checks behind the checksum get fuzzed too.
  std::string sealed = raw.substr(0, total);
  ResealRecord(sealed.data(), total);
  if (CheckRecord(sealed) != DecodeResult::kOk) return;
  // One flipped bit, anywhere, is never accepted.
  const size_t bit = (in.empty() ? 0 : static_cast<uint8_t>(in.back())) * 131 % (total * 8);
  std::string flipped = sealed;
  flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
  FUZZ_CHECK(CheckRecord(flipped) != DecodeResult::kOk);
}

void FuzzCatalog(std::string_view in) {
  KeyspaceRecord k;
  if (DecodeKeyspaceRecord(in, &k)) FUZZ_CHECK(EncodeKeyspaceRecord(k) == in);
  uint32_t id = 0;
  const std::string raw(in);
  if (DecodeSegmentHeader(raw.data(), raw.size(), &id)) {
    FUZZ_CHECK(raw.size() >= kSegmentHeaderSize);
    FUZZ_CHECK(EncodeSegmentHeader(id) == std::string_view(raw.data(), kSegmentHeaderSize));
  }
}

void FuzzRespValues(std::string_view in) {
  resp::ValueType type;
  std::string_view payload;
  if (resp::DecodeValue(in, &type, &payload)) {
    FUZZ_CHECK(resp::EncodeValue(type, payload) == in);
  }
  resp::HashFields fields;
  if (resp::DecodeHash(in, &fields)) {
    const std::string encoded = resp::EncodeHash(fields);
    resp::HashFields again;
    FUZZ_CHECK(resp::DecodeHash(encoded, &again));
    FUZZ_CHECK(again == fields);
  }
  resp::HashHeader header;
  if (resp::DecodeHashHeader(in, &header)) FUZZ_CHECK(resp::EncodeHashHeader(header) == in);
  std::string_view key, field;
  uint64_t generation = 0;
  if (resp::ParseFieldRecordKey(in, &key, &generation, &field)) {
    FUZZ_CHECK(resp::FieldPrefix(key, generation) + std::string(field) == in);
  }
}

// A value decode accepts encodes canonically: its encoding decodes again to the same encoding.
template <typename T>
void CheckCanonical(std::string_view in, bool (*decode)(std::string_view, T*),
                    std::string (*encode)(const T&)) {
  T value;
  if (!decode(in, &value)) return;
  const std::string encoded = encode(value);
  T again;
  FUZZ_CHECK(decode(encoded, &again));
  FUZZ_CHECK(encode(again) == encoded);
}

void FuzzDescriptions(std::string_view in) {
  CheckCanonical<resp::TableDesc>(in, resp::DecodeTableDesc, resp::EncodeTableDesc);
  CheckCanonical<resp::RespUser>(in, resp::DecodeRespUser, resp::EncodeRespUser);
}

void FuzzRows(std::string_view in) {
  // An exact-size heap copy: ASan sees any read past it.
  const std::vector<char> copy(in.begin(), in.end());
  pg::RowFieldReader reader(std::string_view(copy.data(), copy.size()));
  std::string again(1, static_cast<char>(pg::kRowFormatVersion));
  uint64_t last_attnum = 0;
  pg::RowField field;
  while (reader.Next(&field)) {
    FUZZ_CHECK(field.bytes.data() >= copy.data());
    FUZZ_CHECK(field.bytes.data() + field.bytes.size() <= copy.data() + copy.size());
    FUZZ_CHECK(field.attnum > last_attnum);
    last_attnum = field.attnum;
    char header[pg::kMaxRowFieldHeaderSize];
    again.append(
        header, pg::EncodeRowFieldHeader(field.attnum, field.type_oid, field.bytes.size(), header));
    again.append(field.bytes);
    // The declared column type, as the row decoder would see it: by-value, fixed, varlena or
    // cstring, picked by the stored type so that every kind meets every size.
    static constexpr struct {
      int attlen;
      bool byval;
    } kKinds[] = {{1, true},  {2, true},   {4, true},   {8, true}, {16, false},
                  {6, false}, {-1, false}, {-2, false}, {3, true}, {0, false}};
    const auto& kind = kKinds[field.type_oid % (sizeof(kKinds) / sizeof(kKinds[0]))];
    if (pg::CheckStoredSize(kind.attlen, kind.byval, field.bytes.size()) == nullptr) {
      if (kind.attlen > 0) {
        FUZZ_CHECK(field.bytes.size() == static_cast<size_t>(kind.attlen));
        // What MakeDatum copies; the volatile sink keeps the reads.
        static volatile char sink;
        for (int i = 0; i < kind.attlen; ++i)
          sink = static_cast<char>(sink ^ field.bytes.data()[i]);
      } else {
        FUZZ_CHECK(kind.attlen == -1 || kind.attlen == -2);
      }
    }
  }
  if (reader.error() == nullptr) FUZZ_CHECK(again == in);
}

}  // namespace
}  // namespace eloqkv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  eloqkv::FuzzRecords(in);
  eloqkv::FuzzCatalog(in);
  eloqkv::FuzzRespValues(in);
  eloqkv::FuzzDescriptions(in);
  eloqkv::FuzzRows(in);
  return 0;
}
