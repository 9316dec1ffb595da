// ValueCache: hot values in a shared-memory ring, evicted by CLOCK (second chance).
//
// Invariants:
//  * Items are appended at `head` and evicted at `tail`, both monotonically increasing byte
//    positions into a ring of `capacity` bytes; an item never wraps.
//  * Before any byte is overwritten, `tail` has moved past every item that byte belonged to. A
//    reader copies an item and then checks that its position is still >= tail: if so, the copy
//    is exactly what was written. Readers take no lock.
//  * An item names the index entry and the sequence number of the record it copies; a reader
//    accepts it only if both match the entry it looked up, so a stale item is a miss, never a
//    wrong value.
//  * Writers (inserts, evictions) serialise on one mutex. An item that reaches the tail while its
//    entry still points at it (live) is copied to the head (second chance) when its referenced
//    bit is set, or when most bytes lately reaching the tail were dead; else it is evicted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/shm_sync.h"

namespace eloqkv {

class Index;

class ValueCache {
 public:
  static size_t RequiredBytes(size_t cache_memory);
  static void Format(void* region, size_t bytes);
  ValueCache() = default;
  void Attach(void* region, Index* index);

  // Largest value the cache admits (bigger values are always read from the device).
  size_t max_value_size() const;
  // Copies the value cached at `pos` (entry.cache_pos, 1-based) into *out when it is the record
  // (ref, seq); marks it referenced.
  bool Get(uint64_t pos, uint32_t ref, uint64_t seq, std::string* out);
  // Whether the value cached at `pos` is the record (ref, seq), without copying it.
  bool Contains(uint64_t pos, uint32_t ref, uint64_t seq) const;
  // Starts loading the item at `pos` into the CPU cache (it is about to be read).
  void Prefetch(uint64_t pos) const;
  // Caches a value for entry `ref` at sequence `seq` and points the entry at it, unless the entry
  // moved on (its cache position is no longer `observed_pos`).
  void Insert(uint32_t ref, uint64_t seq, uint64_t observed_pos, std::string_view value);

  uint64_t used_bytes() const;
  uint64_t capacity() const;
  uint64_t evictions() const;

  struct Header;

 private:
  bool MakeRoom(uint64_t need, int* second_chances);
  uint64_t SpanAt(uint64_t pos) const;
  void PrefetchEntriesAhead(uint64_t tail, uint64_t head);
  char* ring() const;
  Header* h_ = nullptr;
  Index* index_ = nullptr;
};

}  // namespace eloqkv
