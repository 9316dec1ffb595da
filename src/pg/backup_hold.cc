// Holding the engine's files while a base backup copies them (see backup_hold.h).
#include "pg/backup_hold.h"

#include "pg/engine_access.h"
#include "pg/replication_shared.h"

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
bool g_counted = false;  // this session's backup is in the shared count
bool g_exit_hook = false;

void Uncount() {
  if (!g_counted) return;
  pg_atomic_fetch_sub_u32(&SharedReplication()->session_backups, 1);
  g_counted = false;
}

void UncountAtExit(int, Datum) {
  Uncount();
}

// pg_backup_start and pg_backup_stop are functions (builtins: no fmgr hook sees them), run by
// a statement; the session's backup state is checked when any statement ends. Reading it is a
// load of one variable.
void NoteSessionBackup() {
  const bool running = get_backup_status() == SESSION_BACKUP_RUNNING;
  if (running == g_counted) return;
  if (!running) {
    Uncount();
    return;
  }
  if (!g_exit_hook) {
    before_shmem_exit(UncountAtExit, 0);
    g_exit_hook = true;
  }
  // Counted first: the maintenance worker, which releases holds nobody counts, keeps it.
  pg_atomic_fetch_add_u32(&SharedReplication()->session_backups, 1);
  g_counted = true;
  // Taken here, not at the worker's next tick: the client, told the backup started, copies.
  eloqkv::Engine* engine = AttachedEngine();
  if (engine->files_held()) return;  // another backup holds them already
  engine->HoldFiles(true);
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
  if (pg_atomic_read_u32(&SharedReplication()->session_backups) > 0) return true;
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
