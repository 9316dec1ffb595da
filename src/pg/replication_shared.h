// Replication state shared by the processes of one server (replication.h is the interface).
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "port/atomics.h"
#include "storage/spin.h"
}

namespace eloqkv::pg {

struct ReplicationShared {
  pg_atomic_uint64 logged_lsn;
  pg_atomic_uint64 logged_seq_end;
  pg_atomic_uint64 applied_lsn;
  pg_atomic_uint64 applied_seq_end;
  pg_atomic_uint32 waiting;
  pg_atomic_uint64 oldest_waiting_lsn;  // start of the first waiting batch's record (0: none)
  pg_atomic_uint32 retained_replayed;   // the startup process has replayed the slot's WAL
  pg_atomic_uint32 retention_active;    // WalRetentionActive()
  // Nonzero after a crash recovery: the next xid the resolve record carries (never 0: normal
  // xids start at 3). Taken by whoever logs the record.
  pg_atomic_uint64 resolve_next_xid;
  // kUndoDue: batches of transactions that never committed are to be taken back
  // (undo_pending.cc); kUndoRunning while a process does it.
  pg_atomic_uint32 undo_due;
  slock_t mutex;  // broken, broken_reason
  bool broken;    // a standby's KV replay stopped or skipped writes (kept on disk: replay_stop.cc)
  char broken_reason[512];
};

inline constexpr uint32 kUndoNone = 0;
inline constexpr uint32 kUndoDue = 1;
inline constexpr uint32 kUndoRunning = 2;

ReplicationShared* SharedReplication();

}  // namespace eloqkv::pg
