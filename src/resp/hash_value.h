// HashValue: a Redis hash as the hash commands see it, whichever way it is stored.
//
// Invariants:
//  * A small hash (at most kMaxInlineFields fields and kMaxInlineBytes encoded) is stored inline:
//    its key's value holds every field (store.h). A hash that outgrows that becomes a large
//    hash for the rest of its life (Redis's listpack -> hashtable conversion is one-way too):
//    its key's value is a header [0x00][varint count][fixed64 generation] and each field is a
//    record of the hash-fields keyspace keyed FieldPrefix(key, generation) + field, so writing
//    or reading one field costs one record, not the whole hash.
//  * A header's count is the number of records under its prefix. Every write of a field record
//    also rewrites the header in the same batch, and the header is written under the condition
//    that it did not change since it was read, so concurrent writers of one hash serialize on
//    their headers and field records need no condition of their own.
//  * A generation is taken from Engine::NextSequence() (or above what the same transaction
//    already took), so it is larger than every generation any earlier life of any key used.
//    Records whose generation their key's header does not name (the hash was deleted,
//    overwritten, expired, renamed) are garbage that nobody reads; HashFieldSweeper deletes them.
//  * Rows of served tables are always inline: they are rows, not hashes of their own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "resp/store.h"

namespace eloqkv::resp {

inline constexpr size_t kMaxInlineFields = 128;
inline constexpr size_t kMaxInlineBytes = 8192;

// The keyspace holding the field records of large hashes of the keyspace `keyspace_name`.
std::string HashFieldsKeyspaceName(std::string_view keyspace_name);

struct HashHeader {
  uint64_t count = 0;
  uint64_t generation = 0;
};
// Whether a hash payload is a large hash's header rather than inline fields.
inline bool IsHashHeader(std::string_view payload) {
  return !payload.empty() && payload[0] == '\0';
}
std::string EncodeHashHeader(const HashHeader& h);
bool DecodeHashHeader(std::string_view payload, HashHeader* out);
// The key prefix of a large hash's field records; prefix-free across keys and generations.
std::string FieldPrefix(std::string_view key, uint64_t generation);
// Splits a field record key into its hash key, generation and field.
bool ParseFieldRecordKey(std::string_view record_key, std::string_view* key, uint64_t* generation,
                         std::string_view* field);

class HashValue {
 public:
  HashValue() = default;
  // key's entry `e`, read by the caller as a hash (absent, or of type hash).
  HashValue(Txn* txn, std::string_view key, Txn::Entry* e) : txn_(txn), key_(key), entry_(e) {}

  // Decodes the entry; Corruption when its bytes are not a hash this store wrote.
  Status Load();
  bool exists() const { return size() != 0; }
  uint64_t size() const { return large_ ? header_.count : inline_.size(); }
  bool large() const { return large_; }

  Status Get(std::string_view field, std::string* value, bool* found);
  Status Set(std::string_view field, std::string_view value, bool* added);
  Status Delete(std::string_view field, bool* removed);
  // Fields in field order after `after` (null: from the first), at most `limit`; *more tells
  // whether any follow.
  Status List(const std::string* after, size_t limit, FieldList* out, bool* more);
  Status ListAll(FieldList* out) {
    bool more;
    return List(nullptr, SIZE_MAX, out, &more);
  }
  // Writes what changed to the transaction: the inline value or the header (converting an
  // inline hash that outgrew its limits), removing the key when no field is left.
  void Store();

  // Makes `e` (key `key`) a hash holding `fields`, stored inline or large as its size wants.
  static void Replace(Txn* txn, std::string_view key, Txn::Entry* e, const FieldList& fields,
                      int64_t expire_at_ms);

 private:
  std::string RecordKey(std::string_view field) const;
  void WriteHeader();

  Txn* txn_ = nullptr;
  std::string key_;
  Txn::Entry* entry_ = nullptr;
  bool large_ = false;
  bool changed_ = false;
  HashFields inline_;
  HashHeader header_;
};

}  // namespace eloqkv::resp
