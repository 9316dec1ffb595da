// Store: Redis values over one engine keyspace, read and written through optimistic
// transactions.
//
// Invariants:
//  * A stored value is [type byte][payload]; a string's payload is its bytes, a hash's is a
//    varint count followed by (varint length, bytes) field/value pairs in field order. A value
//    whose bytes do not decode is reported as corrupt, never guessed at.
//  * A Txn's writes reach the engine only in Commit(), as one atomic batch. Every key it wrote
//    after reading carries the sequence number it read, and (when reads are validated) every key
//    it only read carries a Check, so a Commit that succeeds is equivalent to running the whole
//    transaction alone at the commit instant. A conflicting commit changes nothing and returns
//    kConditionFailed; the caller re-runs the transaction.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/eloqkv.h"

namespace eloqkv::resp {

enum class ValueType : uint8_t { kNone = 0, kString = 1, kHash = 2 };
const char* ValueTypeName(ValueType t);

using HashFields = std::map<std::string, std::string, std::less<>>;

std::string EncodeValue(ValueType type, std::string_view payload);
// Splits a stored value; false when the bytes are not a value this store wrote.
bool DecodeValue(std::string_view stored, ValueType* type, std::string_view* payload);
std::string EncodeHash(const HashFields& fields);
bool DecodeHash(std::string_view payload, HashFields* out);

class Txn {
 public:
  struct Entry {
    bool exists = false;
    ValueType type = ValueType::kNone;
    std::string payload;
    int64_t expire_at_ms = 0;  // 0: none
    uint64_t read_seq = 0;     // as read (0: absent); what Commit requires it still to be
    bool loaded = false;       // read from the engine (false: only written blindly)
    bool dirty = false;
  };

  // pending_lsn: where Commit records the log position the caller must SyncTo before it
  // acknowledges; null to have Commit wait for durability itself.
  Txn(Engine* engine, uint32_t keyspace, uint64_t* pending_lsn = nullptr)
      : engine_(engine), keyspace_(keyspace), pending_lsn_(pending_lsn) {}

  // Validate keys that were only read (MULTI/EXEC); single commands need not.
  void set_validate_reads(bool on) { validate_reads_ = on; }
  // The key as this transaction sees it (its own writes first). Corrupt values are an error.
  Status Read(std::string_view key, Entry** out);
  // An entry to overwrite without reading it first (plain SET): no condition at commit.
  Entry* Blind(std::string_view key);
  void Put(Entry* e, ValueType type, std::string payload, int64_t expire_at_ms);
  void Remove(Entry* e);
  // WATCH: the key must still have this sequence number at commit.
  void Require(std::string_view key, uint64_t seq);
  // FLUSHDB inside the transaction: every key is gone, then later writes apply.
  void Truncate(std::string_view keyspace_name);
  bool truncated() const { return truncated_; }

  // kConditionFailed on a conflict; *watch_failed tells a WATCHed key from an internal read.
  Status Commit(bool* watch_failed = nullptr);
  void Clear();

 private:
  Status Validate(bool* watch_failed);

  Engine* engine_;
  uint32_t keyspace_;
  uint64_t* pending_lsn_;
  bool validate_reads_ = false;
  bool truncated_ = false;
  std::string truncate_name_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::string, uint64_t, std::less<>> required_;
};

// Reads the current state of a key outside any transaction; NotFound when absent.
Status ReadValue(Engine* engine, uint32_t keyspace, std::string_view key, ValueType* type,
                 std::string* stored, ReadInfo* info);

}  // namespace eloqkv::resp
