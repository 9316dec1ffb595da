// Holding the engine's files while a base backup copies them (see backup_hold.h).
#include "pg/backup_hold.h"

#include "pg/engine_access.h"
#include "pg/pg_headers.h"

extern "C" {
#include "access/xlog.h"
#include "commands/progress.h"
#include "executor/executor.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "utils/backend_progress.h"
#include "utils/backend_status.h"
}

namespace eloqkv::pg {
namespace {

ExecutorEnd_hook_type g_prev_executor_end = nullptr;
bool g_holding = false;  // this session's backup holds the engine's files
bool g_exit_hook = false;

void Release() {
  if (!g_holding) return;
  g_holding = false;
  AttachedEngine()->ReleaseFileHold();
  ereport(LOG, (errmsg("eloqkv: the base backup of this session ended; compaction and "
                       "checkpoints resume unless another backup runs")));
}

void ReleaseAtExit(int, Datum) {
  Release();
}

// pg_backup_start and pg_backup_stop are functions (builtins: no fmgr hook sees them), run by
// a statement; the session's backup state is checked when any statement ends. Reading it is a
// load of one variable.
void NoteSessionBackup() {
  const bool running = get_backup_status() == SESSION_BACKUP_RUNNING;
  if (running == g_holding) return;
  if (!running) {
    Release();
    return;
  }
  if (!g_exit_hook) {
    before_shmem_exit(ReleaseAtExit, 0);
    g_exit_hook = true;
  }
  // Taken here, not at the maintenance worker's next tick: the client, told the backup
  // started, copies.
  AttachedEngine()->AddFileHold();
  g_holding = true;
  ereport(LOG, (errmsg("eloqkv: a base backup started (pg_backup_start); compaction and "
                       "checkpoints wait until it ends")));
}

void OnExecutorEnd(QueryDesc* query) {
  if (g_prev_executor_end != nullptr)
    g_prev_executor_end(query);
  else
    standard_ExecutorEnd(query);
  NoteSessionBackup();
}

}  // namespace

void RegisterSessionBackupWatch() {
  g_prev_executor_end = ExecutorEnd_hook;
  ExecutorEnd_hook = OnExecutorEnd;
}

bool BaseBackupInProgress() {
  // pg_basebackup: its walsender reports progress.
  pgstat_clear_backend_activity_snapshot();
  const int n = pgstat_fetch_stat_numbackends();
  for (int i = 1; i <= n; ++i) {
    const LocalPgBackendStatus* local = pgstat_fetch_stat_local_beentry(i);
    if (local != nullptr && local->backendStatus.st_progress_command == PROGRESS_COMMAND_BASEBACKUP)
      return true;
  }
  return false;
}

}  // namespace eloqkv::pg
