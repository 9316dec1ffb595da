// Tracker: CLIENT TRACKING's table of which clients read which keys, kept up to date by the
// engine's change feed, so that a client caching values on its side hears when they change.
//
// Invariants:
//  * A key is remembered for a client when a read command of that client read it, and
//    forgotten once an invalidation for it is handed out (the client reads it again to be told
//    of the next change), as in Redis. A change the read already saw (it entered the feed
//    before the read began) does not invalidate it.
//  * Every change the feed reports for a remembered key yields an invalidation for each client
//    that remembered it, whoever wrote: a RESP client of any worker, an SQL transaction, a cache
//    fill or invalidation, a truncate. A remembered key whose expiry passes yields one too.
//  * A change is never missed: the worker subscribes to the feed before any read is remembered,
//    and when the feed reports lost entries every tracking client is told to drop everything.
//  * Fingerprints may collide: a collision costs a spurious invalidation, never a missed one.
#pragma once

#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/eloqkv.h"

namespace eloqkv::resp {

class Tracker {
 public:
  // At most this many keys are remembered per worker; past it others are invalidated early to
  // make room (Redis's tracking-table-max-keys).
  static constexpr size_t kDefaultMaxKeys = 1'000'000;

  explicit Tracker(Engine* engine, size_t max_keys = kDefaultMaxKeys)
      : engine_(engine), max_keys_(max_keys) {}
  ~Tracker();
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // A client of this worker turned tracking on / off.
  void AddClient();
  void RemoveClient();
  bool active() const { return clients_ > 0; }

  // `client` read `key`, stored as `engine_key` of `keyspace`, which expires at expire_at_ms
  // (0: never), in a read that began when the feed was at `since` (Engine::ChangePosition).
  void Remember(uint64_t client, std::string_view key, uint32_t keyspace,
                std::string_view engine_key, int64_t expire_at_ms, uint64_t since);

  struct Invalidation {
    uint64_t client;
    std::string key;
    uint64_t origin;  // the writer's WriteBatch origin (the RESP client id; 0: not a client)
  };
  // The invalidations due now: changed keys and expired ones. *flush_all: every tracking client
  // must drop every key (the table was emptied): changes were lost, or `flushed_keyspace` (the
  // default keyspace, which FLUSHDB empties; 0: none) was truncated, for which Redis sends
  // every tracking client a null invalidation.
  void Collect(int64_t now_ms, uint32_t flushed_keyspace, std::vector<Invalidation>* out,
               bool* flush_all);

  size_t keys() const { return key_count_; }
  size_t items() const { return item_count_; }

 private:
  struct Reader {
    uint64_t client;
    uint64_t since;  // changes at earlier feed positions were seen by its read
  };
  struct Entry {
    std::string key;
    uint32_t keyspace = 0;
    int64_t expire_at_ms = 0;
    std::vector<Reader> readers;
  };
  using Bucket = std::vector<Entry>;  // keys whose fingerprints collide

  // A change at feed position `at` (UINT64_MAX: now, whatever any read saw).
  void Invalidate(uint64_t fingerprint, uint64_t at, uint64_t origin,
                  std::vector<Invalidation>* out);
  void InvalidateKeyspace(uint32_t keyspace, uint64_t at, uint64_t origin,
                          std::vector<Invalidation>* out);
  // Hands out the entry's invalidations for a change at `at`; true when it is now unread.
  bool InvalidateEntry(Entry* e, uint64_t at, uint64_t origin, std::vector<Invalidation>* out);
  void Clear();

  Engine* engine_;
  size_t max_keys_;
  size_t clients_ = 0;
  uint64_t position_ = 0;  // in the change feed
  std::unordered_map<uint64_t, Bucket> table_;
  size_t key_count_ = 0;
  size_t item_count_ = 0;  // (key, client) pairs
  // (expire_at_ms, fingerprint), soonest first; stale pairs are skipped when popped.
  std::priority_queue<std::pair<int64_t, uint64_t>, std::vector<std::pair<int64_t, uint64_t>>,
                      std::greater<>>
      expiries_;
  std::vector<Invalidation> evicted_;  // over kMaxKeys, handed out at the next Collect
  std::vector<KeyChange> changes_;
};

}  // namespace eloqkv::resp
