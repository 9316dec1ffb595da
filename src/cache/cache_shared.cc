#include "cache/cache_shared.h"

#include <cstring>

extern "C" {
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/syscache.h"
}

namespace eloqkv::cache {
namespace {

constexpr const char* kTranche = "eloqkv cache";

struct Slot {
  Oid dbid;
  Oid relid;  // InvalidOid: free
  CacheCounters counters;
};

struct Shared {
  uint64 epochs[kStripes];
  Slot slots[kMaxCaches];
};

Shared* g_shared = nullptr;
LWLockPadded* g_locks = nullptr;  // kStripes stripe locks, then the slot allocation lock

LWLock* SlotLock() {
  return &g_locks[kStripes].lock;
}

void InitCounters(CacheCounters* c) {
  pg_atomic_uint64* all = reinterpret_cast<pg_atomic_uint64*>(c);
  for (size_t i = 0; i < sizeof(CacheCounters) / sizeof(pg_atomic_uint64); ++i)
    pg_atomic_init_u64(&all[i], 0);
}

}  // namespace

Size SharedMemorySize() {
  return sizeof(Shared);
}

void RequestSharedMemory() {
  RequestAddinShmemSpace(SharedMemorySize());
  RequestNamedLWLockTranche(kTranche, kStripes + 1);
}

void StartupSharedMemory() {
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  g_shared = static_cast<Shared*>(ShmemInitStruct("eloqkv cache", sizeof(Shared), &found));
  g_locks = GetNamedLWLockTranche(kTranche);
  if (!found) {
    std::memset(g_shared->epochs, 0, sizeof(g_shared->epochs));
    for (Slot& s : g_shared->slots) {
      s.dbid = InvalidOid;
      s.relid = InvalidOid;
      InitCounters(&s.counters);
    }
  }
  LWLockRelease(AddinShmemInitLock);
}

uint32 StripeOf(uint64 key_hash) {
  return static_cast<uint32>(key_hash % kStripes);
}

LWLock* StripeLock(uint32 stripe) {
  return &g_locks[stripe].lock;
}

uint64* StripeEpoch(uint32 stripe) {
  return &g_shared->epochs[stripe];
}

// Lock-free: a claimed slot never moves, and its counters were set up before its relid was
// published.
static Slot* FindSlot(Oid dbid, Oid relid) {
  for (Slot& s : g_shared->slots) {
    if (s.relid == relid && s.dbid == dbid) {
      pg_read_barrier();
      return &s;
    }
  }
  return nullptr;
}

CacheCounters* CountersFor(Oid relid, bool claim) {
  if (g_shared == nullptr) return nullptr;
  // The slot this backend used last, checked again on every use (a dropped cache's slot may be
  // given to another); and the cache that last found every slot taken, not to search again.
  static Slot* last = nullptr;
  static Oid no_slot = InvalidOid;
  if (last != nullptr && last->relid == relid && last->dbid == MyDatabaseId) return &last->counters;
  if (Slot* s = FindSlot(MyDatabaseId, relid); s != nullptr) {
    last = s;
    return &s->counters;
  }
  if (!claim || relid == no_slot) return nullptr;
  LWLockAcquire(SlotLock(), LW_EXCLUSIVE);
  Slot* chosen = nullptr;
  for (Slot& s : g_shared->slots) {
    if (s.relid == relid && s.dbid == MyDatabaseId) {
      chosen = &s;
      break;
    }
    if (chosen == nullptr && s.relid == InvalidOid) chosen = &s;
  }
  if (chosen == nullptr) {
    // Reclaim the slot of a cache of this database that was dropped.
    for (Slot& s : g_shared->slots) {
      if (s.dbid == MyDatabaseId && !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(s.relid))) {
        chosen = &s;
        chosen->relid = InvalidOid;
        break;
      }
    }
  }
  if (chosen != nullptr && chosen->relid != relid) {
    InitCounters(&chosen->counters);
    chosen->dbid = MyDatabaseId;
    pg_write_barrier();
    chosen->relid = relid;
  }
  LWLockRelease(SlotLock());
  if (chosen == nullptr) no_slot = relid;
  return chosen != nullptr ? &chosen->counters : nullptr;
}

CacheCounters* FindCounters(Oid dbid, Oid relid) {
  if (g_shared == nullptr) return nullptr;
  Slot* s = FindSlot(dbid, relid);
  return s != nullptr ? &s->counters : nullptr;
}

void ForEachCounters(void (*fn)(Oid relid, CacheCounters* c, void* arg), void* arg) {
  if (g_shared == nullptr) return;
  for (Slot& s : g_shared->slots) {
    if (s.relid != InvalidOid && s.dbid == MyDatabaseId) fn(s.relid, &s.counters, arg);
  }
}

void RecordFillLatency(CacheCounters* c, uint64 micros) {
  int b = 0;
  while (b + 1 < kLatencyBuckets && (uint64{1} << b) <= micros) ++b;
  pg_atomic_fetch_add_u64(&c->fill_us[b], 1);
  pg_atomic_fetch_add_u64(&c->fill_us_total, micros);
}

double FillLatencyQuantile(CacheCounters* c, double fraction) {
  uint64 counts[kLatencyBuckets];
  uint64 total = 0;
  for (int b = 0; b < kLatencyBuckets; ++b) total += counts[b] = pg_atomic_read_u64(&c->fill_us[b]);
  if (total == 0) return 0;
  const double want = fraction * static_cast<double>(total);
  uint64 seen = 0;
  for (int b = 0; b < kLatencyBuckets; ++b) {
    seen += counts[b];
    if (static_cast<double>(seen) >= want) return static_cast<double>(uint64{1} << b) / 1000.0;
  }
  return static_cast<double>(uint64{1} << (kLatencyBuckets - 1)) / 1000.0;
}

}  // namespace eloqkv::cache
