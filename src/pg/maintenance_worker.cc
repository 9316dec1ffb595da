// The eloqkv maintenance background worker (see maintenance_worker.h).
#include "pg/maintenance_worker.h"

#include <cinttypes>
#include <cstring>
#include <memory>

#include "pg/backup_hold.h"
#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/settings.h"
#include "pg/worker_spec.h"
#include "resp/hash_sweep.h"

extern "C" {
#include "access/xlog.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/wait_event.h"
}

namespace eloqkv::pg {

void RegisterMaintenanceWorker() {
  BackgroundWorker w =
      WorkerSpec("eloqkv maintenance", "eloqkv maintenance", "eloqkv_maintenance_main",
                 BGWORKER_SHMEM_ACCESS, BgWorkerStart_PostmasterStart, 5);
  RegisterBackgroundWorker(&w);
}

}  // namespace eloqkv::pg

using eloqkv::pg::Guarded;
using eloqkv::pg::PgError;

namespace {

constexpr long kTickMs = 100;
// Field records of dead large hashes examined per tick, and the pause between sweep passes.
constexpr size_t kSweepBudget = 4096;
constexpr int64_t kSweepPassIntervalMs = 10000;

// The last maintenance failure logged; empty after a successful tick.
char g_last_failure[sizeof(PgError::message)] = {0};

// Logs a maintenance failure once per distinct message, so a persistent condition (a full disk)
// does not flood the log ten times a second; the same failure is logged again if it comes back
// after maintenance has succeeded in between.
void ReportTick(bool ok, const PgError& err) {
  if (ok) {
    g_last_failure[0] = '\0';
    return;
  }
  if (std::strcmp(g_last_failure, err.message) == 0) return;
  snprintf(g_last_failure, sizeof(g_last_failure), "%s", err.message);
  ereport(WARNING, (errcode(err.sqlstate), errmsg("eloqkv maintenance: %s", err.message),
                    err.hint[0] ? errhint("%s", err.hint) : 0));
}

// Recovers the region, once per server (re)start, unless the startup process (WAL redo) does.
// Shared memory is rebuilt only by a crash restart; a worker that the postmaster restarts after
// an ERROR exit finds the engine already recovered (or failed) and goes on maintaining it.
void RecoverOnce(eloqkv::Engine* engine) {
  const eloqkv::EngineState state = engine->state();
  if (state != eloqkv::EngineState::kFormatted) {
    ereport(LOG, (errmsg("eloqkv: maintenance worker restarted; the engine is %s",
                         eloqkv::EngineStateName(state))));
    return;
  }
  // No write of its own before the WAL kept for it is replayed (ReplayKeptWalAfterStart, or the
  // startup process's redo): LeaveReplicaModeIfRecovered lifts this.
  engine->SetReplica(true);
  eloqkv::pg::RecoverEngine(engine);
}

// Sweeps the records of dead large RESP hashes a slice per tick, a pass every few seconds.
class HashSweepSchedule {
 public:
  explicit HashSweepSchedule(eloqkv::Engine* engine)
      : sweeper_(engine, eloqkv::pg::ListenerSettings().default_keyspace) {}

  eloqkv::Status Tick() {
    const int64_t now = eloqkv::NowMillis();
    if (now < next_pass_ms_) return eloqkv::Status::OK();
    size_t deleted = 0;
    bool done = false;
    eloqkv::Status s = sweeper_.Step(kSweepBudget, &deleted, &done);
    if (s.ok() && done) next_pass_ms_ = now + kSweepPassIntervalMs;
    return s;
  }

 private:
  eloqkv::resp::HashFieldSweeper sweeper_;
  int64_t next_pass_ms_ = 0;
};

}  // namespace

extern "C" void eloqkv_maintenance_main(long) {
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();

  eloqkv::Engine* engine = eloqkv::pg::AttachedEngine();
  RecoverOnce(engine);

  std::unique_ptr<HashSweepSchedule> hash_sweep;  // made inside Guarded: it allocates
  PgError err;
  for (;;) {
    if (ShutdownRequestPending) {
      // Before Postgres's shutdown checkpoint, after which startup would replay no WAL; the
      // engine's own last sync may be what fails.
      if (engine->state() == eloqkv::EngineState::kReady) {
        eloqkv::pg::RestartIfWritesStranded(engine);
        if (!Guarded(&err, [&] { return engine->Shutdown(); })) {
          ereport(WARNING, (errmsg("eloqkv: shutdown checkpoint failed: %s", err.message)));
          eloqkv::pg::RestartIfWritesStranded(engine);
        }
      }
      proc_exit(0);
    }
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    if (engine->state() == eloqkv::EngineState::kReady) {
      eloqkv::pg::RestartIfWritesStranded(engine);
      if (!RecoveryInProgress() && !eloqkv::pg::KeptWalReplayed())
        eloqkv::pg::ReplayKeptWalAfterStart(engine);
      eloqkv::pg::LeaveReplicaModeIfRecovered(engine);
      // Sessions between pg_backup_start and pg_backup_stop hold the files themselves.
      const bool backup = eloqkv::pg::BaseBackupInProgress();
      if (backup != engine->files_hold_set()) {
        engine->HoldFiles(backup);
        ereport(LOG, (errmsg(backup ? "eloqkv: a base backup started; compaction and checkpoints "
                                      "wait until it ends"
                                    : "eloqkv: the base backup ended; compaction and checkpoints "
                                      "resume")));
      }
      eloqkv::pg::MaintainWalRetention(engine);
      // During recovery the startup process replays batches without syncing each; a tick
      // syncs them. Sweeping dead hash fields writes, which only a primary does.
      const bool recovering = RecoveryInProgress();
      ReportTick(Guarded(&err, [&] {
                   eloqkv::Status s = engine->Tick();
                   if (s.ok() && recovering) s = engine->Flush();
                   if (!s.ok() || recovering) return s;
                   if (hash_sweep == nullptr) hash_sweep = std::make_unique<HashSweepSchedule>(engine);
                   return hash_sweep->Tick();
                 }),
                 err);
    }
    eloqkv::pg::CloseKvWindow();  // what this tick logged (expiries, sweeps) is written out
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kTickMs,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
