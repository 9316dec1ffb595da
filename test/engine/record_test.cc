#include "engine/record.h"

#include <random>
#include <string>

#include <cstring>

#include "engine/crc32c.h"
#include "engine/eloqkv.h"
#include "gtest/gtest.h"

namespace eloqkv {
namespace {

RecordHeader Header(RecordType t, std::string_view key, std::string_view value) {
  RecordHeader h;
  h.type = t;
  h.flags = kRecordBatchEnd;
  h.key_len = static_cast<uint16_t>(key.size());
  h.value_len = static_cast<uint32_t>(value.size());
  h.keyspace = 42;
  h.segment = 7;
  h.seq = 0x0102030405060708ull;
  h.expire_at_ms = 1'900'000'000'000;
  return h;
}

TEST(Record, RoundTripsAllShapes) {
  std::mt19937_64 rng(1);
  const std::vector<std::pair<size_t, size_t>> shapes = {
      {0, 0}, {1, 0}, {0, 1}, {16, 230}, {kMaxKeySize, 4096}, {100, 1 << 20}, {8, kMaxValueSize}};
  for (auto [klen, vlen] : shapes) {
    std::string key(klen, '\0'), value(vlen, '\0');
    for (auto& c : key) c = static_cast<char>(rng());
    for (auto& c : value) c = static_cast<char>(rng());
    for (RecordType t : {RecordType::kPut, RecordType::kDelete, RecordType::kVoid}) {
      const RecordHeader h = Header(t, key, t == RecordType::kDelete ? "" : value);
      std::string buf;
      AppendRecord(h, key, t == RecordType::kDelete ? "" : value, &buf);
      ASSERT_EQ(buf.size(), h.total_size());
      RecordView rv;
      ASSERT_EQ(DecodeRecord(buf.data(), buf.size(), 7, &rv), DecodeResult::kOk);
      EXPECT_EQ(rv.header.type, t);
      EXPECT_EQ(rv.header.flags, kRecordBatchEnd);
      EXPECT_EQ(rv.header.keyspace, 42u);
      EXPECT_EQ(rv.header.segment, 7u);
      EXPECT_EQ(rv.header.seq, h.seq);
      EXPECT_EQ(rv.header.expire_at_ms, h.expire_at_ms);
      EXPECT_EQ(rv.key, key);
      EXPECT_EQ(rv.value, t == RecordType::kDelete ? "" : value);
      // A copy in another segment's file is refused.
      EXPECT_EQ(DecodeRecord(buf.data(), buf.size(), 8, &rv), DecodeResult::kBad);
      // Fewer bytes than the record: incomplete, never accepted.
      EXPECT_EQ(DecodeRecord(buf.data(), buf.size() - 1, 7, &rv), DecodeResult::kIncomplete);
    }
  }
}

TEST(Record, EverySingleBitFlipIsDetected) {
  std::mt19937_64 rng(2);
  for (auto [klen, vlen] : std::vector<std::pair<size_t, size_t>>{{0, 0}, {12, 200}, {300, 5000}}) {
    std::string key(klen, 'k'), value(vlen, '\0');
    for (auto& c : value) c = static_cast<char>(rng());
    std::string buf;
    AppendRecord(Header(RecordType::kPut, key, value), key, value, &buf);
    size_t detected = 0;
    for (size_t bit = 0; bit < buf.size() * 8; ++bit) {
      std::string bad = buf;
      bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
      RecordView rv;
      const DecodeResult d = DecodeRecord(bad.data(), bad.size(), 0, &rv);
      ASSERT_NE(d, DecodeResult::kOk) << "flip of bit " << bit << " went unnoticed";
      ++detected;
    }
    EXPECT_EQ(detected, buf.size() * 8);
  }
}

TEST(Record, ZeroesAreUnwrittenSpaceAndLimitsAreEnforced) {
  std::string zeros(100, '\0');
  RecordView rv;
  EXPECT_EQ(DecodeRecord(zeros.data(), zeros.size(), 0, &rv), DecodeResult::kZero);
  RecordHeader h;
  std::string buf;
  AppendRecord(Header(RecordType::kPut, "k", "v"), "k", "v", &buf);
  buf[6] = static_cast<char>(0xff);  // key_len 0x..ff with the high byte: over the limit
  buf[7] = static_cast<char>(0xff);
  EXPECT_EQ(DecodeRecordHeader(buf.data(), buf.size(), &h), DecodeResult::kBad);
  buf.clear();
  AppendRecord(Header(RecordType::kPut, "k", "v"), "k", "v", &buf);
  buf[4] = 9;  // unknown type
  EXPECT_EQ(DecodeRecordHeader(buf.data(), buf.size(), &h), DecodeResult::kBad);
}

TEST(Record, KeyspaceRecordsAndSegmentHeaders) {
  KeyspaceRecord r{17, kKeyspaceDropped, 123456789};
  KeyspaceRecord back;
  ASSERT_TRUE(DecodeKeyspaceRecord(EncodeKeyspaceRecord(r), &back));
  EXPECT_EQ(back.id, 17u);
  EXPECT_EQ(back.flags, kKeyspaceDropped);
  EXPECT_EQ(back.min_seq, 123456789u);
  EXPECT_FALSE(DecodeKeyspaceRecord("short", &back));
  std::string h = EncodeSegmentHeader(99);
  uint32_t id = 0;
  ASSERT_TRUE(DecodeSegmentHeader(h.data(), h.size(), &id));
  EXPECT_EQ(id, 99u);
  h[13] ^= 1;
  EXPECT_FALSE(DecodeSegmentHeader(h.data(), h.size(), &id));
  // Found by decoders_fuzz: reserved bytes that are not zero, under a checksum that matches.
  std::string forged = EncodeSegmentHeader(99);
  forged[20] = 7;
  const uint32_t crc = crc32c::Value(forged.data(), kSegmentHeaderSize - 4);
  std::memcpy(forged.data() + kSegmentHeaderSize - 4, &crc, 4);
  EXPECT_FALSE(DecodeSegmentHeader(forged.data(), forged.size(), &id));
}

}  // namespace
}  // namespace eloqkv
