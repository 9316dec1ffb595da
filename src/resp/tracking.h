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
//  * Waiters (RESP reads of cache keys waiting for a fill) are woken by the first change of any
//    key they wait for, or by lost changes; the feed is read while any client tracks or waits.
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
  // Whether the change feed is read (some client tracks keys or waits for a fill).
  bool active() const { return clients_ + waiting_clients_ > 0; }

  // `client` waits for a change of `engine_key` of `keyspace` (a cache fill). Returns true when
  // this subscribed to the change feed just now: a change made between the client's read and
  // now was not recorded, so the caller must read once more before waiting.
  bool AddWaiter(uint64_t client, uint32_t keyspace, std::string_view engine_key);
  // The client no longer waits (woken, timed out or gone).
  void RemoveWaiter(uint64_t client);

  // `client` read `key`, stored as `engine_key` of `keyspace`, which expires at expire_at_ms
  // (0: never), in a read that began when the feed was at `since` (Engine::ChangePosition).
  void Remember(uint64_t client, std::string_view key, uint32_t keyspace,
                std::string_view engine_key, int64_t expire_at_ms, uint64_t since);

  struct Invalidation {
    uint64_t client;
    std::string key;
    uint64_t origin;  // the writer's WriteBatch origin (the RESP client id; 0: not a client)
  };
  struct Collected {
    std::vector<Invalidation> invalidations;
    // Every tracking client must drop every key (the table was emptied): changes were lost, or
    // the default keyspace was truncated (FLUSHDB), for which Redis sends a null invalidation.
    bool flush_all = false;
    std::vector<uint64_t> woken;  // waiters whose key changed (no longer waiting)
  };
  // What is due now: changed and expired keys, woken waiters. `flushed_keyspace`: the default
  // keyspace (0: none yet).
  void Collect(int64_t now_ms, uint32_t flushed_keyspace, Collected* out);

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
  void Retain();
  void Release();
  void WakeAll(std::vector<uint64_t>* woken);
  void Wake(const KeyChange& change, std::vector<uint64_t>* woken);

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
  std::vector<Invalidation> evicted_;  // over max_keys_, handed out at the next Collect
  std::vector<KeyChange> changes_;
  // Waiters: fingerprint -> (client, keyspace); client -> its fingerprints.
  std::unordered_map<uint64_t, std::vector<std::pair<uint64_t, uint32_t>>> waiters_;
  std::unordered_map<uint64_t, std::vector<uint64_t>> waits_of_;
  size_t waiting_clients_ = 0;
};

}  // namespace eloqkv::resp
