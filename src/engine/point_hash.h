// PointHash: (keyspace, key) -> index entry, an open-addressing table beside the index's tree.
//
// A point lookup in the tree crosses several 4 KB nodes in shared memory, each binary search a
// handful of cache misses; through this table it is one bucket and the entry itself.
//
// Invariants:
//  * The tree is the truth; the table holds exactly the refs of the tree's leaf slots. The index
//    changes both under its single writer, so a writer may use the table without a lock.
//  * A bucket is one 64-bit word, written whole: 0 (empty), kErased, or tag << 32 | ref. No
//    bucket between a key's home and the key is ever empty (an erased bucket is emptied only
//    when the one after it is empty, or by a rebuild), so a lock-free reader that meets an
//    empty bucket may say "absent".
//  * A rebuild (clearing the table and refilling it from the tree, when erased buckets crowd it)
//    runs inside the table's write bracket; readers that see the bracket odd or moved use the
//    tree instead.
//  * The bucket count leaves the table at most three quarters full even when the index memory
//    holds as many keys as it can (Index sizes it), so an insert always finds a bucket.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "engine/shm_sync.h"

namespace eloqkv {

class PointHash {
 public:
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kErased = 1;  // ref 1 lies in the index header: never an entry

  struct Header {
    VersionLock rebuild;  // odd while the table is being rebuilt
    uint64_t buckets;
    uint64_t filled;  // buckets not empty: live and erased
    uint64_t seed;    // random per table: clients cannot pick keys that share a bucket run
  };

  enum class Match { kNo, kYes, kChanged };

  uint64_t HashOf(uint32_t keyspace, std::string_view key) const;

  PointHash(Header* header, std::atomic<uint64_t>* buckets) : h_(header), b_(buckets) {}

  static void Format(Header* header, std::atomic<uint64_t>* buckets, uint64_t count,
                     uint64_t seed) {
    header->buckets = count;
    header->filled = 0;
    header->seed = seed;
    std::memset(static_cast<void*>(buckets), 0, count * sizeof(uint64_t));
  }

  // Visits the refs whose tag matches `hash` in probe order until `match` says kYes (returns that
  // ref) or an empty bucket ends the chain (returns 0). kChanged (the entry moved while it was
  // read) visits the same bucket again.
  template <typename MatchFn>
  uint32_t Probe(uint64_t hash, MatchFn&& match) const {
    const uint64_t n = h_->buckets;
    uint64_t i = Home(hash, n);
    for (uint64_t probes = 0; probes < n;) {
      const uint64_t w = b_[i].load(std::memory_order_acquire);
      if (w == kEmpty) return 0;
      if (Names(w, hash)) {
        const Match r = match(static_cast<uint32_t>(w));
        if (r == Match::kYes) return static_cast<uint32_t>(w);
        if (r == Match::kChanged) continue;
      }
      ++probes;
      if (++i == n) i = 0;
    }
    return 0;
  }

  // Hints for a batch of lookups (nothing is validated): the cache line of the key's home
  // bucket; once that is cached, the ref it holds if the tag matches (0: none).
  void PrefetchHome(uint64_t hash) const { __builtin_prefetch(&b_[Home(hash, h_->buckets)]); }
  uint32_t PeekHome(uint64_t hash) const {
    const uint64_t w = b_[Home(hash, h_->buckets)].load(std::memory_order_relaxed);
    return Names(w, hash) ? static_cast<uint32_t>(w) : 0;
  }

  // ---- Writer (the index's) ----
  // Adds a ref whose key is not in the table. False when the table is too crowded with erased
  // buckets: the caller rebuilds it and adds again.
  bool Insert(uint64_t hash, uint32_t ref);
  // Removes the bucket holding `ref` (no-op when absent). The bucket, and erased ones before
  // it, become empty when the bucket after them is: no key's probe run crosses them then.
  void Erase(uint64_t hash, uint32_t ref);
  // Rebuild: BeginRebuild empties the table; Add each key again (no crowding check); EndRebuild.
  void BeginRebuild();
  void Add(uint64_t hash, uint32_t ref) { Place(hash, ref); }
  void EndRebuild() { h_->rebuild.EndWrite(); }

  // Live refs, by walking the table (tests; caller excludes the writer).
  uint64_t CountLive() const;

 private:
  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash); }
  // Whether a bucket word holds an entry whose key may have this hash (its tag matches).
  static bool Names(uint64_t word, uint64_t hash) {
    return word != kEmpty && word != kErased && static_cast<uint32_t>(word >> 32) == Tag(hash);
  }
  // The high bits choose the bucket (a multiply, not a modulo: any bucket count works).
  static uint64_t Home(uint64_t hash, uint64_t n) {
    __extension__ using Wide = unsigned __int128;
    return static_cast<uint64_t>((static_cast<Wide>(hash) * n) >> 64);
  }
  void Place(uint64_t hash, uint32_t ref);

  Header* h_;
  std::atomic<uint64_t>* b_;
};

}  // namespace eloqkv
