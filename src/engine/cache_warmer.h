// CacheWarmer: after a start, reads values into the empty value cache a slice at a time, so that
// the first reads after a restart find them in memory instead of each waiting for the device.
// (redis-server loads its whole data set before it serves; this serves at once and warms behind.)
//
// Invariants:
//  * It only reads, through Engine::Prefetch: what it caches is exactly what a read of the key
//    would have cached (durable, live, small enough), and a key written meanwhile is not harmed.
//  * It does not push out what reads cached: it stops once the cache is kFullFraction used, and
//    sizes each batch to the room left by the cache bytes its reads took per value so far.
//  * Keyspaces are visited in id order, keys in key order, each key at most once; a slice
//    resumes after the last key visited (keys inserted behind it are not visited).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/eloqkv.h"

namespace eloqkv {

class CacheWarmer {
 public:
  explicit CacheWarmer(Engine* engine) : engine_(engine) {}

  // Visits up to max_keys keys and reads the values of those not cached, returning early once
  // NowMillis() reaches until_ms (0: no limit) after a batch. *done: the cache is full enough,
  // every key was visited, or the engine stopped being ready; further calls do nothing.
  Status Step(size_t max_keys, int64_t until_ms, bool* done);

  uint64_t keys_visited() const { return keys_visited_; }
  uint64_t values_read() const { return values_read_; }
  // Whether it was done because the engine stopped being ready (not because it finished).
  bool interrupted() const { return interrupted_; }

  static constexpr double kFullFraction = 0.9;
  // Most keys whose values are read in one batch of device reads, and the first batch, which
  // measures what a value takes in the cache.
  static constexpr size_t kBatchKeys = 256;
  static constexpr size_t kFirstBatchKeys = 16;

 private:
  // The cache bytes in use, and the room left below kFullFraction; false when there is none.
  bool Room(uint64_t* used, uint64_t* room) const;
  // Keys for the next batch, whose values should fit `room`.
  size_t BatchKeys(uint64_t room) const;

  Engine* engine_;
  bool done_ = false;
  bool interrupted_ = false;
  bool started_ = false;
  uint32_t keyspace_ = 0;  // visiting this one (0: the next one after it)
  std::string last_key_;   // in keyspace_: visited up to this key
  uint64_t keys_visited_ = 0;
  uint64_t values_read_ = 0;
  // What its reads added to the cache, and how many values that was: bytes per value.
  uint64_t bytes_added_ = 0;
  uint64_t values_measured_ = 0;
};

}  // namespace eloqkv
