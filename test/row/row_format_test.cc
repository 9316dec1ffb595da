// The row framing (src/pg/row_format.h): what EncodeRow writes reads back field by field, and
// every malformed value is refused with the reason DecodeRow reports as "stored row ... is
// malformed: <reason>".
#include "pg/row_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace eloqkv::pg {
namespace {

struct Field {
  uint64_t attnum;
  uint32_t type;
  std::string bytes;
};

std::string Encode(const std::vector<Field>& fields) {
  std::string out(1, static_cast<char>(kRowFormatVersion));
  for (const Field& f : fields) {
    char header[kMaxRowFieldHeaderSize];
    out.append(header, EncodeRowFieldHeader(f.attnum, f.type, f.bytes.size(), header));
    out += f.bytes;
  }
  return out;
}

// All fields of `value`, and the reader's error (empty when none).
std::pair<std::vector<Field>, std::string> Read(const std::string& value) {
  RowFieldReader reader(value);
  std::vector<Field> fields;
  RowField f;
  while (reader.Next(&f)) fields.push_back({f.attnum, f.type_oid, std::string(f.bytes)});
  EXPECT_FALSE(reader.Next(&f)) << "a reader that stopped stays stopped";
  return {fields, reader.error() == nullptr ? "" : reader.error()};
}

TEST(RowFormat, FieldsRoundTrip) {
  const std::vector<Field> fields = {{2, 23, std::string("\x2a\0\0\0", 4)},
                                     {3, 25, "hello"},
                                     {4, 25, ""},
                                     {300, 16, "\x01"},
                                     {UINT64_MAX, UINT32_MAX, std::string(200, 'x')}};
  const std::string value = Encode(fields);
  auto [read, error] = Read(value);
  EXPECT_EQ(error, "");
  ASSERT_EQ(read.size(), fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    EXPECT_EQ(read[i].attnum, fields[i].attnum);
    EXPECT_EQ(read[i].type, fields[i].type);
    EXPECT_EQ(read[i].bytes, fields[i].bytes);
  }
}

TEST(RowFormat, RowWithNoFieldsIsAllNull) {
  auto [read, error] = Read(Encode({}));
  EXPECT_EQ(error, "");
  EXPECT_TRUE(read.empty());
}

TEST(RowFormat, HeaderIsLittleEndianWithVarints) {
  char header[kMaxRowFieldHeaderSize];
  const size_t n = EncodeRowFieldHeader(300, 0x01020304, 5, header);
  EXPECT_EQ(std::string(header, n), std::string("\xac\x02\x04\x03\x02\x01\x05", 7));
  EXPECT_EQ(EncodeRowFieldHeader(UINT64_MAX, 0, UINT64_MAX, header), kMaxRowFieldHeaderSize);
}

TEST(RowFormat, RefusesEmptyAndUnknownVersions) {
  EXPECT_EQ(Read("").second, "empty value");
  EXPECT_EQ(Read("\x02").second, "unknown row format version");
  // The byte a cache's negative entry is (src/resp/tables.h) is no row.
  EXPECT_EQ(Read(std::string(1, '\0')).second, "unknown row format version");
}

TEST(RowFormat, EveryTruncationIsRefused) {
  const std::string value = Encode({{2, 23, "abcd"}, {5, 25, "some text"}});
  // Cutting anywhere inside a field is an error; cutting between fields is a shorter row.
  const size_t boundary = 1 + 6 + 4;
  for (size_t cut = 1; cut < value.size(); ++cut) {
    auto [read, error] = Read(value.substr(0, cut));
    if (cut == 1 || cut == boundary) {
      EXPECT_EQ(error, "") << "cut at " << cut;
      EXPECT_EQ(read.size(), cut == 1 ? 0u : 1u);
    } else {
      EXPECT_TRUE(error == "truncated column header" || error == "truncated value")
          << "cut at " << cut << ": " << error;
    }
  }
}

TEST(RowFormat, RefusesLengthsPastTheEnd) {
  std::string value = Encode({{2, 25, "abc"}});
  value[1 + 1 + 4] = 4;  // the length of the only field, one more than there is
  EXPECT_EQ(Read(value).second, "truncated value");
  // A length near 2^64 must not wrap around.
  std::string huge(1, static_cast<char>(kRowFormatVersion));
  char header[kMaxRowFieldHeaderSize];
  huge.append(header, EncodeRowFieldHeader(2, 25, UINT64_MAX, header));
  huge += "abc";
  EXPECT_EQ(Read(huge).second, "truncated value");
}

TEST(RowFormat, RefusesOverlongVarints) {
  // attnum 2 written in two bytes: not what the encoder writes.
  const std::string value = std::string("\x01\x82\x00", 3) + std::string("\x19\0\0\0", 4) + "\x01x";
  EXPECT_EQ(Read(value).second, "truncated column header");
}

TEST(RowFormat, RefusesColumnsOutOfOrderOrTwiceOrZero) {
  EXPECT_EQ(Read(Encode({{3, 25, "a"}, {2, 25, "b"}})).second, "columns out of order");
  EXPECT_EQ(Read(Encode({{3, 25, "a"}, {3, 25, "b"}})).second, "columns out of order");
  EXPECT_EQ(Read(Encode({{0, 25, "a"}})).second, "columns out of order");
  // Fields before the bad one were read.
  EXPECT_EQ(Read(Encode({{3, 25, "a"}, {2, 25, "b"}})).first.size(), 1u);
}

TEST(RowFormat, StoredSizeMustFitTheColumnType) {
  EXPECT_EQ(CheckStoredSize(4, true, 4), nullptr);
  EXPECT_EQ(CheckStoredSize(8, true, 8), nullptr);
  EXPECT_STREQ(CheckStoredSize(4, true, 8), "wrong length for a by-value type");
  EXPECT_STREQ(CheckStoredSize(4, true, 0), "wrong length for a by-value type");
  EXPECT_STREQ(CheckStoredSize(3, true, 3), "unsupported by-value length");
  EXPECT_EQ(CheckStoredSize(16, false, 16), nullptr);  // uuid
  EXPECT_STREQ(CheckStoredSize(16, false, 15), "wrong length for a fixed-length type");
  EXPECT_EQ(CheckStoredSize(-1, false, 0), nullptr);
  EXPECT_EQ(CheckStoredSize(-1, false, (size_t{1} << 30) - 5), nullptr);
  EXPECT_STREQ(CheckStoredSize(-1, false, (size_t{1} << 30) - 4), "value too long for its type");
  EXPECT_EQ(CheckStoredSize(-2, false, 7), nullptr);
  EXPECT_STREQ(CheckStoredSize(0, false, 0), "unsupported type length");
  EXPECT_STREQ(CheckStoredSize(-3, false, 0), "unsupported type length");
}

}  // namespace
}  // namespace eloqkv::pg
