// Shared memory of the cache layer: invalidation epochs and per-cache counters.
//
// Invariants:
//  * A fill is written only if the epoch of its key's stripe is the one it read before running
//    the source query, and it is written while holding the stripe's lock. An invalidation bumps
//    the epoch and deletes the key under the same lock. So a fill whose source ran before an
//    invalidation's commit never lands after it (no stale set), whatever the interleaving.
//  * Stripes are shared by many keys: an invalidation may refuse an unrelated fill of the same
//    stripe (one more miss later), never let a stale one through.
//  * Counters are per cache (database, relation) and only ever grow.
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "port/atomics.h"
#include "storage/lwlock.h"
}

namespace eloqkv::cache {

inline constexpr int kStripes = 1024;
inline constexpr int kMaxCaches = 256;
inline constexpr int kLatencyBuckets = 40;  // bucket b: fill took < 2^b microseconds

struct CacheCounters {
  pg_atomic_uint64 hits;
  pg_atomic_uint64 misses;
  pg_atomic_uint64 fills;
  pg_atomic_uint64 lease_waits;
  pg_atomic_uint64 lease_timeouts;
  pg_atomic_uint64 stale_serves;
  pg_atomic_uint64 negative_hits;
  pg_atomic_uint64 early_refreshes;
  pg_atomic_uint64 invalidations;
  pg_atomic_uint64 refused_fills;
  pg_atomic_uint64 fill_us_total;
  pg_atomic_uint64 fill_us[kLatencyBuckets];
};

// Reserves and initializes the area (called from the extension's shmem hooks).
Size SharedMemorySize();
void RequestSharedMemory();
void StartupSharedMemory();

uint32 StripeOf(uint64 key_hash);
LWLock* StripeLock(uint32 stripe);
// Read and written under StripeLock(stripe).
uint64* StripeEpoch(uint32 stripe);

// The counters of a cache of this database; with `claim`, a slot is claimed on first use (null
// when all slots are taken by live caches). Without, no lock and no catalog access (commit time).
CacheCounters* CountersFor(Oid relid, bool claim = true);
// The counters of cache `relid` of database `dbid` if it has any (any process; never claims).
CacheCounters* FindCounters(Oid dbid, Oid relid);
// Calls fn for each cache of this database with counters.
void ForEachCounters(void (*fn)(Oid relid, CacheCounters* c, void* arg), void* arg);

inline void Count(pg_atomic_uint64* counter) {
  pg_atomic_fetch_add_u64(counter, 1);
}
void RecordFillLatency(CacheCounters* c, uint64 micros);
// The fill latency below which `fraction` of the fills finished, in milliseconds.
double FillLatencyQuantile(CacheCounters* c, double fraction);

}  // namespace eloqkv::cache
