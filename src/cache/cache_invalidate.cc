#include "cache/cache_invalidate.h"

#include <cstring>
#include <memory>
#include <string>

#include "cache/cache_lookup.h"
#include "cache/cache_shared.h"
#include "cache/cache_tags.h"
#include "pg/engine_access.h"
#include "pg/pg_guard.h"

extern "C" {
#include "access/xact.h"
#include "utils/memutils.h"
}

namespace eloqkv::cache {
namespace {

using pg::Guarded;
using pg::PgError;

struct Pending {
  Oid relid;
  char keyspace[pg::kMaxEngineKeyspaceName + 1];
  char* key;  // null: every key
  size_t key_len;
  bool by_tag;  // key is a tag: every row it tags
  int nest_level;
};

List* g_pending = NIL;  // of Pending*, in TopTransactionContext

// Deletes the rows a tag's records name, and the records (C++ only: called in Guarded).
eloqkv::Status DropTagged(eloqkv::Engine* e, const Pending& p, uint32_t ks, uint64_t* lsn) {
  uint32_t tags = 0;
  bool exists = false;
  eloqkv::Status s = TagKeyspace(e, p.keyspace, /*create=*/false, &tags, &exists);
  if (!s.ok() || !exists) return s;
  eloqkv::ScanOptions opts;
  opts.prefix = TagRecordPrefix(p.key, p.key_len);
  opts.keys_only = true;
  std::unique_ptr<eloqkv::Iterator> it = e->NewIterator(tags, opts);
  eloqkv::WriteBatch batch;
  auto flush = [&] {
    eloqkv::WriteResult result;
    eloqkv::Status w = e->WriteDeferred(batch, &result);
    if (result.end_lsn > *lsn) *lsn = result.end_lsn;
    batch.Clear();
    return w;
  };
  for (; it->Valid(); it->Next()) {
    const std::string_view record = it->key();
    s = batch.Delete(ks, record.substr(opts.prefix.size()));
    if (s.ok()) s = batch.Delete(tags, record);
    if (s.ok() && batch.Count() >= 512) s = flush();
    if (!s.ok()) return s;
  }
  if (!it->status().ok()) return it->status();
  return batch.Count() > 0 ? flush() : eloqkv::Status::OK();
}

// Deletes one key (or truncates the keyspace) after bumping the epochs that guard it.
bool Apply(eloqkv::Engine* e, const Pending& p, uint64_t* lsn, PgError* err) {
  uint32_t ks = 0;
  bool exists = false;
  if (!Guarded(err, [&] {
        eloqkv::Status s = e->FindKeyspace(p.keyspace, &ks);
        exists = s.ok();
        return s.IsNotFound() ? eloqkv::Status::OK() : s;
      }))
    return false;
  if (p.key == nullptr || p.by_tag) {
    // Every stripe: a fill of any key of this cache that began before is refused or truncated
    // (a fill's tag is known only once its source ran).
    for (uint32 stripe = 0; stripe < kStripes; ++stripe) {
      LWLockAcquire(StripeLock(stripe), LW_EXCLUSIVE);
      ++*StripeEpoch(stripe);
      LWLockRelease(StripeLock(stripe));
    }
    if (!exists) return true;
    if (p.key == nullptr) return Guarded(err, [&] { return e->TruncateKeyspace(ks); });
    return Guarded(err, [&] { return DropTagged(e, p, ks, lsn); });
  }
  const uint32 stripe = StripeOf(KeyHash(p.relid, p.key, p.key_len));
  LWLockAcquire(StripeLock(stripe), LW_EXCLUSIVE);
  ++*StripeEpoch(stripe);
  const bool ok = !exists || Guarded(err, [&] {
    eloqkv::WriteBatch batch;
    eloqkv::Status s = batch.Delete(ks, std::string_view(p.key, p.key_len));
    if (!s.ok()) return s;
    eloqkv::WriteResult result;
    s = e->WriteDeferred(batch, &result);
    if (result.end_lsn > *lsn) *lsn = result.end_lsn;
    return s;
  });
  LWLockRelease(StripeLock(stripe));
  return ok;
}

}  // namespace

void QueueTagInvalidation(const pg::KvTable* t, const char* tag, size_t len) {
  QueueInvalidation(t, tag, len);
  Pending* p = static_cast<Pending*>(llast(g_pending));
  p->by_tag = true;
}

void QueueInvalidation(const pg::KvTable* t, const char* key_bytes, size_t key_len) {
  // Attach now: at commit, when they are applied, nothing may raise an error.
  (void)pg::AttachedEngine();
  MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
  Pending* p = static_cast<Pending*>(palloc0(sizeof(Pending)));
  p->relid = t->relid;
  snprintf(p->keyspace, sizeof(p->keyspace), "%s", t->keyspace);
  if (key_bytes != nullptr) {
    p->key = static_cast<char*>(palloc(key_len + 1));
    std::memcpy(p->key, key_bytes, key_len);
    p->key_len = key_len;
  }
  p->nest_level = GetCurrentTransactionNestLevel();
  g_pending = lappend(g_pending, p);
  MemoryContextSwitchTo(old);
}

bool HasPendingInvalidations() {
  return g_pending != NIL;
}

void ApplyInvalidationsAtCommit() {
  if (g_pending == NIL) return;
  List* pending = g_pending;
  g_pending = NIL;
  eloqkv::Engine* e = pg::AttachedEngine();
  if (e->state() != eloqkv::EngineState::kReady) {
    ereport(WARNING, (errmsg("eloqkv caches were not invalidated: the engine is not ready")));
    return;
  }
  PgError err;
  uint64_t lsn = 0;
  int failed = 0;
  ListCell* cell;
  foreach (cell, pending) {
    const Pending* p = static_cast<const Pending*>(lfirst(cell));
    if (!Apply(e, *p, &lsn, &err)) {
      ++failed;
      continue;
    }
    if (CacheCounters* c = CountersFor(p->relid, /*claim=*/false)) Count(&c->invalidations);
  }
  if (lsn != 0 && !Guarded(&err, [&] { return e->SyncTo(lsn); })) ++failed;
  // After commit nothing may fail the transaction: report and go on.
  if (failed > 0)
    ereport(WARNING, (errmsg("%d eloqkv cache invalidations failed: %s", failed, err.message)));
}

void DiscardInvalidations() {
  g_pending = NIL;  // its memory goes with the transaction's
}

void InvalidationsAtSubCommit(int nest_level) {
  ListCell* cell;
  foreach (cell, g_pending) {
    Pending* p = static_cast<Pending*>(lfirst(cell));
    if (p->nest_level >= nest_level) p->nest_level = nest_level - 1;
  }
}

void InvalidationsAtSubAbort(int nest_level) {
  List* kept = NIL;
  ListCell* cell;
  MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
  foreach (cell, g_pending) {
    Pending* p = static_cast<Pending*>(lfirst(cell));
    if (p->nest_level < nest_level) kept = lappend(kept, p);
  }
  MemoryContextSwitchTo(old);
  g_pending = kept;
}

}  // namespace eloqkv::cache
