// Stats: lock-free counters and latency histograms in shared memory.
//
// Invariant: recording never blocks and never allocates; every field is a relaxed atomic, so a
// reader may see a slightly stale but never a torn value.
#pragma once

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

struct KeyspaceCounters {
  std::atomic<int64_t> keys;
  std::atomic<int64_t> bytes;
  // Of those keys, the ones with a TTL, and the sum of their expiry times in seconds (INFO
  // keyspace's expires and avg_ttl; seconds, so that billions of keys cannot overflow it).
  std::atomic<int64_t> expiring;
  std::atomic<int64_t> expire_at_sum_s;
  std::atomic<uint64_t> reads, writes, deletes;
  std::atomic<uint64_t> cache_hits, cache_misses, device_reads;
  Histogram read_latency, write_latency;
  void Reset();
  // A live key entering (sign 1) or leaving (sign -1) the counts.
  void CountKey(int sign, uint32_t length, int64_t expire_at_ms) {
    keys.fetch_add(sign, std::memory_order_relaxed);
    bytes.fetch_add(sign * static_cast<int64_t>(length), std::memory_order_relaxed);
    if (expire_at_ms == 0) return;
    expiring.fetch_add(sign, std::memory_order_relaxed);
    expire_at_sum_s.fetch_add(sign * (expire_at_ms / 1000), std::memory_order_relaxed);
  }
  // No key at all (a truncated keyspace, before a recount).
  void ClearKeys() {
    keys.store(0);
    bytes.store(0);
    expiring.store(0);
    expire_at_sum_s.store(0);
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
