// The RESP listener's write-out helper (see wal_flusher.h).
#include "pg/wal_flusher.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <new>

#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/settings.h"
#include "pg/pg_headers.h"
#include "pg/worker_spec.h"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/wait_event.h"
}

namespace eloqkv::pg {
namespace {

constexpr int kMaxWorkers = kMaxRespWorkers;
constexpr long kIdleWaitMs = 1000;

struct FlusherShared {
  std::atomic<Latch*> latch;              // the helper's while it runs, else null
  pg_atomic_uint64 requested;             // the furthest position any worker asked for
  // Per worker: the position to wake it at (what its oldest held replies wait for), 0 none.
  pg_atomic_uint64 waiting[kMaxWorkers];
};

FlusherShared* g_shared = nullptr;
// Created by the postmaster, so every worker (and the helper) inherits the same descriptors.
int g_wake_fds[kMaxWorkers];
int g_workers = 0;

void RaiseTo(pg_atomic_uint64* v, uint64_t to) {
  uint64 cur = pg_atomic_read_u64(v);
  while (cur < to && !pg_atomic_compare_exchange_u64(v, &cur, to)) {
  }
}

void Wake(int index) {
  const uint64_t one = 1;
  while (::write(g_wake_fds[index], &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void ClearLatch(int, Datum) {
  if (g_shared != nullptr) g_shared->latch.store(nullptr, std::memory_order_release);
}

// Wakes the workers waiting for positions written out by now (all of them after a failure:
// they find the failure themselves).
void WakeCovered(eloqkv::Engine* engine, bool failed) {
  const uint64_t written = engine->WrittenOutLsn();
  for (int i = 0; i < g_workers; ++i) {
    uint64 w = pg_atomic_read_u64(&g_shared->waiting[i]);
    if (w == 0 || (w > written && !failed)) continue;
    if (pg_atomic_compare_exchange_u64(&g_shared->waiting[i], &w, 0)) Wake(i);
  }
}

}  // namespace

size_t WalFlusherShmemSize() {
  return sizeof(FlusherShared);
}

void WalFlusherShmemInit() {
  bool found = false;
  void* p = ShmemInitStruct("eloqkv wal flusher", sizeof(FlusherShared), &found);
  g_shared = static_cast<FlusherShared*>(p);
  if (found) return;
  new (&g_shared->latch) std::atomic<Latch*>(nullptr);
  pg_atomic_init_u64(&g_shared->requested, 0);
  for (auto& w : g_shared->waiting) pg_atomic_init_u64(&w, 0);
}

void RegisterWalFlusher(int workers) {
  g_workers = std::min(workers, kMaxWorkers);
  for (int i = 0; i < g_workers; ++i) {
    g_wake_fds[i] = ::eventfd(0, EFD_NONBLOCK);
    if (g_wake_fds[i] < 0) {
      ereport(LOG, (errmsg("eloqkv resp: no eventfd for the write-out helper (%m); listener "
                           "workers flush WAL themselves")));
      g_workers = 0;
      return;
    }
  }
  BackgroundWorker w =
      WorkerSpec("eloqkv wal flusher", "eloqkv wal flusher", "eloqkv_wal_flusher_main",
                 BGWORKER_SHMEM_ACCESS, BgWorkerStart_RecoveryFinished, 1);
  RegisterBackgroundWorker(&w);
}

bool PgRemoteWriteOut::Request(uint64_t wake_at, uint64_t lsn) {
  if (g_shared == nullptr || index_ >= g_workers) return false;
  Latch* latch = g_shared->latch.load(std::memory_order_acquire);
  if (latch == nullptr) return false;
  // Published before the latch is set: the helper resets its latch before reading them.
  RaiseTo(&g_shared->waiting[index_], wake_at);
  RaiseTo(&g_shared->requested, lsn);
  SetLatch(latch);
  return true;
}

int PgRemoteWriteOut::event_fd() const {
  return index_ < g_workers ? g_wake_fds[index_] : -1;
}

}  // namespace eloqkv::pg

using eloqkv::pg::Guarded;
using eloqkv::pg::PgError;

extern "C" void eloqkv_wal_flusher_main(long) {
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  // wal_level = minimal logs no batch: the workers' write-outs flush nothing.
  if (!XLogIsNeeded() || eloqkv::pg::g_workers == 0) proc_exit(0);
  eloqkv::Engine* engine = eloqkv::pg::AttachedEngine();
  before_shmem_exit(eloqkv::pg::ClearLatch, 0);
  eloqkv::pg::g_shared->latch.store(MyLatch, std::memory_order_release);
  bool failure_logged = false;
  while (!ShutdownRequestPending) {
    ResetLatch(MyLatch);
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    const uint64_t target = pg_atomic_read_u64(&eloqkv::pg::g_shared->requested);
    bool failed = engine->writes_failed();
    if (!failed && target > engine->WrittenOutLsn()) {
      PgError err;
      failed = !Guarded(&err, [&] { return engine->WriteOut(target); });
      if (failed && !failure_logged) {
        ereport(WARNING, (errmsg("eloqkv wal flusher: %s", err.message)));
        failure_logged = true;
      }
    }
    eloqkv::pg::WakeCovered(engine, failed);
    if (!failed && pg_atomic_read_u64(&eloqkv::pg::g_shared->requested) > engine->WrittenOutLsn())
      continue;  // asked for more meanwhile
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                    eloqkv::pg::kIdleWaitMs, PG_WAIT_EXTENSION);
  }
  proc_exit(1);  // not 0: terminated on its own, the postmaster starts it again
}
