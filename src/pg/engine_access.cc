// Each process's lazily attached engine handle, and the wait for the engine to be ready.
#include "pg/engine_access.h"

#include <cinttypes>
#include <memory>

#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/settings.h"
#include "pg/shared_memory.h"

extern "C" {
#include "access/xlog.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
}

namespace eloqkv::pg {
namespace {

constexpr long kReadyTimeoutMs = 60'000;

// Attached once and kept for the life of the process (a static, so no destructor runs in a
// frame an ERROR could skip).
eloqkv::Engine* g_engine = nullptr;

struct LogArgs {
  int elevel;
  const char* message;
};

void EmitLog(void* arg) {
  const auto* a = static_cast<const LogArgs*>(arg);
  ereport(a->elevel, (errmsg_internal("%s", a->message)));
}

// Engine log lines go to the server log. LOG and WARNING never raise, but an out-of-memory while
// formatting could: CallPostgres keeps that from unwinding the engine's C++ frames.
void LogFromEngine(void*, eloqkv::LogLevel level, const char* message) {
  int elevel = LOG;
  switch (level) {
    case eloqkv::LogLevel::kDebug:
      elevel = DEBUG1;
      break;
    case eloqkv::LogLevel::kInfo:
      elevel = LOG;
      break;
    case eloqkv::LogLevel::kWarning:
    case eloqkv::LogLevel::kError:
      elevel = WARNING;
      break;
  }
  LogArgs args{elevel, message};
  PgError ignored;
  (void)CallPostgres(EmitLog, &args, &ignored);
}

}  // namespace

eloqkv::Engine* AttachedEngineIfAny() {
  return g_engine;
}

eloqkv::Engine* AttachedEngine() {
  if (g_engine != nullptr) return g_engine;
  void* region = EngineRegion();
  if (region == nullptr) {
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("eloqkv shared memory is not initialized"),
                    errhint("Add eloqkv_fdw to shared_preload_libraries and restart the server.")));
  }
  PgError err;
  const bool ok = Guarded(&err, [&] {
    eloqkv::Options local;
    local.log = LogFromEngine;
    local.replication_log = LogEngineBatch;
    local.host_flush = FlushWalForEngine;
    std::unique_ptr<eloqkv::Engine> attached;
    eloqkv::Status s = eloqkv::Engine::Attach(region, local, &attached);
    if (s.ok()) g_engine = attached.release();
    return s;
  });
  // Until Postgres leaves recovery, only WAL redo writes (a hot standby's backends may attach
  // before the startup process has begun redo). Lifted by LeaveReplicaModeIfRecovered.
  if (ok && RecoveryInProgress()) g_engine->SetReplica(true);
  if (!ok) RaiseError(err, "could not attach to the eloqkv engine");
  return g_engine;
}

bool IsStandby() {
  return RecoveryInProgress() && GetRecoveryState() == RECOVERY_STATE_ARCHIVE;
}

void RecoverEngine(eloqkv::Engine* engine) {
  PgError err;
  if (!Guarded(&err, [&] { return engine->Recover(); })) {
    if (engine->state() != eloqkv::EngineState::kFailed) return;  // the other process has it
    // Backends report the failure (with this reason) to every caller.
    ereport(LOG, (errmsg("eloqkv: the engine could not be recovered: %s", err.message),
                  errhint("Fix the cause and restart the server; KV tables are unavailable until "
                          "then.")));
    return;
  }
  char summary[256] = {0};
  (void)Guarded(&err, [&] {
    const eloqkv::EngineInfo info = engine->Info();
    snprintf(summary, sizeof(summary),
             "%.0f ms: %" PRIu64 " keys, %" PRIu64 " segments, io %s, sync %s", info.recovery_ms,
             info.keys, info.segments, info.io_mode.c_str(), info.sync.c_str());
    return eloqkv::Status::OK();
  });
  ereport(LOG, (errmsg("eloqkv: engine ready in %s", summary)));
}

void CopyEngineFailure(eloqkv::Engine* engine, char* out, size_t size) {
  PgError err;
  (void)Guarded(&err, [&] {
    snprintf(out, size, "%s", engine->FailureMessage().c_str());
    return eloqkv::Status::OK();
  });
}

eloqkv::Engine* ReadyEngine() {
  eloqkv::Engine* e = AttachedEngine();
  long waited = 0;
  for (;;) {
    const eloqkv::EngineState st = e->state();
    if (st == eloqkv::EngineState::kReady) {
      LeaveReplicaModeIfRecovered(e);
      return e;
    }
    if (st == eloqkv::EngineState::kFailed) {
      PgError err;
      CopyEngineFailure(e, err.detail, sizeof(err.detail));
      err.sqlstate = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
      snprintf(err.message, sizeof(err.message), "the eloqkv engine is not available");
      // Failed means recovery failed or a write hit an I/O error; either way the engine stays
      // down until a restart recovers it from disk.
      snprintf(err.hint, sizeof(err.hint),
               "The server log has the details; fix the cause and restart the server.");
      RaiseError(err);
    }
    if (st == eloqkv::EngineState::kClosed) {
      ereport(ERROR, (errcode(ERRCODE_ADMIN_SHUTDOWN), errmsg("the eloqkv engine is shut down")));
    }
    if (waited >= kReadyTimeoutMs) {
      ereport(ERROR,
              (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
               errmsg("the eloqkv engine is still recovering after %ld seconds", waited / 1000),
               errhint("Try again later; the server log shows recovery progress.")));
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    waited += 10;
  }
}

}  // namespace eloqkv::pg
