// Checkpoints wait for KV batches logged before their redo point to be in the engine's files.
//
// A batch is in WAL a moment before it is in the engine's files (WAL first, as for any data
// page). A base backup copies the files after its checkpoint and brings WAL from the redo point
// on, so a batch logged before the redo point must be in the files before the checkpoint ends.
// Postgres's interlock for this, DELAY_CHKPT_START, counts only processes with a virtual
// transaction id, which the RESP listener and the maintenance worker (not connected to a
// database, so that they can answer during recovery) do not have. So:
//  * every process publishes the oldest redo pointer it saw before logging a batch that the
//    engine's files do not hold yet (Engine::HostWritten), 0 when there is none. A process that
//    logs without pause (a busy RESP listener) always has such a batch, so the value moves up
//    as its older batches reach the files rather than waiting for all of them to;
//  * one connected worker, the interlock, keeps DELAY_CHKPT_START set, and renews its virtual
//    transaction id only while no window opened before the current redo pointer is open. A
//    checkpoint that saw the old id waits exactly until those windows close.
// A window that stays open longer than kStuckWindowMs is given up on with a WARNING, so that a
// bug here delays checkpoints by seconds, never stops them.
#include <algorithm>
#include <cstring>

#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/worker_spec.h"

extern "C" {
#include "access/twophase.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/sinvaladt.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void eloqkv_interlock_main(Datum);
}

namespace eloqkv::pg {
namespace {

constexpr long kRenewMs = 5;
constexpr long kStuckWindowMs = 10000;

struct InterlockShared {
  int slots;
  pg_atomic_uint64 opened_at[FLEXIBLE_ARRAY_MEMBER];  // by pgprocno: redo pointer seen, 0 closed
};

InterlockShared* g_interlock = nullptr;
bool g_exit_hook = false;

// This process's batches not known to be in the engine's files, grouped by the redo pointer
// seen before logging them: in log order, so both fields grow from front to back. A group is
// added only when a checkpoint began since the last batch, so a few cover any real interval;
// when they run out the newest group absorbs the next (covering it by an older redo pointer
// only makes a checkpoint wait for it too).
struct Pending {
  uint64_t redo;  // redo pointer seen before logging the group's first batch
  uint64_t end;   // WAL end of its last batch
};
constexpr int kMaxPending = 8;
Pending g_pending[kMaxPending];
int g_pending_count = 0;
uint64_t g_logging_redo = 0;  // seen by OpenKvWindow for the batch being logged

bool WindowOpen() {
  return g_pending_count > 0 || g_logging_redo != 0;
}

int SlotCount() {
  return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

pg_atomic_uint64* MySlot() {
  if (g_interlock == nullptr || MyProc == nullptr || MyProc->pgprocno >= g_interlock->slots)
    return nullptr;
  return &g_interlock->opened_at[MyProc->pgprocno];
}

void Close() {
  if (pg_atomic_uint64* slot = MySlot()) pg_atomic_write_u64(slot, 0);
  g_pending_count = 0;
  g_logging_redo = 0;
}

// Drops the groups the engine's files hold now, and publishes the oldest redo pointer left.
void Advance(uint64_t host_written) {
  int done = 0;
  while (done < g_pending_count && g_pending[done].end <= host_written) ++done;
  if (done == 0) return;
  if (done == g_pending_count && g_logging_redo == 0) {
    Close();
    return;
  }
  std::memmove(g_pending, g_pending + done, sizeof(Pending) * (g_pending_count - done));
  g_pending_count -= done;
  // Only ever raised: every batch logged before the new value is in the files.
  const uint64_t oldest = g_pending_count > 0 ? g_pending[0].redo : g_logging_redo;
  if (pg_atomic_uint64* slot = MySlot()) pg_atomic_write_u64(slot, oldest);
}

void CloseAtExit(int, Datum) {
  Close();
}

}  // namespace

size_t InterlockShmemSize() {
  return add_size(offsetof(InterlockShared, opened_at),
                  mul_size(sizeof(pg_atomic_uint64), SlotCount()));
}

void InterlockShmemInit() {
  bool found = false;
  g_interlock = static_cast<InterlockShared*>(
      ShmemInitStruct("eloqkv checkpoint interlock", InterlockShmemSize(), &found));
  if (found) return;
  g_interlock->slots = SlotCount();
  for (int i = 0; i < g_interlock->slots; ++i) pg_atomic_init_u64(&g_interlock->opened_at[i], 0);
}

void OpenKvWindow() {
  pg_atomic_uint64* slot = MySlot();
  if (slot == nullptr) return;
  if (!g_exit_hook) {
    before_shmem_exit(CloseAtExit, 0);
    g_exit_hook = true;
  }
  // GetRedoRecPtr is never 0 once the server runs.
  g_logging_redo = GetRedoRecPtr();
  if (g_pending_count > 0) return;  // published already, as an older (smaller) redo pointer
  // The barrier orders the slot before the WAL insertion that follows.
  pg_atomic_write_u64(slot, g_logging_redo);
  pg_memory_barrier();
}

void NoteKvWindowEnd(uint64_t wal_end) {
  if (g_logging_redo == 0) return;
  Pending* last = g_pending_count > 0 ? &g_pending[g_pending_count - 1] : nullptr;
  if (last != nullptr && (last->redo == g_logging_redo || g_pending_count == kMaxPending)) {
    last->end = std::max(last->end, wal_end);
  } else {
    g_pending[g_pending_count++] = Pending{g_logging_redo, wal_end};
  }
  g_logging_redo = 0;
}

void CheckKvWindow() noexcept {
  if (!WindowOpen()) return;
  eloqkv::Engine* engine = AttachedEngineIfAny();
  // A failed engine will never write the batch: nothing to wait for, unless only WAL holds
  // it, when the maintenance worker's PANIC is coming and crash recovery must start before it.
  if (engine == nullptr || (engine->writes_failed() && !engine->logged_writes_stranded()) ||
      engine->state() == eloqkv::EngineState::kFailed) {
    Close();
    return;
  }
  Advance(engine->HostWritten());
}

void CloseKvWindow() {
  if (!WindowOpen()) return;
  eloqkv::Engine* engine = AttachedEngineIfAny();
  PgError err;
  if (engine != nullptr && g_pending_count > 0 &&
      engine->HostWritten() < g_pending[g_pending_count - 1].end &&
      !Guarded(&err, [&] { return engine->WriteOutAll(); }))
    ereport(WARNING, (errmsg("eloqkv: KV batches could not be written out: %s", err.message)));
  Close();
}

void RegisterCheckpointInterlock() {
  // From the end of recovery: restartpoints do not wait for anyone.
  BackgroundWorker w = WorkerSpec("eloqkv checkpoint interlock", "eloqkv checkpoint interlock",
                                  "eloqkv_interlock_main",
                                  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
                                  BgWorkerStart_RecoveryFinished, 1);
  RegisterBackgroundWorker(&w);
}

}  // namespace eloqkv::pg

namespace {

// Whether a window opened before `redo` is still open.
bool OldWindowOpen(XLogRecPtr redo) {
  using eloqkv::pg::g_interlock;
  for (int i = 0; i < g_interlock->slots; ++i) {
    const uint64 at = pg_atomic_read_u64(&g_interlock->opened_at[i]);
    if (at != 0 && at < redo) return true;
  }
  return false;
}

}  // namespace

extern "C" void eloqkv_interlock_main(Datum) {
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  if (!XLogIsNeeded()) proc_exit(0);  // wal_level = minimal: no batch is logged
  // No database: only the virtual transaction id that connecting gives matters here.
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);

  MyProc->lxid = GetNextLocalTransactionId();
  MyProc->delayChkptFlags |= DELAY_CHKPT_START;
  TimestampTz blocked_since = 0;
  while (!ShutdownRequestPending) {
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    const XLogRecPtr redo = GetRedoRecPtr();
    pg_memory_barrier();
    bool renew = !OldWindowOpen(redo);
    if (!renew) {
      const TimestampTz now = GetCurrentTimestamp();
      if (blocked_since == 0) blocked_since = now;
      if (TimestampDifferenceExceeds(blocked_since, now, eloqkv::pg::kStuckWindowMs)) {
        ereport(WARNING,
                (errmsg("eloqkv: a KV write logged before the checkpoint at %X/%X is still not in "
                        "the engine's files after %ld ms; the checkpoint goes on without it",
                        static_cast<uint32>(redo >> 32), static_cast<uint32>(redo),
                        eloqkv::pg::kStuckWindowMs),
                 errdetail("A base backup started by this checkpoint may miss that write.")));
        renew = true;
      }
    }
    if (renew) {
      blocked_since = 0;
      MyProc->lxid = GetNextLocalTransactionId();  // a checkpoint waiting on the old id goes on
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, eloqkv::pg::kRenewMs,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    // A connected process: it must absorb procsignal barriers (DROP DATABASE waits for them).
    CHECK_FOR_INTERRUPTS();
  }
  MyProc->delayChkptFlags &= ~DELAY_CHKPT_START;
  MyProc->lxid = InvalidLocalTransactionId;
  proc_exit(1);  // not 0: terminated on its own (pg_terminate_backend), the postmaster restarts it
}
