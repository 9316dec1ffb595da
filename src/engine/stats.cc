#include "engine/stats.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace eloqkv {

int Histogram::BucketOf(uint64_t ns) {
  if (ns < 4) return static_cast<int>(ns);
  const int msb = 63 - std::countl_zero(ns);
  const int sub = static_cast<int>((ns >> (msb - 2)) & 3u);
  return std::min(kBuckets - 1, (msb - 1) * 4 + sub);
}

double Histogram::BucketUpperNs(int b) {
  if (b < 4) return b + 1;
  const int msb = b / 4 + 1;
  const int sub = b % 4;
  return std::ldexp(1.0, msb) + (sub + 1) * std::ldexp(1.0, msb - 2);
}

void Histogram::Record(uint64_t ns) {
  buckets_[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  uint64_t m = max_ns_.load(std::memory_order_relaxed);
  while (ns > m && !max_ns_.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
  }
}

LatencySummary Histogram::Summarize() const {
  LatencySummary s;
  uint64_t counts[kBuckets];
  uint64_t total = 0;
  for (int b = 0; b < kBuckets; ++b) {
    counts[b] = buckets_[b].load(std::memory_order_relaxed);
    total += counts[b];
  }
  s.count = total;
  s.max_us = static_cast<double>(max_ns_.load(std::memory_order_relaxed)) / 1000.0;
  if (total == 0) return s;
  auto percentile = [&](double q) {
    const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
    uint64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += counts[b];
      if (seen >= rank && counts[b] != 0)
        return std::min(BucketUpperNs(b), s.max_us * 1000.0) / 1000.0;
    }
    return s.max_us;
  };
  s.p50_us = percentile(0.50);
  s.p90_us = percentile(0.90);
  s.p99_us = percentile(0.99);
  return s;
}

void Histogram::Reset() {
  for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
  count_.store(0, std::memory_order_relaxed);
  max_ns_.store(0, std::memory_order_relaxed);
}

KeyCounts KeyspaceCounters::ReadKeyCounts() const {
  KeyCounts c;
  // A writer changes them for a few nanoseconds under a mutex: a few tries always suffice, but
  // a reader never spins for long on a writer that died mid-change.
  for (int tries = 0; tries < 10'000; ++tries) {
    const uint64_t before = key_counts_version.load(std::memory_order_acquire);
    c.keys = keys.load(std::memory_order_relaxed);
    c.bytes = bytes.load(std::memory_order_relaxed);
    c.expiring = expiring.load(std::memory_order_relaxed);
    const int64_t sum_s = expire_at_sum_s.load(std::memory_order_relaxed);
    const int64_t rest_ms = expire_at_rest_ms.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    const bool whole =
        before % 2 == 0 && key_counts_version.load(std::memory_order_relaxed) == before;
    c.mean_expire_at_ms =
        c.expiring > 0
            ? (static_cast<double>(sum_s) * 1000 + static_cast<double>(rest_ms)) / c.expiring
            : 0;
    if (whole) break;
  }
  return c;
}

void KeyspaceCounters::Reset() {
  ClearKeys();
  reads.store(0);
  writes.store(0);
  deletes.store(0);
  cache_hits.store(0);
  cache_misses.store(0);
  device_reads.store(0);
  read_latency.Reset();
  write_latency.Reset();
}

void GlobalCounters::Reset() {
  fsyncs.store(0);
  fsync_latency.Reset();
  batches.store(0);
  bytes_appended.store(0);
  checkpoints.store(0);
  last_checkpoint_lsn.store(0);
  last_checkpoint_us.store(0);
  recovery_us.store(0);
  recovered_records.store(0);
  compactions.store(0);
  compaction_bytes_moved.store(0);
  compaction_bytes_reclaimed.store(0);
  compacting_segment.store(0);
  compacting_done.store(0);
  compacting_total.store(0);
  expired_swept.store(0);
}

}  // namespace eloqkv
