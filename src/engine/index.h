// Index: the ordered map (keyspace, key) -> entry that lives in shared memory.
//
// Invariants:
//  * The region holds only offsets, never pointers: every process may map it at its own address.
//  * Mutations (Insert/Update/Remove, allocation) are made by one writer at a time; the caller
//    serialises them (the engine's write mutex). Readers take no lock: they read node and entry
//    versions (seqlocks), read optimistically and restart when a version moved.
//  * Memory is type-stable: a page that once held nodes holds only nodes, a page carved into
//    entry blocks of one size class keeps that class, and versions only grow. So an optimistic
//    reader that follows a stale reference reads a well-formed object of the right kind, and
//    version validation tells it to restart.
//  * Every reachable leaf slot points to a live entry whose key equals the slot's key; inner
//    separators are private copies, so deleting a key never invalidates a separator.
//  * Every key a node holds starts with the node's common prefix (up to 40 bytes, possibly
//    none), and the node's slots compare their keys from there on.
//  * Out of memory is reported before anything is changed (ReserveFor), never halfway through;
//    Insert itself checks all it will allocate before changing anything.
//  * Point lookups go through a hash table of the same entries (point_hash.h), kept in step by
//    the writer; scans and inserts walk the tree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/shm_sync.h"
#include "engine/status.h"

namespace eloqkv {

// Where a record lives and what the index knows about it.
struct EntryFields {
  uint32_t segment = 0;
  uint32_t offset = 0;
  uint32_t length = 0;  // whole record: header + key + value
  uint64_t seq = 0;
  int64_t expire_at_ms = 0;
  bool tombstone = false;  // a delete not yet known durable
};

// A consistent copy of an entry, taken by a reader.
struct EntrySnapshot {
  uint32_t ref = 0;
  uint32_t keyspace = 0;
  EntryFields fields;
  uint64_t cache_pos = 0;  // value cache position + 1, 0 when not cached

  // Log position just past the record: the write is visible once the log is durable (or written)
  // up to here.
  uint64_t end_lsn() const {
    return (uint64_t{fields.segment} << 32) | (uint64_t{fields.offset} + fields.length);
  }
};

struct ScanItem {
  std::string key;
  EntrySnapshot entry;
};

class Index {
 public:
  static constexpr size_t kPageSize = 4096;

  static size_t RequiredBytes(size_t index_memory);
  // The bytes an entry of a key this long takes: its block, and its references in a leaf and
  // in the point table.
  static size_t EntryBytes(size_t key_len);
  // Lays out an empty index in region[0, bytes).
  static void Format(void* region, size_t bytes);
  Index() = default;
  explicit Index(void* region) { Attach(region); }
  void Attach(void* region);

  // ---- Readers (lock-free, any process) ----
  bool Lookup(uint32_t keyspace, std::string_view key, EntrySnapshot* out) const;
  // Appends to `out` the entries of one leaf at or after (keyspace, from) (strictly after when
  // !inclusive) in key order; stops at the end of the keyspace unless all_keyspaces. Returns
  // false at the end of the index (or keyspace). *resume receives the key to continue from
  // (inclusive) and *resume_keyspace its keyspace.
  bool ScanLeaf(uint32_t keyspace, std::string_view from, bool inclusive, bool all_keyspaces,
                std::vector<ScanItem>* out, uint32_t* resume_keyspace, std::string* resume) const;
  // Reads the fields of a known entry if it still holds (keyspace, key) at sequence seq.
  bool ReadEntry(uint32_t ref, EntrySnapshot* out) const;
  // Compare-and-swap of an entry's cache position (value cache publication; any process).
  bool CasCachePos(uint32_t ref, uint64_t expected, uint64_t desired);
  uint64_t LoadCachePos(uint32_t ref) const;
  uint64_t LoadEntrySeq(uint32_t ref) const;

  // ---- Prefetching: hints that let a batch of point lookups overlap their cache misses ----
  // In three passes over the batch: PrefetchBucket for every key, then PrefetchEntry (the
  // bucket is cached by then), then LoadCachePos of the refs it returned. Nothing is validated:
  // the lookups that follow are.
  uint64_t PointHashOf(uint32_t keyspace, std::string_view key) const;
  void PrefetchBucket(uint64_t point_hash) const;
  // The entry the key's home bucket names, prefetched; 0 when the bucket names none.
  uint32_t PrefetchEntry(uint64_t point_hash) const;
  // A known entry (e.g. a value cache item's), prefetched.
  void PrefetchEntryRef(uint32_t ref) const;

  // ---- Writer (caller serialises) ----
  // Fails with IndexFull unless `new_keys` keys of up to `max_key_size` bytes can be inserted
  // (fast). Its split estimate is the worst case for one key, and for more only when they
  // arrive in key order (a load); keys anywhere need ReserveForKeys.
  Status ReserveFor(size_t new_keys, size_t max_key_size) const;
  // The same for these exact keys (write path): first a bound that assumes every key splits
  // its leaf and every level above, enough while the index has room; near full, the nodes the
  // keys would land in are looked at.
  struct NewKey {
    uint32_t keyspace;
    std::string_view key;
  };
  Status ReserveForKeys(const std::vector<NewKey>& keys) const;
  // Finds the entry of (keyspace, key); 0 when absent.
  uint32_t Find(uint32_t keyspace, std::string_view key, EntryFields* fields) const;
  // Inserts a new key (which must be absent). Returns its entry ref, or 0 with the index
  // unchanged if memory ran out (which ReserveFor rules out).
  uint32_t Insert(uint32_t keyspace, std::string_view key, const EntryFields& fields);
  void Update(uint32_t ref, const EntryFields& fields);
  // Moves an entry's record (compaction) keeping its sequence number and cached value.
  void Relocate(uint32_t ref, uint32_t segment, uint32_t offset);
  // Removes the key whose entry is `ref` and frees the entry.
  void Remove(uint32_t keyspace, std::string_view key, uint32_t ref);
  // Refills the point hash from the tree (Insert does when erased buckets crowd it).
  void RebuildPointHash();

  // ---- Introspection ----
  uint64_t entry_count() const;
  uint64_t used_bytes() const;
  uint64_t capacity_bytes() const;  // the whole region: tree pages and the point hash
  uint64_t unused_pages() const;    // never carved yet (free lists aside)
  uint64_t point_hash_bytes() const;
  uint64_t point_hash_rebuilds() const;
  uint64_t point_hash_filled() const;  // buckets not empty (live or erased)
  uint32_t height() const;
  // Walks the whole tree and checks ordering and structure (tests; caller excludes writers).
  Status CheckInvariants() const;

  struct Header;
  struct Node;
  struct Entry;

 private:
  Header* header() const { return reinterpret_cast<Header*>(base_); }
  uint32_t InsertInTree(uint32_t keyspace, std::string_view key, const EntryFields& fields);
  char* base_ = nullptr;
};

}  // namespace eloqkv
