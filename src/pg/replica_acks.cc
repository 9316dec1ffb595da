#include <string>

#include "pg/replica_acks.h"

#include <algorithm>

#include "pg/pg_guard.h"
#include "pg/pg_headers.h"
#include "pg/replication.h"

extern "C" {
#include "access/xlog.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/spin.h"
}

namespace eloqkv::pg {

namespace {

// What one walsender slot holds, read under its spinlock (C calls only: CallPostgres).
struct SlotRead {
  int index;
  pid_t pid;
  bool streaming;
  XLogRecPtr flush;
};

void ReadSlot(void* arg) {
  auto* r = static_cast<SlotRead*>(arg);
  WalSnd* sender = &WalSndCtl->walsnds[r->index];
  SpinLockAcquire(&sender->mutex);
  r->pid = sender->pid;
  r->streaming = sender->state == WALSNDSTATE_STREAMING;
  r->flush = sender->flush;
  SpinLockRelease(&sender->mutex);
}

// Whether the walsender serves a database: a logical one (a subscription, pg_recvlogical)
// does; a physical one does not.
struct KindRead {
  pid_t pid;
  bool logical;
};

void ReadKind(void* arg) {
  auto* k = static_cast<KindRead*>(arg);
  const PGPROC* proc = BackendPidGetProc(k->pid);
  k->logical = proc != nullptr && proc->databaseId != InvalidOid;
}

struct FlushRead {
  XLogRecPtr flush;
};

void ReadFlush(void* arg) {
  static_cast<FlushRead*>(arg)->flush = GetFlushRecPtr(nullptr);
}

}  // namespace

uint64_t PgReplicaAcks::Position() {
  FlushRead f{0};
  PgError err;
  (void)CallPostgres(ReadFlush, &f, &err);
  return std::max<uint64_t>(CurrentReplicationPosition().logged_lsn, f.flush);
}

void PgReplicaAcks::Refresh() {
  physical_.clear();
  if (WalSndCtl == nullptr) return;
  std::vector<pid_t> seen_logical, seen_physical;
  PgError err;
  for (int i = 0; i < max_wal_senders; ++i) {
    SlotRead r{i, 0, false, 0};
    if (!CallPostgres(ReadSlot, &r, &err) || r.pid == 0 || !r.streaming) continue;
    // A walsender's kind does not change: look each pid up once (ProcArrayLock).
    bool logical;
    if (std::find(logical_.begin(), logical_.end(), r.pid) != logical_.end()) {
      logical = true;
    } else if (std::find(known_physical_.begin(), known_physical_.end(), r.pid) !=
               known_physical_.end()) {
      logical = false;
    } else {
      KindRead k{r.pid, false};
      if (!CallPostgres(ReadKind, &k, &err)) continue;
      logical = k.logical;
    }
    (logical ? seen_logical : seen_physical).push_back(r.pid);
    if (!logical) physical_.push_back({r.pid, r.flush});
  }
  logical_.swap(seen_logical);
  known_physical_.swap(seen_physical);
}

int PgReplicaAcks::Acknowledged(uint64_t position) {
  const auto now = std::chrono::steady_clock::now();
  if (!taken_once_ || now - taken_ >= kSnapshotAge) {
    Refresh();
    taken_ = now;
    taken_once_ = true;
  }
  int acked = 0;
  for (const Sender& s : physical_) acked += s.flush >= position ? 1 : 0;
  return acked;
}

}  // namespace eloqkv::pg
