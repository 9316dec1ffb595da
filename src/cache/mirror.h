// Full-cache mirrors: a foreign table holding every row of a heap table, kept in step by
// triggers, so reads never miss (docs/cache.md, "Mirrors").
//
// Invariants:
//  * The triggers write through the transaction's KV buffer (pg/kv_session.h): a change reaches
//    the mirror when, and only if, its transaction commits, atomically with its other KV writes.
//  * The backfill copies the source in key order, a chunk per transaction, each chunk's rows
//    locked FOR SHARE while it runs: a concurrent writer of those rows waits for the chunk (not
//    for the whole backfill), and a row a trigger wrote first is never overwritten by an older
//    copy (the backfill inserts only keys that are absent at its commit).
#pragma once

namespace eloqkv::cache {}  // namespace eloqkv::cache
