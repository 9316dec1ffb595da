// CacheWarmer: after a start, reads values into the empty value cache a slice at a time, so that
// the first reads after a restart find them in memory instead of each waiting for the device.
// (redis-server loads its whole data set before it serves; this serves at once and warms behind.)
//
// Invariants:
//  * It only reads, through Engine::Prefetch: what it caches is exactly what a read of the key
//    would have cached (durable, live, small enough), and a key written meanwhile is not harmed.
//  * It does not push out what reads cached: it stops once the cache is kFullFraction used, and
//    sizes each batch to the room left by the largest cache bytes per value seen so far.
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

  // Visits up to max_keys keys and reads the values of those not cached. *done: the cache is
  // full enough, or every key was visited; further calls do nothing.
  Status Step(size_t max_keys, bool* done);

  uint64_t keys_visited() const { return keys_visited_; }
  uint64_t values_read() const { return values_read_; }

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
  bool started_ = false;
  uint32_t keyspace_ = 0;  // visiting this one (0: the next one after it)
  std::string last_key_;   // in keyspace_: visited up to this key
  uint64_t keys_visited_ = 0;
  uint64_t values_read_ = 0;
  uint64_t bytes_per_value_ = 0;  // the most cache bytes one value read took (0: not known yet)
};

}  // namespace eloqkv
