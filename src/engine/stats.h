// Stats: lock-free counters and latency histograms in shared memory.
//
// Invariant: recording never blocks and never allocates; every field is a relaxed atomic, so a
// reader may see a slightly stale but never a torn value.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "engine/eloqkv.h"

namespace eloqkv {

// Log-linear histogram of nanosecond latencies: four buckets per power of two.
class Histogram {
 public:
  static constexpr int kBuckets = 176;  // up to ~2^44 ns (about 4.9 hours)
  void Record(uint64_t ns);
  LatencySummary Summarize() const;
  void Reset();

 private:
  static int BucketOf(uint64_t ns);
  static double BucketUpperNs(int b);
  std::atomic<uint64_t> buckets_[kBuckets];
  std::atomic<uint64_t> count_;
  std::atomic<uint64_t> max_ns_;
};

// The key counts (keys, bytes, and INFO keyspace's expires and avg_ttl) are changed only under
// the log's write mutex, or by recovery alone; a reader takes them together (ReadKeyCounts),
// never half of one change, by the even/odd version around each change (a sequence lock).
struct KeyCounts {
  int64_t keys = 0;
  int64_t bytes = 0;             // live record bytes
  int64_t expiring = 0;          // the keys with a TTL
  double mean_expire_at_ms = 0;  // their mean expiry time (0: none)
};

struct KeyspaceCounters {
  // An expiry time past this (the year 2100) counts as this: the sums cannot overflow before
  // billions of keys.
  static constexpr int64_t kMaxCountedExpireS = 4'102'444'800;
  std::atomic<uint64_t> key_counts_version;
  std::atomic<int64_t> keys;
  std::atomic<int64_t> bytes;
  std::atomic<int64_t> expiring;
  std::atomic<int64_t> expire_at_sum_s;    // whole seconds of their expiry times
  std::atomic<int64_t> expire_at_rest_ms;  // and the milliseconds past them
  std::atomic<uint64_t> reads, writes, deletes;
  std::atomic<uint64_t> cache_hits, cache_misses, device_reads;
  Histogram read_latency, write_latency;
  void Reset();
  // A live key entering (sign 1) or leaving (sign -1) the counts.
  void CountKey(int sign, uint32_t length, int64_t expire_at_ms) {
    BeginKeyCountsChange();
    keys.store(keys.load(std::memory_order_relaxed) + sign, std::memory_order_relaxed);
    bytes.store(bytes.load(std::memory_order_relaxed) + sign * static_cast<int64_t>(length),
                std::memory_order_relaxed);
    if (expire_at_ms != 0) {
      const int64_t s = std::min(expire_at_ms / 1000, kMaxCountedExpireS);
      const int64_t rest = s == kMaxCountedExpireS ? 0 : expire_at_ms % 1000;
      expiring.store(expiring.load(std::memory_order_relaxed) + sign, std::memory_order_relaxed);
      expire_at_sum_s.store(expire_at_sum_s.load(std::memory_order_relaxed) + sign * s,
                            std::memory_order_relaxed);
      expire_at_rest_ms.store(expire_at_rest_ms.load(std::memory_order_relaxed) + sign * rest,
                              std::memory_order_relaxed);
    }
    EndKeyCountsChange();
  }
  // No key at all (a truncated keyspace, before a recount).
  void ClearKeys() {
    BeginKeyCountsChange();
    keys.store(0, std::memory_order_relaxed);
    bytes.store(0, std::memory_order_relaxed);
    expiring.store(0, std::memory_order_relaxed);
    expire_at_sum_s.store(0, std::memory_order_relaxed);
    expire_at_rest_ms.store(0, std::memory_order_relaxed);
    EndKeyCountsChange();
  }
  KeyCounts ReadKeyCounts() const;

 private:
  void BeginKeyCountsChange() {
    key_counts_version.store(key_counts_version.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  void EndKeyCountsChange() {
    key_counts_version.store(key_counts_version.load(std::memory_order_relaxed) + 1,
                             std::memory_order_release);
  }
};

struct GlobalCounters {
  std::atomic<uint64_t> fsyncs;
  Histogram fsync_latency;
  std::atomic<uint64_t> batches, bytes_appended;
  std::atomic<uint64_t> checkpoints;
  std::atomic<uint64_t> last_checkpoint_lsn;
  std::atomic<uint64_t> last_checkpoint_us;
  std::atomic<uint64_t> recovery_us;
  std::atomic<uint64_t> recovered_records;
  std::atomic<uint64_t> compactions, compaction_bytes_moved, compaction_bytes_reclaimed;
  std::atomic<uint32_t> compacting_segment;
  std::atomic<uint64_t> compacting_done, compacting_total;
  std::atomic<uint64_t> expired_swept;
  void Reset();
};

inline uint64_t NowNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace eloqkv
