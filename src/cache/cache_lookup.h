// Reads of a cache: served from the engine while fresh, filled by one reader per key otherwise.
//
// Invariants:
//  * Single flight: a reader that finds a key missing or expired fills it only while holding
//    the key's lease, a heavyweight lock (so waits show in pg_locks, are cancellable and take
//    part in deadlock detection). Other readers queue for the lease, at most lease_timeout, and
//    get it one at a time: each re-reads the key and returns what the holder filled, or, when
//    the holder failed (error, abort or death release the lock with its transaction), fills it.
//  * A fill lands only if no invalidation of its key's stripe happened since the fill began
//    (cache_shared.h), so a source row read before an invalidating commit is never cached after
//    it. The reader still gets the row its source returned.
//  * A row past its ttl but within stale_ttl is served as is to readers that find the lease
//    taken (stale-while-revalidate); past that, nobody sees it.
//  * A source without the row leaves a negative entry for negative_ttl: a storm on a missing key
//    runs the source once too.
//  * A fresh row close to expiry is refreshed early by at most one reader, with probability
//    rising as expiry nears (XFetch, scaled by the cache's mean fill time).
#pragma once

#include <cstdint>

#include "engine/eloqkv.h"
#include "pg/pg_headers.h"
#include "pg/table_options.h"
#include "resp/tables.h"

extern "C" {
#include "access/tupdesc.h"
}

namespace eloqkv::cache {

inline constexpr char kNegativeEntry = resp::kCacheNegativeEntry;
inline bool IsNegativeEntry(const char* value, size_t len) {
  return len == 1 && value[0] == kNegativeEntry;
}

// The row of cache `t` whose encoded key is key_bytes. False when the source has no such row;
// otherwise *value is the row's stored value (palloc'd). refresh_if_fresh_until != 0 (a RESP
// reader's XFetch, run by a filler): a row still fresh is refreshed now, under its lease, if it
// is fresh no longer than that (not refreshed since the reader saw it).
bool Lookup(const pg::KvTable* t, TupleDesc desc, eloqkv::Engine* engine, uint32_t ks,
            const char* key_bytes, size_t key_len, char** value, size_t* value_len,
            int64_t refresh_if_fresh_until = 0);

// XFetch for a RESP reader of cache `relid` of database `dbid` that found a row fresh for
// remaining_ms more: whether to refresh it now.
bool WantsEarlyRefreshOf(Oid dbid, Oid relid, int64_t remaining_ms);

// The 64-bit hash naming a key of a cache (lease lock tag and invalidation stripe).
uint64 KeyHash(Oid relid, const char* key_bytes, size_t key_len);

}  // namespace eloqkv::cache
