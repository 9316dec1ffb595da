// Invalidations of caches: asked for inside a transaction, applied after it commits.
//
// Invariants:
//  * An invalidation takes effect only if its transaction commits, and only after the commit
//    is visible: a reader that misses afterwards runs its source on a snapshot that sees the
//    change. An aborted transaction's (or rolled-back savepoint's) invalidations are dropped.
//  * Applying one bumps its key's stripe epoch and deletes the key under the stripe lock, so a
//    fill that began before is refused (cache_shared.h).
#pragma once

#include "pg/pg_headers.h"
#include "pg/table_options.h"

namespace eloqkv::cache {

// Queues the invalidation of one key (encoded) or, with key_bytes null, of every key.
void QueueInvalidation(const pg::KvTable* t, const char* key_bytes, size_t key_len);
// Queues the invalidation of every row tagged `tag` (cache_tags.h).
void QueueTagInvalidation(const pg::KvTable* t, const char* tag, size_t len);
bool HasPendingInvalidations();
// Transaction events (pg/xact_callbacks.cc).
void ApplyInvalidationsAtCommit();
void DiscardInvalidations();
void InvalidationsAtSubCommit(int nest_level);
void InvalidationsAtSubAbort(int nest_level);

}  // namespace eloqkv::cache
