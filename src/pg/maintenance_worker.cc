// The eloqkv maintenance background worker (see maintenance_worker.h).
#include "pg/maintenance_worker.h"

#include <cinttypes>
#include <cstring>
#include <memory>
#include <optional>

#include "engine/cache_warmer.h"
#include "engine/prefaulter.h"
#include "pg/backup_hold.h"
#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/settings.h"
#include "pg/shared_memory.h"
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

// While the value cache is being warmed after a start: a tick warms for this long, then waits
// this long, so that the warming takes at most half of one core from the clients it serves.
constexpr int64_t kWarmSliceMs = 20;
constexpr long kWarmPauseMs = 20;
constexpr size_t kWarmKeysPerStep = 4096;
// Shared memory made resident per tick after a start (about 10 ms of the kernel zeroing pages),
// with the same pause after it.
constexpr size_t kPrefaultSliceBytes = size_t{16} << 20;

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

// Warms the empty value cache after a start, a slice per tick (engine/cache_warmer.h), and
// logs once when it is done or has failed.
class CacheWarmSchedule {
 public:
  explicit CacheWarmSchedule(eloqkv::Engine* engine)
      : engine_(engine), warmer_(engine), started_ms_(eloqkv::NowMillis()) {}

  // Warms for up to kWarmSliceMs. False once there is nothing more to do.
  bool Tick() {
    if (finished_) return false;
    const int64_t until = eloqkv::NowMillis() + kWarmSliceMs;
    bool done = false;
    uint64_t cache_used = 0, cache_limit = 0;
    PgError err;
    const bool ok = Guarded(&err, [&] {
      eloqkv::Status s;
      while (s.ok() && !done && eloqkv::NowMillis() < until)
        s = warmer_.Step(kWarmKeysPerStep, until, &done);
      if (done) engine_->CacheUsage(&cache_used, &cache_limit);
      return s;
    });
    if (!ok) {
      ereport(WARNING,
              (errcode(err.sqlstate),
               errmsg("eloqkv: warming the value cache stopped after %" PRIu64 " values: %s",
                      warmer_.values_read(), err.message)));
      finished_ = true;
    } else if (done && warmer_.interrupted()) {
      ereport(LOG, (errmsg("eloqkv: warming the value cache stopped after %" PRIu64
                           " values: the engine is no longer ready",
                           warmer_.values_read())));
      finished_ = true;
    } else if (done) {
      // An empty engine (a first start) has nothing to say.
      ereport(warmer_.keys_visited() > 0 ? LOG : DEBUG1,
              (errmsg("eloqkv: value cache warmed in %.1f s: %" PRIu64 " values read, %" PRIu64
                      " keys visited; %" PRIu64 " of %" PRIu64 " MB of cache in use",
                      static_cast<double>(eloqkv::NowMillis() - started_ms_) / 1000.0,
                      warmer_.values_read(), warmer_.keys_visited(), cache_used >> 20,
                      cache_limit >> 20)));
      finished_ = true;
    }
    return !finished_;
  }

 private:
  eloqkv::Engine* engine_;
  eloqkv::CacheWarmer warmer_;
  int64_t started_ms_;
  bool finished_ = false;
};

// Makes the engine's shared memory resident after a start, a slice per tick
// (engine/prefaulter.h), and logs once when it is done or has failed.
class PrefaultSchedule {
 public:
  PrefaultSchedule()
      : prefaulter_(eloqkv::pg::EngineRegion(), eloqkv::pg::EngineRegionBytes()),
        started_ms_(eloqkv::NowMillis()) {}

  // False once there is nothing more to do.
  bool Tick() {
    if (finished_) return false;
    if (!checked_room_) {
      checked_room_ = true;
      const uint64_t available = eloqkv::Prefaulter::AvailableMemory();
      if (prefaulter_.total_bytes() > available) {
        ereport(WARNING,
                (errmsg("eloqkv: shared memory left to be made resident at first use: its %zu MB "
                        "exceed the %" PRIu64 " MB the host and its memory cgroup have available",
                        prefaulter_.total_bytes() >> 20, available >> 20),
                 errhint("Lower eloqkv.cache_memory or eloqkv.index_memory to what the host "
                         "can hold.")));
        finished_ = true;
        return false;
      }
    }
    bool done = false;
    PgError err;
    if (!Guarded(&err, [&] { return prefaulter_.Step(kPrefaultSliceBytes, &done); })) {
      // Not a fault: the memory is then made resident at its first use, as without this.
      ereport(LOG, (errmsg("eloqkv: shared memory left to be made resident at first use after "
                           "%zu of %zu MB: %s",
                           prefaulter_.populated_bytes() >> 20, prefaulter_.total_bytes() >> 20,
                           err.message)));
      finished_ = true;
    } else if (done) {
      ereport(LOG, (errmsg("eloqkv: %zu MB of shared memory made resident in %.1f s",
                           prefaulter_.total_bytes() >> 20,
                           static_cast<double>(eloqkv::NowMillis() - started_ms_) / 1000.0)));
      finished_ = true;
    }
    return !finished_;
  }

 private:
  eloqkv::Prefaulter prefaulter_;
  int64_t started_ms_;
  bool checked_room_ = false;
  bool finished_ = false;
};

}  // namespace

extern "C" void eloqkv_maintenance_main(long) {
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();

  eloqkv::Engine* engine = eloqkv::pg::AttachedEngine();
  RecoverOnce(engine);

  std::unique_ptr<HashSweepSchedule> hash_sweep;  // made inside Guarded: it allocates
  std::unique_ptr<CacheWarmSchedule> cache_warm;
  bool warming = eloqkv::pg::WarmCacheOn();  // once per start, while it is on
  std::optional<PrefaultSchedule> prefault;
  bool prefaulting = eloqkv::pg::PrefaultMemoryOn();  // likewise
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
    // Prefaulting and warming run between ticks, and shorten the wait only while they have work.
    bool prefaulted = false;
    if (prefaulting && !eloqkv::pg::PrefaultMemoryOn()) prefaulting = false;
    if (prefaulting) {
      if (!prefault) prefault.emplace();
      prefaulting = prefaulted = prefault->Tick();
    }
    bool warmed = false;
    if (warming && engine->state() == eloqkv::EngineState::kReady) {
      if (!eloqkv::pg::WarmCacheOn()) {
        warming = false;
      } else {
        if (cache_warm == nullptr && !Guarded(&err, [&] {
              cache_warm = std::make_unique<CacheWarmSchedule>(engine);
              return eloqkv::Status::OK();
            })) {
          ereport(WARNING, (errmsg("eloqkv: the value cache is not warmed: %s", err.message)));
          warming = false;
        }
        if (warming) warming = warmed = cache_warm->Tick();
        if (!warming) cache_warm.reset();
      }
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                    warmed || prefaulted ? kWarmPauseMs : kTickMs, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
