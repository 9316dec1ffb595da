#include <string>

#include "pg/replica_acks.h"

#include "pg/pg_headers.h"

extern "C" {
#include "access/xlog.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/spin.h"
}

namespace eloqkv::pg {

uint64_t PgReplicaAcks::Position() {
  return GetXLogInsertRecPtr();
}

int PgReplicaAcks::Acknowledged(uint64_t position) {
  if (WalSndCtl == nullptr) return 0;
  int acked = 0;
  for (int i = 0; i < max_wal_senders; ++i) {
    WalSnd* sender = &WalSndCtl->walsnds[i];
    SpinLockAcquire(&sender->mutex);
    const pid_t pid = sender->pid;
    const bool flushed = sender->state == WALSNDSTATE_STREAMING && sender->flush >= position;
    SpinLockRelease(&sender->mutex);
    if (pid == 0 || !flushed) continue;
    // A logical walsender (a subscription, pg_recvlogical) is connected to a database; a
    // physical one is not. Its flush position is a subscriber's, not a copy of this server.
    const PGPROC* proc = BackendPidGetProc(pid);
    if (proc != nullptr && proc->databaseId != InvalidOid) continue;
    ++acked;
  }
  return acked;
}

}  // namespace eloqkv::pg
