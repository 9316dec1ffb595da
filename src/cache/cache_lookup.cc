#include "cache/cache_lookup.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "cache/cache_invalidate.h"
#include "cache/cache_shared.h"
#include "cache/cache_source.h"
#include "cache/cache_tags.h"
#include "pg/pg_guard.h"
#include "pg/key_codec.h"
#include "pg/kv_session.h"
#include "pg/row_codec.h"
#include "pg/settings.h"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace eloqkv::cache {
namespace {

using pg::Guarded;
using pg::PgError;
using pg::RaiseError;

// The objsubid of a lease in pg_locks (an advisory lock tag with a field no SQL-level advisory
// lock uses: theirs are 1 and 2).
constexpr uint16 kLeaseLockField4 = 0x454B;

struct Stored {
  bool found;
  char* value;
  size_t len;
  int64 expire_at_ms;
};

// Engine values cross the wall through this buffer: it outlives any ERROR (static storage).
std::string& Scratch() {
  static std::string buffer;
  return buffer;
}

Stored ReadStored(eloqkv::Engine* e, uint32_t ks, const char* key, size_t len) {
  Stored out{};
  bool found = false;
  int64 expire = 0;
  PgError err;
  if (!Guarded(&err, [&] {
        eloqkv::ReadInfo info;
        eloqkv::Status s = e->Get(ks, std::string_view(key, len), &Scratch(), &info);
        if (s.IsNotFound()) return eloqkv::Status::OK();
        found = s.ok();
        expire = info.expire_at_ms;
        return s;
      })) {
    RaiseError(err, "could not read the cache");
  }
  out.found = found;
  out.expire_at_ms = expire;
  if (found) {
    out.len = Scratch().size();
    out.value = static_cast<char*>(palloc(out.len + 1));
    std::memcpy(out.value, Scratch().data(), out.len);
  }
  return out;
}

// The epoch of the key's stripe now: a fill lands only if it is unchanged when the fill is written.
uint64 CurrentEpoch(uint32 stripe) {
  LWLockAcquire(StripeLock(stripe), LW_SHARED);
  const uint64 epoch = *StripeEpoch(stripe);
  LWLockRelease(StripeLock(stripe));
  return epoch;
}

// Writes a fill if no invalidation of its stripe came in between; false when refused.
bool WriteFill(eloqkv::Engine* e, const pg::KvTable* t, uint32_t ks, const char* key, size_t len,
               const StringInfo value, int64 expire_at_ms, const char* tag, uint32 stripe,
               uint64 epoch) {
  PgError err;
  uint64_t lsn = 0;
  LWLockAcquire(StripeLock(stripe), LW_EXCLUSIVE);
  const bool current = *StripeEpoch(stripe) == epoch;
  bool ok = !current || Guarded(&err, [&] {
    eloqkv::WriteBatch batch;
    eloqkv::Status s = batch.Put(ks, std::string_view(key, len),
                                 std::string_view(value->data, value->len), expire_at_ms);
    if (!s.ok()) return s;
    if (tag != nullptr) {  // the tag's record goes with the row (cache_tags.h)
      uint32_t tags = 0;
      bool exists = false;
      s = TagKeyspace(e, t->keyspace, /*create=*/true, &tags, &exists);
      if (!s.ok()) return s;
      std::string record = TagRecordPrefix(tag, std::strlen(tag));
      record.append(key, len);
      s = batch.Put(tags, record, std::string_view(), expire_at_ms);
      if (!s.ok()) return s;
    }
    eloqkv::WriteResult result;
    s = e->WriteDeferred(batch, &result);
    lsn = result.end_lsn;
    return s;
  });
  LWLockRelease(StripeLock(stripe));
  if (ok && lsn != 0) ok = Guarded(&err, [&] { return e->SyncTo(lsn); });
  if (!ok) {
    // The reader has its row; only the cache missed a fill.
    ereport(WARNING, (errcode(err.sqlstate), errmsg("could not fill the cache: %s", err.message)));
    return false;
  }
  return current;
}

bool TryLease(const pg::KvTable* t, LOCKTAG* tag) {
  const LockAcquireResult r = LockAcquire(tag, ExclusiveLock, false, true);
  if (r == LOCKACQUIRE_NOT_AVAIL) return false;
  if (r != LOCKACQUIRE_OK) {
    LockRelease(tag, ExclusiveLock, false);
    ereport(ERROR, (errcode(ERRCODE_INVALID_RECURSION),
                    errmsg("the source query of cache \"%s\" reads the key it is filling from the "
                           "cache itself",
                           t->relname)));
  }
  return true;
}

void AcquireLease(void* arg) {
  (void)LockAcquire(static_cast<LOCKTAG*>(arg), ExclusiveLock, false, false);
}

// Waits for the lease itself, at most timeout_ms: true when this reader now holds it (the holder
// before it filled the key, or failed); false on timeout. Waiters queue for the lease and get it
// one at a time, each re-reading the key, so a holder that failed is replaced by exactly one of
// them. (Waiting in a shared mode instead lets every waiter wake at once, find the key missing
// again after the next invalidation, and spin on the lock while the others hold it shared.)
// Other errors (cancel, deadlock, the user's own lock_timeout) are raised.
bool WaitForLease(LOCKTAG* tag, int64 timeout_ms) {
  const int saved = LockTimeout;
  const bool ours = saved <= 0 || timeout_ms < saved;
  LockTimeout = ours ? static_cast<int>(Min(timeout_ms, static_cast<int64>(INT_MAX))) : saved;
  PgError err;
  const bool ok = pg::CallPostgres(AcquireLease, tag, &err);
  LockTimeout = saved;
  if (ok) return true;
  // The lock may have been granted just as the timeout fired: then this reader holds it.
  if (ours && err.sqlstate == ERRCODE_LOCK_NOT_AVAILABLE) return LockHeldByMe(tag, ExclusiveLock);
  RaiseError(err);
}

// XFetch: refresh early with probability rising as expiry nears, scaled by the mean fill time.
bool WantsEarlyRefresh(CacheCounters* c, int64 remaining_ms) {
  if (c == nullptr) return false;
  const uint64 fills = pg_atomic_read_u64(&c->fills);
  if (fills == 0) return false;
  const double mean_ms = static_cast<double>(pg_atomic_read_u64(&c->fill_us_total)) /
                         static_cast<double>(fills) / 1000.0;
  const double u = 1.0 - pg_prng_double(&pg_global_prng_state);  // (0, 1]
  return -mean_ms * std::log(u) >= static_cast<double>(remaining_ms);
}

void CountIf(CacheCounters* c, pg_atomic_uint64 CacheCounters::*field) {
  if (c != nullptr) Count(&(c->*field));
}

struct Request {
  const pg::KvTable* t;
  TupleDesc desc;
  eloqkv::Engine* engine;
  uint32_t ks;
  const char* key_bytes;
  size_t key_len;
  CacheCounters* counters;
  uint32 stripe;  // set by Prepare(): a hit needs none of what follows
  LOCKTAG lease;
  int64 deadline_ms;
  bool prepared;
  bool no_fill;  // a standby: the source's answer is returned, not stored
};

// What a miss needs: the key's stripe, its lease's lock tag, the end of the wait.
void Prepare(Request* r) {
  if (r->prepared) return;
  r->prepared = true;
  const uint64 hash = KeyHash(r->t->relid, r->key_bytes, r->key_len);
  r->stripe = StripeOf(hash);
  SET_LOCKTAG_ADVISORY(r->lease, MyDatabaseId, static_cast<uint32>(hash >> 32),
                       static_cast<uint32>(hash), kLeaseLockField4);
  r->deadline_ms = eloqkv::NowMillis() + r->t->lease_timeout_ms;
}

// Runs the source and writes what it returned (a row or a negative entry). Releases the lease
// if `leased`. Returns what a lookup returns.
bool Fill(Request& r, bool leased, char** value, size_t* value_len) {
  const uint64 epoch = CurrentEpoch(r.stripe);
  const TimestampTz start = GetCurrentTimestamp();
  Datum* values = static_cast<Datum*>(palloc0(sizeof(Datum) * Max(r.desc->natts, 1)));
  bool* isnull = static_cast<bool*>(palloc(sizeof(bool) * Max(r.desc->natts, 1)));
  (void)pg::DecodeKey(r.t, r.key_bytes, r.key_len, values, isnull);
  const Datum key = values[r.t->key_attnums[0] - 1];
  // A reader whose transaction has written may see its own uncommitted changes in the source:
  // it gets its row, the cache gets nothing (another reader fills it). Judged before the source
  // runs: what the source itself does (a nextval) is not the reader's change.
  const bool own_writes = TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
                          HasPendingInvalidations() || pg::kv::HasWrites();
  const bool found = RunSource(r.t, r.desc, key, values, isnull);
  StringInfoData v;
  initStringInfo(&v);
  const int64 now = eloqkv::NowMillis();
  int64 expire_at = 0;
  if (found) {
    pg::EncodeRow(r.t, r.desc, values, isnull, &v);
    if (r.t->ttl_ms > 0) expire_at = now + r.t->ttl_ms + r.t->stale_ttl_ms;
  } else {
    appendStringInfoChar(&v, kNegativeEntry);
    if (r.t->negative_ttl_ms > 0) expire_at = now + r.t->negative_ttl_ms;
  }
  const char* row_tag = nullptr;
  if (found && r.t->tag_attnum != 0 && !isnull[r.t->tag_attnum - 1]) {
    Oid output;
    bool varlena;
    getTypeOutputInfo(TupleDescAttr(r.desc, r.t->tag_attnum - 1)->atttypid, &output, &varlena);
    row_tag = OidOutputFunctionCall(output, values[r.t->tag_attnum - 1]);
  }
  if (r.no_fill) {
    // Nothing is stored: the primary's fills reach this standby through WAL.
  } else if (own_writes || !WriteFill(r.engine, r.t, r.ks, r.key_bytes, r.key_len, &v, expire_at,
                                      row_tag, r.stripe, epoch)) {
    CountIf(r.counters, &CacheCounters::refused_fills);
  }
  if (leased) LockRelease(&r.lease, ExclusiveLock, false);
  if (r.counters != nullptr) {
    Count(&r.counters->fills);
    long secs = 0;
    int usecs = 0;
    TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
    RecordFillLatency(r.counters, static_cast<uint64>(secs) * 1000000 + static_cast<uint64>(usecs));
  }
  *value = v.data;
  *value_len = static_cast<size_t>(v.len);
  return found;
}

bool Serve(const Stored& st, char** value, size_t* value_len) {
  *value = st.value;
  *value_len = st.len;
  return !IsNegativeEntry(st.value, st.len);
}

// A hot standby writes nothing of its own and takes no leases (advisory locks are refused during
// recovery): it serves what the primary's fills replicated while it is fresh, and reads the
// source itself for the rest. Invalidations on the primary replicate as deletes.
bool LookupOnStandby(Request& r, char** value, size_t* value_len) {
  const Stored st = ReadStored(r.engine, r.ks, r.key_bytes, r.key_len);
  if (st.found) {
    const bool negative = IsNegativeEntry(st.value, st.len);
    const int64 fresh_until = st.expire_at_ms == 0 ? INT64_MAX
                              : negative           ? st.expire_at_ms
                                                   : st.expire_at_ms - r.t->stale_ttl_ms;
    if (eloqkv::NowMillis() < fresh_until) {
      CountIf(r.counters, negative ? &CacheCounters::negative_hits : &CacheCounters::hits);
      return Serve(st, value, value_len);
    }
  }
  CountIf(r.counters, &CacheCounters::misses);
  Prepare(&r);
  r.no_fill = true;
  return Fill(r, false, value, value_len);
}

}  // namespace

uint64 KeyHash(Oid relid, const char* key_bytes, size_t key_len) {
  return hash_bytes_extended(reinterpret_cast<const unsigned char*>(key_bytes),
                             static_cast<int>(key_len), relid);
}

bool WantsEarlyRefreshOf(Oid dbid, Oid relid, int64_t remaining_ms) {
  return pg::CacheLeasesOn() && WantsEarlyRefresh(FindCounters(dbid, relid), remaining_ms);
}

bool Lookup(const pg::KvTable* t, TupleDesc desc, eloqkv::Engine* engine, uint32_t ks,
            const char* key_bytes, size_t key_len, char** value, size_t* value_len,
            int64_t refresh_if_fresh_until) {
  Request r{t, desc, engine, ks, key_bytes, key_len, CountersFor(t->relid), 0, {}, 0, false, false};
  if (RecoveryInProgress()) return LookupOnStandby(r, value, value_len);
  bool leased = false;  // after a wait: this reader holds the lease
  for (;;) {
    const Stored st = ReadStored(engine, ks, key_bytes, key_len);
    const int64 now = eloqkv::NowMillis();
    if (st.found) {
      const bool negative = IsNegativeEntry(st.value, st.len);
      const int64 fresh_until = st.expire_at_ms == 0 ? INT64_MAX
                                : negative           ? st.expire_at_ms
                                                     : st.expire_at_ms - t->stale_ttl_ms;
      if (now < fresh_until) {
        if (leased) {
          LockRelease(&r.lease, ExclusiveLock, false);  // the holder before us filled it
          return Serve(st, value, value_len);
        }
        const bool asked = refresh_if_fresh_until != 0 && fresh_until <= refresh_if_fresh_until;
        if (!negative && fresh_until != INT64_MAX && pg::CacheLeasesOn() &&
            (asked || WantsEarlyRefresh(r.counters, fresh_until - now))) {
          Prepare(&r);
          if (TryLease(t, &r.lease)) {
            CountIf(r.counters, &CacheCounters::early_refreshes);
            return Fill(r, true, value, value_len);
          }
        }
        CountIf(r.counters, negative ? &CacheCounters::negative_hits : &CacheCounters::hits);
        return Serve(st, value, value_len);
      }
    }
    Prepare(&r);
    if (leased) return Fill(r, true, value, value_len);  // the holder before us failed
    if (!pg::CacheLeasesOn()) {  // plain read-through: every missing reader runs the source
      CountIf(r.counters, &CacheCounters::misses);
      return Fill(r, false, value, value_len);
    }
    if (TryLease(t, &r.lease)) {
      CountIf(r.counters, &CacheCounters::misses);
      return Fill(r, true, value, value_len);
    }
    if (st.found) {
      // Past its ttl, within stale_ttl, and another reader is refilling it: the stale row.
      CountIf(r.counters, &CacheCounters::stale_serves);
      return Serve(st, value, value_len);
    }
    CountIf(r.counters, &CacheCounters::misses);
    CountIf(r.counters, &CacheCounters::lease_waits);
    const int64 remaining = r.deadline_ms - eloqkv::NowMillis();
    if (remaining <= 0 || !WaitForLease(&r.lease, remaining)) {
      // The holder is slow: read the source ourselves (the fill still obeys invalidations).
      CountIf(r.counters, &CacheCounters::lease_timeouts);
      return Fill(r, false, value, value_len);
    }
    leased = true;
  }
}

}  // namespace eloqkv::cache
