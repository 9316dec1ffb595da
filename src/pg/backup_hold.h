// Holding the engine's files while a base backup copies the data directory.
//
// A file-level copy lists the engine's segment and checkpoint files and reads them one by one;
// compaction deletes a segment once its live records are copied further on, and a checkpoint
// deletes older checkpoints. A file the copy listed and then lost takes its records with it
// (WAL replays only what was logged after the backup's redo point). The engine's file holds stop
// both for as long as a backup may be copying.
//
// Invariants:
//  * A session between pg_backup_start() and pg_backup_stop() (how pgBackRest, Barman and
//    WAL-G take backups) holds the files itself (Engine::AddFileHold), from before the call's
//    result reaches the client until the backup stops or the session ends.
//  * pg_basebackup is seen by its walsender's progress report, within one maintenance tick;
//    the maintenance worker's hold (Engine::HoldFiles) is separate from the sessions'.
#pragma once

namespace eloqkv::pg {

// In _PG_init: every backend watches its own session for a backup.
void RegisterSessionBackupWatch();
// Maintenance worker: whether pg_basebackup is copying the data directory.
bool BaseBackupInProgress();

}  // namespace eloqkv::pg
