// Module entry: refuse to load unless preloaded, then set up settings, shared memory and the
// maintenance worker.
#include "cache/cache_source.h"
#include "pg/backup_hold.h"
#include "pg/ddl_hooks.h"
#include "pg/maintenance_worker.h"
#include "pg/resp_worker.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/settings.h"
#include "pg/shared_memory.h"
#include "pg/table_options.h"
#include "pg/xact_callbacks.h"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

void _PG_init(void) {
  if (!process_shared_preload_libraries_in_progress) {
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("eloqkv_fdw must be loaded via shared_preload_libraries"),
             errhint("Add eloqkv_fdw to shared_preload_libraries in postgresql.conf and restart "
                     "the server.")));
  }
  eloqkv::pg::DefineSettings();
  // The engine's own checks (sizes, paths): a bad combination stops the server here, with the
  // reason, rather than at the first query.
  eloqkv::pg::PgError err;
  if (!eloqkv::pg::Guarded(
          &err, [] { return eloqkv::Engine::ValidateOptions(eloqkv::pg::EngineOptions()); })) {
    eloqkv::pg::RaiseError(err, "invalid eloqkv settings");
  }
  eloqkv::pg::InstallSharedMemoryHooks();
  eloqkv::pg::InstallReplicationShmemHooks();
  eloqkv::pg::RegisterWalResourceManager();
  eloqkv::pg::RegisterMaintenanceWorker();
  eloqkv::pg::RegisterCheckpointInterlock();
  eloqkv::pg::RegisterRespWorkers();
  eloqkv::pg::InstallDdlHooks();
  eloqkv::pg::RegisterTransactionCallbacks();
  eloqkv::pg::RegisterSessionBackupWatch();
  eloqkv::pg::RegisterKvTableInvalidation();
  eloqkv::cache::RegisterSourceInvalidation();
}
