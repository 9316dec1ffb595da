// Keyspaces: the catalog of named keyspaces, with their truncation horizon and counters.
//
// Invariants:
//  * Keyspace ids are never reused, so a stale index entry can never surface in a new keyspace.
//  * A record of keyspace k is visible only while k is live and its seq >= k's min_seq; so
//    TRUNCATE and DROP take effect at once and leftover entries are swept later.
//  * The table is an open-addressing hash on id in shared memory; only the holder of the engine's
//    write mutex changes it, readers use atomics.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/eloqkv.h"
#include "engine/record.h"
#include "engine/stats.h"

namespace eloqkv {

enum class KeyspaceState : uint32_t { kEmpty = 0, kLive = 1, kDropped = 2, kDeleted = 3 };

struct KeyspaceSlot {
  std::atomic<uint32_t> state;
  std::atomic<uint32_t> id;
  std::atomic<uint64_t> min_seq;
  char name[kMaxKeyspaceNameSize + 1];
  KeyspaceCounters counters;
};

// The invariant above: whether a record with sequence number `seq`, found in keyspace `ks`
// (null: dropped or unknown), can be visible. Expiry and tombstones are the caller's part.
inline bool VisibleInKeyspace(const KeyspaceSlot* ks, uint64_t seq) {
  return ks != nullptr && seq >= ks->min_seq.load(std::memory_order_acquire);
}

class KeyspaceTable {
 public:
  static size_t RequiredBytes(uint32_t max_keyspaces);
  static void Format(void* region, uint32_t max_keyspaces);
  void Attach(void* region) { h_ = static_cast<Header*>(region); }

  // Readers.
  KeyspaceSlot* Find(uint32_t id) const;  // live keyspaces only
  bool FindByName(std::string_view name, uint32_t* id) const;
  std::vector<uint32_t> LiveIds() const;
  uint32_t next_id() const { return h_->next_id.load(std::memory_order_acquire); }

  // Writer (engine write mutex held). Apply is also the replay path.
  Status CheckNewName(std::string_view name) const;
  uint32_t AllocateId() { return h_->next_id.fetch_add(1); }
  // Makes the table reflect a catalog record; creates the slot if needed.
  Status Apply(std::string_view name, const KeyspaceRecord& r);
  // Frees the slot of a dropped keyspace once no entry of it is left.
  void Forget(uint32_t id);
  void RaiseNextId(uint32_t at_least);
  // Every known keyspace (live and dropped), for checkpoints.
  struct Snapshot {
    std::string name;
    KeyspaceRecord record;
  };
  std::vector<Snapshot> SnapshotAll() const;
  uint32_t capacity() const { return h_->capacity; }

 private:
  struct Header {
    uint32_t capacity;
    std::atomic<uint32_t> next_id;
  };
  KeyspaceSlot* slots() const { return reinterpret_cast<KeyspaceSlot*>(h_ + 1); }
  KeyspaceSlot* Probe(uint32_t id, bool for_insert) const;
  Header* h_ = nullptr;
};

}  // namespace eloqkv
