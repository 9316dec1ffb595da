// Store: Redis values over one engine keyspace, read and written through optimistic
// transactions.
//
// Invariants:
//  * A stored value is [type byte][payload]; a string's payload is its bytes, a hash's is a
//    varint count followed by (varint length, bytes) field/value pairs in field order. A value
//    whose bytes do not decode is reported as corrupt, never guessed at.
//  * Keys a table prefix matches are rows of that table (tables.h): the Txn reads them into
//    their columns' text form and shows them as a hash, or as a string when the table has one
//    value column; Commit turns them back into rows through the RowCodec, so a value that does
//    not convert fails the Commit and nothing is written.
//  * Large hashes keep their fields as records of a second keyspace (hash_value.h); the Txn
//    reads and writes those records alongside the keys, in the same batch.
//  * A Txn's writes reach the engine only in Commit(), as one atomic batch. Every key it wrote
//    after reading carries the sequence number it read, and (when reads are validated) every key
//    it only read carries a Check, so a Commit that succeeds is equivalent to running the whole
//    transaction alone at the commit instant. A conflicting commit changes nothing and returns
//    kConditionFailed; the caller re-runs the transaction.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/eloqkv.h"
#include "resp/store_types.h"
#include "resp/tables.h"
#include "resp/users.h"

namespace eloqkv::resp {

std::string EncodeValue(ValueType type, std::string_view payload);
// The same into *out (replacing its contents), reusing its buffer.
void EncodeValueTo(ValueType type, std::string_view payload, std::string* out);
// Splits a stored value; false when the bytes are not a value this store wrote.
bool DecodeValue(std::string_view stored, ValueType* type, std::string_view* payload);
std::string EncodeHash(const HashFields& fields);
bool DecodeHash(std::string_view payload, HashFields* out);

// Where the large hashes of a keyspace keep their field records: a keyspace made on first use.
struct FieldSpace {
  std::string name;
  uint32_t id = 0;  // 0: not resolved yet
  // NotFound when the keyspace does not exist and `create` is false.
  Status Resolve(Engine* engine, bool create, uint32_t* out);
};

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
    uint64_t writer = 0;  // the origin of its writes (set_origin); 0 when several wrote it
    // Rows of a served table: `fields` (column -> text) is the row as this transaction sees
    // it; type/payload/exists are its view as a hash or a string (ShowAs).
    std::shared_ptr<const TableDesc> table;
    std::string engine_key;
    HashFields fields;
    bool row_exists = false;
    std::string put_error;  // a write the table cannot take; Commit fails with it
  };

  // pending_lsn: where Commit records the log position the caller must SyncTo before it
  // acknowledges; null to have Commit wait for durability itself.
  Txn(Engine* engine, uint32_t keyspace, uint64_t* pending_lsn = nullptr,
      TableRouter* router = nullptr, FieldSpace* field_space = nullptr)
      : engine_(engine),
        keyspace_(keyspace),
        pending_lsn_(pending_lsn),
        router_(router),
        field_space_(field_space) {}

  // The mapped user whose privileges every access is checked against (null: unrestricted).
  void set_user(const RespUser* user) { user_ = user; }
  // Who writes (the RESP client id), for the engine's change feed (CLIENT TRACKING NOLOOP).
  // A transaction shared by several clients' commands (txn_coalescer.h) sets it before each:
  // a key's write is reported as its writer's, or as nobody's (0) when several wrote it.
  void set_origin(uint64_t origin) { origin_ = origin; }
  // Where a key this transaction read is stored, and when it expires (0: never, or absent).
  // False when the transaction did not read it from the engine.
  bool Observed(std::string_view key, uint32_t* keyspace, std::string_view* engine_key,
                int64_t* expire_at_ms) const;
  // Validate keys that were only read (MULTI/EXEC); single commands need not.
  void set_validate_reads(bool on) { validate_reads_ = on; }
  // The key as this transaction sees it (its own writes first). Corrupt values are an error.
  Status Read(std::string_view key, Entry** out);
  // An entry to overwrite without reading it first (plain SET): no condition at commit. A table
  // row is read anyway (its other columns survive the write).
  Status Blind(std::string_view key, Entry** out);
  // Shows a table row as `want` (kNone: its natural type, a hash). False when it cannot be one
  // (a string, of a table with several value columns). Other entries: whether their type fits.
  bool ShowAs(Entry* e, ValueType want);
  void Put(Entry* e, ValueType type, std::string payload, int64_t expire_at_ms);
  void Remove(Entry* e);
  // Where a key is stored: its keyspace and engine key.
  Status Locate(std::string_view key, uint32_t* keyspace, std::string* engine_key);
  // WATCH: the key must still have this sequence number at commit; with seq 0 and
  // absent_since, it must be absent and untouched by every write numbered absent_since or later.
  Status Require(std::string_view key, uint64_t seq, uint64_t absent_since = 0);
  // FLUSHDB inside the transaction: every key is gone, then later writes apply.
  void Truncate(std::string_view keyspace_name);
  bool truncated() const { return truncated_; }
  // Field records of large hashes (hash_value.h). Reads see this transaction's writes first.
  // The caller writes the hash's header in the same transaction (its condition covers them).
  Status ReadField(std::string_view record_key, std::string* value, bool* found);
  void WriteField(std::string_view record_key, std::string_view value);
  void DeleteField(std::string_view record_key);
  // Up to `limit` records under `prefix` after prefix + *after (null: from the first), in key
  // order, as (field, value) with the prefix removed; *more tells whether any follow.
  Status ScanFields(std::string_view prefix, const std::string* after, size_t limit,
                    FieldList* out, bool* more);
  // A generation for a new large hash (hash_value.h).
  uint64_t NewGeneration();

  // How many writes (of keys, field records, FLUSHDB) were made since Clear: a caller sees
  // whether a command wrote anything.
  uint64_t writes() const { return writes_; }
  // About how many value bytes the transaction holds (read and written, counted as they come).
  size_t held_bytes() const { return held_bytes_; }

  // How many reads the transaction made that must agree with each other: keys read from the
  // engine, plus a large hash's field reads when there are several (a single field read after
  // its header is consistent with it on its own).
  size_t read_count() const {
    size_t n = 0;
    for (const auto& [key, e] : entries_) n += e.loaded ? 1 : 0;
    return n + (field_reads_ > 1 ? field_reads_ : 0);
  }

  // Keys of caches this transaction read that need their source run: missing (never filled, or
  // expired past stale_ttl) ones, which the reader should wait for, and stale ones (served,
  // refreshed behind the reader's back).
  struct CacheKey {
    std::shared_ptr<const TableDesc> table;
    std::string engine_key;
    int64_t fresh_until_ms = 0;  // cache_fresh: when the row read stops being fresh
  };
  const std::vector<CacheKey>& cache_misses() const { return cache_misses_; }
  const std::vector<CacheKey>& cache_refreshes() const { return cache_refreshes_; }
  // Fresh rows read that will expire (candidates for an early refresh).
  const std::vector<CacheKey>& cache_fresh() const { return cache_fresh_; }

  // Inside EXEC a command that replies an error must leave none of its writes (commands.h),
  // while the commands around it keep theirs: Savepoint marks the state before a command,
  // RollbackToSavepoint undoes every write made since (reads stay), ReleaseSavepoint keeps
  // them. One at a time; each write since costs a copy of the entry it changes.
  void Savepoint();
  void RollbackToSavepoint();
  void ReleaseSavepoint();
  // Whether the table rows written since the savepoint may be written and convert to rows
  // (Commit would refuse the first that does not), so that inside EXEC such a command fails
  // alone. Privileges are left to Commit: as a command Redis's ACLs refuse aborts its EXEC,
  // one that writes a row its role may not fails the whole EXEC.
  Status CheckRowsSinceSavepoint();

  // kConditionFailed on a conflict; *watch_failed tells a WATCHed key from an internal read.
  Status Commit(bool* watch_failed = nullptr);
  void Clear();

 private:
  struct Required {
    uint32_t keyspace;
    std::string engine_key;
    uint64_t seq;
    uint64_t absent_since;  // with seq 0 (WriteBatch::CheckAbsentSince); 0: absent, no more
  };
  struct FieldEntry {
    bool exists = false;
    bool dirty = false;
    std::string value;
  };
  // What a savepoint needs to undo the writes made after it: each entry and field record as it
  // was before its first write since, and the FLUSHDB state.
  struct Saved {
    bool active = false;
    std::unordered_map<const Entry*, Entry> entries;
    std::map<std::string, std::optional<FieldEntry>, std::less<>> fields;
    std::optional<std::map<std::string, FieldEntry, std::less<>>> all_fields;  // FLUSHDB since
    bool truncated = false;
    std::string truncate_name;
    uint64_t writes = 0;
  };
  void Preserve(const Entry* e);
  void PreserveField(std::string_view record_key);
  Status Validate(bool* watch_failed);
  void NoteWrite(Entry* e, size_t bytes);
  Status AddFieldWrites(WriteBatch* batch, size_t* ops);
  Status LoadRow(Entry* e);
  Status RowValue(const Entry& e, std::string* row, int64_t* expire_at_ms);
  // Caches and mirrors are written by their fills and write-throughs only.
  static Status CheckTableWritable(const Entry& e);
  uint32_t KeyspaceOf(const Entry& e) const { return e.table ? e.table->keyspace_id : keyspace_; }
  // Reads may see written-but-unsynced values when the caller syncs before replying (it does
  // when it gave a pending_lsn): the reply then waits for what the read depended on too.
  ReadInfo ReadOptions() const {
    ReadInfo info;
    info.unsynced_ok = pending_lsn_ != nullptr;
    return info;
  }
  void DependOn(const ReadInfo& info) {
    if (pending_lsn_ != nullptr && info.depends_on_lsn > *pending_lsn_)
      *pending_lsn_ = info.depends_on_lsn;
  }

  Engine* engine_;
  uint32_t keyspace_;
  uint64_t* pending_lsn_;
  TableRouter* router_;
  const RespUser* user_ = nullptr;
  bool validate_reads_ = false;
  uint64_t origin_ = 0;
  bool truncated_ = false;
  std::string truncate_name_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::string, Required, std::less<>> required_;
  FieldSpace* field_space_;
  std::map<std::string, FieldEntry, std::less<>> fields_;  // record key -> as this txn sees it
  size_t field_reads_ = 0;
  uint64_t writes_ = 0;
  size_t held_bytes_ = 0;
  uint64_t last_generation_ = 0;
  std::vector<CacheKey> cache_misses_;
  std::vector<CacheKey> cache_refreshes_;
  std::vector<CacheKey> cache_fresh_;
  Saved saved_;
};

// Whether `user` (null: unrestricted) may read the key `target` resolved to: SELECT on a table
// of its database, or plain_keys for the default keyspace.
Status CheckRead(const RespUser* user, const KeyTarget& target);
inline constexpr const char* kNoPermissionKeys =
    "this user has no permissions to access one of the keys used as arguments";

// Reads the current state of a key outside any transaction; NotFound when absent.
Status ReadValue(Engine* engine, uint32_t keyspace, std::string_view key, ValueType* type,
                 std::string* stored, ReadInfo* info);

}  // namespace eloqkv::resp
