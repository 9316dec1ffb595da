#include "pg/cache_filler.h"

#include <signal.h>

#include <cstring>

#include "cache/cache_lookup.h"
#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/table_options.h"
#include "pg/table_runtime.h"
#include "pg/worker_spec.h"

extern "C" {
#include "access/xlog.h"
#include "access/relation.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"
}

namespace eloqkv::pg {
namespace {

constexpr int kDatabases = 32;   // databases with RESP-read caches at once
constexpr int kFillers = 4;      // fillers per database, started as requests wait for one
constexpr int kQueue = 256;      // requests waiting per database
constexpr size_t kMaxKey = 512;  // engine key bytes of a request
constexpr long kIdleWaitMs = 1000;
// A filler registered this long ago that never came up (its database was dropped, say) is
// started again by the next request.
constexpr int64_t kStartTimeoutMs = 10000;

struct FillRequest {
  Oid relid;
  int64_t refresh_if_fresh_until;  // 0: a miss; else an early refresh (XFetch)
  uint16 key_len;
  char key[kMaxKey];
};

// A filler's pid is set while it runs and cleared by its exit callback; a filler that dies
// without running it (a signal, a crash) makes the postmaster reinitialize shared memory, so a
// non-zero pid is a live filler and no kill(pid, 0) is needed under the spinlock.
struct Filler {
  uint32 generation;  // of the worker last started for this entry: an older one that comes up
                      // late (after kStartTimeoutMs) leaves the entry to the newer one
  pid_t pid;          // 0 until it runs, and again once it exits
  Latch* latch;       // null until it runs
  bool starting;      // registered, not running yet
  int64_t started_at_ms;
  bool busy;  // filling `current`
  FillRequest current;
};

struct FillerSlot {
  Oid database;  // InvalidOid: free
  Filler fillers[kFillers];
  uint32 head;  // next request to take
  uint32 tail;  // next free place
  FillRequest queue[kQueue];
};

bool Same(const FillRequest& r, Oid relid, std::string_view key) {
  return r.relid == relid && r.key_len == key.size() &&
         std::memcmp(r.key, key.data(), key.size()) == 0;
}

struct FillerShared {
  slock_t mutex;
  FillerSlot slots[kDatabases];
};

FillerShared* g_shared = nullptr;

bool Alive(const Filler& f) {
  return f.pid != 0;
}

struct StartArgs {
  int slot;
  int filler;
  uint32 generation;
  bool ok;
};

// Postgres calls only (CallPostgres).
void StartFiller(void* arg) {
  auto* a = static_cast<StartArgs*>(arg);
  char name[BGW_MAXLEN];
  snprintf(name, sizeof(name), "eloqkv cache filler %d.%d", a->slot, a->filler);
  // Never restarted by the postmaster: started again on demand.
  BackgroundWorker w = WorkerSpec("eloqkv cache filler", name, "eloqkv_cache_filler_main",
                                  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
                                  BgWorkerStart_RecoveryFinished, BGW_NEVER_RESTART,
                                  Int32GetDatum(a->slot * kFillers + a->filler));
  std::memcpy(w.bgw_extra, &a->generation, sizeof(a->generation));
  BackgroundWorkerHandle* handle = nullptr;
  a->ok = RegisterDynamicBackgroundWorker(&w, &handle);
}

void Wake(void* arg) {
  SetLatch(static_cast<Latch*>(arg));
}

}  // namespace

void RequestCacheFillerShmem() {
  RequestAddinShmemSpace(sizeof(FillerShared));
}

void InitCacheFillerShmem() {
  bool found = false;
  void* p = ShmemInitStruct("eloqkv cache fillers", sizeof(FillerShared), &found);
  g_shared = static_cast<FillerShared*>(p);
  if (!found) {
    std::memset(p, 0, sizeof(FillerShared));
    SpinLockInit(&g_shared->mutex);
  }
}

bool PgCacheFiller::WantsEarlyRefresh(const resp::TableDesc& t, int64_t remaining_ms) {
  return cache::WantsEarlyRefreshOf(t.database_oid, t.relid, remaining_ms);
}

Status PgCacheFiller::RequestFill(const resp::TableDesc& t, std::string_view engine_key,
                                  int64_t refresh_if_fresh_until) {
  if (g_shared == nullptr) return Status::Unavailable("cache fills are not set up");
  // Fillers start once recovery is over: a standby's misses are the primary's to fill.
  if (RecoveryInProgress())
    return Status::Unavailable("cache misses are not filled on a standby; read the key on the "
                               "primary");
  if (engine_key.size() > kMaxKey)
    return Status::InvalidArgument("the key is too long for a cache fill over RESP (" +
                                   std::to_string(kMaxKey) + " bytes at most)");
  int slot = -1, start = -1;
  uint32 generation = 0, queued_at = 0;
  bool full = false, running = false;
  Latch* latch = nullptr;
  SpinLockAcquire(&g_shared->mutex);
  for (int i = 0; i < kDatabases && slot < 0; ++i)
    if (g_shared->slots[i].database == t.database_oid) slot = i;
  for (int i = 0; i < kDatabases && slot < 0; ++i) {
    if (g_shared->slots[i].database == InvalidOid) {
      slot = i;
      FillerSlot& s = g_shared->slots[i];
      std::memset(&s.fillers, 0, sizeof(s.fillers));
      s.database = t.database_oid;
      s.head = s.tail = 0;
    }
  }
  if (slot >= 0) {
    FillerSlot& s = g_shared->slots[slot];
    // A storm on one key asks once: not again while it waits or while it is being filled.
    bool asked = false;
    for (uint32 i = s.head; i != s.tail && !asked; ++i)
      asked = Same(s.queue[i % kQueue], t.relid, engine_key);
    for (const Filler& f : s.fillers)  // (a filler that died filling it asks no more)
      asked |= f.busy && Same(f.current, t.relid, engine_key) && Alive(f);
    if (!asked && s.tail - s.head >= static_cast<uint32>(kQueue)) {
      full = true;
    } else if (!asked) {
      FillRequest& r = s.queue[s.tail % kQueue];
      r.relid = t.relid;
      r.refresh_if_fresh_until = refresh_if_fresh_until;
      r.key_len = static_cast<uint16>(engine_key.size());
      std::memcpy(r.key, engine_key.data(), engine_key.size());
      queued_at = s.tail++;
      // An idle filler takes it; else, while fillers are missing, one more starts (a slow
      // source then delays only the requests behind it). One that is starting takes the queue
      // when it comes up.
      const int64_t now = NowMillis();
      int starting = 0, free_filler = -1;
      for (int i = 0; i < kFillers; ++i) {
        Filler& f = s.fillers[i];
        const bool stuck = f.starting && now - f.started_at_ms > kStartTimeoutMs;
        if (f.starting && !stuck) {
          ++starting;
          running = true;
        } else if (Alive(f)) {
          running = true;
          if (!f.busy && latch == nullptr) latch = f.latch;
        } else if (free_filler < 0) {
          free_filler = i;
        }
      }
      if (latch == nullptr && starting == 0 && free_filler >= 0) {
        Filler& f = s.fillers[free_filler];
        generation = f.generation + 1;
        f = Filler{};
        f.generation = generation;
        f.starting = true;
        f.started_at_ms = now;
        start = free_filler;
      }
    }
  }
  SpinLockRelease(&g_shared->mutex);
  if (slot < 0)
    return Status::Unavailable("too many databases have RESP cache fills in flight; try again");
  if (full)
    return Status::Unavailable("the eloqkv cache fillers of this database are busy; try again");
  PgError err;
  if (start >= 0) {
    StartArgs a{slot, start, generation, false};
    if (!CallPostgres(StartFiller, &a, &err) || !a.ok) {
      SpinLockAcquire(&g_shared->mutex);
      FillerSlot& s = g_shared->slots[slot];
      if (s.fillers[start].generation == generation) s.fillers[start].starting = false;
      // Nobody can serve the request: take it back, unless others were queued behind it (a
      // later request's filler serves them all).
      if (!running && s.tail == queued_at + 1) --s.tail;
      SpinLockRelease(&g_shared->mutex);
      if (!running)
        return Status::Unavailable(
            "could not start an eloqkv cache filler worker (raise max_worker_processes)");
    }
  } else if (latch != nullptr) {
    (void)CallPostgres(Wake, latch, &err);
  }
  return Status::OK();
}

}  // namespace eloqkv::pg

namespace {

using eloqkv::pg::FillerSlot;

struct FillArgs {
  Oid relid;
  const char* key;
  size_t key_len;
  int64_t refresh_if_fresh_until;
};

// One fill, in a transaction of its own, as the cache's owner. C calls and Lookup only: it runs
// under CallPostgres.
void FillOne(void* arg) {
  auto* a = static_cast<FillArgs*>(arg);
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  Relation rel = try_relation_open(a->relid, AccessShareLock);
  if (rel != nullptr) {
    const eloqkv::pg::KvTable* t = eloqkv::pg::CachedKvTable(rel);
    if (t != nullptr && t->cache) {
      Oid saved_user;
      int saved_context;
      GetUserIdAndSecContext(&saved_user, &saved_context);
      SetUserIdAndSecContext(rel->rd_rel->relowner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
      pgstat_report_activity(STATE_RUNNING, "eloqkv cache fill");
      eloqkv::Engine* engine = eloqkv::pg::ReadyEngine();
      const uint32_t ks = eloqkv::pg::TableKeyspace(engine, t, /*create=*/true);
      char* value = nullptr;
      size_t len = 0;
      (void)eloqkv::cache::Lookup(t, RelationGetDescr(rel), engine, ks, a->key, a->key_len, &value,
                                  &len, a->refresh_if_fresh_until);
      SetUserIdAndSecContext(saved_user, saved_context);
    }
    relation_close(rel, AccessShareLock);
  }
  PopActiveSnapshot();
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, nullptr);
}

eloqkv::pg::Filler* FillerAt(int index) {
  using eloqkv::pg::kFillers;
  return &eloqkv::pg::g_shared->slots[index / kFillers].fillers[index % kFillers];
}

// Before the filler's shared memory goes, whether it ran or failed to connect: it no longer
// counts as running or starting, and what it was filling may be asked for again. Its entry is
// left alone if a newer worker was started for it meanwhile.
void FillerExit(int, Datum arg) {
  using eloqkv::pg::g_shared;
  const auto packed = static_cast<uint64>(DatumGetInt64(arg));
  eloqkv::pg::Filler* self = FillerAt(static_cast<int>(packed & 0xffffffffu));
  const auto generation = static_cast<uint32>(packed >> 32);
  SpinLockAcquire(&g_shared->mutex);
  if (self->generation == generation) {
    self->starting = false;
    if (self->pid == MyProcPid) {
      self->pid = 0;
      self->latch = nullptr;
      self->busy = false;
    }
  }
  SpinLockRelease(&g_shared->mutex);
}

}  // namespace

extern "C" void eloqkv_cache_filler_main(Datum arg) {
  using eloqkv::pg::g_shared;
  // die: a shutdown cancels a source query that is running, as for any backend.
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  const int index = DatumGetInt32(arg);
  uint32 generation;
  std::memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(generation));
  FillerSlot* slot = &g_shared->slots[index / eloqkv::pg::kFillers];
  eloqkv::pg::Filler* self = FillerAt(index);
  // Registered first: a connection that fails (database dropped, say) exits through it too, and
  // its entry stops counting as starting at once.
  before_shmem_exit(FillerExit,
                    Int64GetDatum(static_cast<int64>((static_cast<uint64>(generation) << 32) |
                                                     static_cast<uint32>(index))));
  SpinLockAcquire(&g_shared->mutex);
  const Oid database = slot->database;
  const bool mine = self->generation == generation;
  SpinLockRelease(&g_shared->mutex);
  if (!mine) proc_exit(0);  // came up after a newer filler was started for this entry
  BackgroundWorkerInitializeConnectionByOid(database, InvalidOid, 0);
  SpinLockAcquire(&g_shared->mutex);
  if (self->generation != generation) {
    SpinLockRelease(&g_shared->mutex);
    proc_exit(0);
  }
  self->pid = MyProcPid;
  self->latch = &MyProc->procLatch;
  self->starting = false;
  self->busy = false;
  SpinLockRelease(&g_shared->mutex);

  static eloqkv::pg::FillRequest request;  // static: nothing with a destructor on this frame
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    bool have = false;
    SpinLockAcquire(&g_shared->mutex);
    self->busy = false;
    if (slot->head != slot->tail) {
      request = slot->queue[slot->head % eloqkv::pg::kQueue];
      ++slot->head;
      self->current = request;
      self->busy = true;
      have = true;
    }
    SpinLockRelease(&g_shared->mutex);
    if (have) {
      FillArgs a{request.relid, request.key, request.key_len, request.refresh_if_fresh_until};
      eloqkv::pg::PgError err;
      if (!eloqkv::pg::CallPostgres(FillOne, &a, &err)) {
        AbortCurrentTransaction();
        ereport(LOG,
                (errmsg("eloqkv cache filler: a fill for a RESP reader failed: %s", err.message)));
      }
      continue;
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                    eloqkv::pg::kIdleWaitMs, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
