// Keeping the WAL the engine still needs. A batch is in WAL (flushed) before it reaches the
// engine's files, but the engine syncs those files on its own schedule, and a checkpoint may
// recycle WAL the engine has not synced yet: after a crash of the machine, neither would hold
// the batch. A physical replication slot, eloqkv_engine, holds WAL from the first batch not yet
// durable in the engine (Engine::Retention); after a crash, the startup process replays the
// eloqkv records between the slot and the redo start before redo proper begins.
//
// The maintenance worker owns the slot (it shows as active in pg_replication_slots) and moves it
// every tick, on primaries and standbys alike, once the startup process has read it.
#include <unistd.h>

#include <cinttypes>
#include <cstring>

#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/replication_shared.h"
#include "pg/settings.h"
#include "pg/wal_records.h"

extern "C" {
#include "access/timeline.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogrecovery.h"
#include "access/xlogutils.h"
#include "miscadmin.h"
#include "replication/slot.h"
}

namespace eloqkv::pg {
namespace {

uint32 High(XLogRecPtr lsn) {
  return static_cast<uint32>(lsn >> 32);
}
uint32 Low(XLogRecPtr lsn) {
  return static_cast<uint32>(lsn);
}

XLogRecPtr SlotRestartLsn(ReplicationSlot* slot) {
  SpinLockAcquire(&slot->mutex);
  const XLogRecPtr lsn = slot->data.restart_lsn;
  SpinLockRelease(&slot->mutex);
  return lsn;
}

// ---- the maintenance worker's side ----

struct SlotMove {
  XLogRecPtr target;
  bool create;
};

// C calls only (CallPostgres): takes the slot, creating it at `target` if it does not exist.
void TakeSlot(void* arg) {
  auto* m = static_cast<SlotMove*>(arg);
  if (SearchNamedReplicationSlot(kRetentionSlotName, true) == nullptr) {
    ReplicationSlotCreate(kRetentionSlotName, false, RS_PERSISTENT, false);
    m->create = true;
    SpinLockAcquire(&MyReplicationSlot->mutex);
    MyReplicationSlot->data.restart_lsn = m->target;
    SpinLockRelease(&MyReplicationSlot->mutex);
    ReplicationSlotMarkDirty();
    ReplicationSlotSave();
    ReplicationSlotsComputeRequiredLSN();
  } else {
    ReplicationSlotAcquire(kRetentionSlotName, true);
  }
}

// C calls only: moves the held slot forward to `target`. The state file is rewritten whenever
// the slot enters another WAL segment, before the new position is published to the checkpointer:
// a crash then finds on disk a position whose segment the checkpointer has kept.
void MoveSlot(void* arg) {
  auto* m = static_cast<SlotMove*>(arg);
  ReplicationSlot* slot = MyReplicationSlot;
  const XLogRecPtr old = SlotRestartLsn(slot);
  if (old != InvalidXLogRecPtr && m->target <= old) return;
  SpinLockAcquire(&slot->mutex);
  slot->data.restart_lsn = m->target;
  SpinLockRelease(&slot->mutex);
  ReplicationSlotMarkDirty();
  XLogSegNo old_seg, new_seg;
  XLByteToSeg(old, old_seg, wal_segment_size);
  XLByteToSeg(m->target, new_seg, wal_segment_size);
  if (old == InvalidXLogRecPtr || old_seg != new_seg) ReplicationSlotSave();
  ReplicationSlotsComputeRequiredLSN();
}

void SetActive(bool active) {
  pg_atomic_write_u32(&SharedReplication()->retention_active, active ? 1 : 0);
}

}  // namespace

bool WalRetentionActive() {
  ReplicationShared* shared = SharedReplication();
  return shared != nullptr && pg_atomic_read_u32(&shared->retention_active) != 0;
}

void MaintainWalRetention(eloqkv::Engine* engine) {
  static bool warned = false;
  static bool sync_always = EngineOptions().sync == eloqkv::SyncPolicy::kAlways;
  ReplicationShared* shared = SharedReplication();
  // wal_level = minimal logs no batch; sync = interval/off promise no durability to keep.
  if (!XLogIsNeeded() || !sync_always) return;
  if (max_replication_slots == 0) {
    if (!warned) {
      warned = true;
      ereport(WARNING,
              (errmsg("eloqkv: max_replication_slots is 0, so WAL that KV writes may still need "
                      "is not kept"),
               errdetail("RESP writes are acknowledged after the engine's own sync instead of "
                         "after the WAL flush alone, which is slower."),
               errhint("Set max_replication_slots to at least 1 more than replication needs.")));
    }
    return;
  }
  // Until the startup process has replayed what the slot kept (crash recovery, or a standby's
  // start), the slot must stay where the last crash left it.
  if (RecoveryInProgress() && pg_atomic_read_u32(&shared->retained_replayed) == 0) return;

  // Read the WAL position before the engine's state: a batch logged after this read starts at
  // or after it, and one logged before is counted as pending.
  const XLogRecPtr now =
      RecoveryInProgress() ? GetXLogReplayRecPtr(nullptr) : GetXLogInsertRecPtr();
  pg_memory_barrier();
  const eloqkv::Engine::HostRetention r = engine->Retention();
  SlotMove m{now, false};
  if (r.pending) m.target = r.durable_host;  // 0: none durable yet, so keep the slot where it is
  const XLogRecPtr waiting = pg_atomic_read_u64(&shared->oldest_waiting_lsn);
  if (waiting != 0 && (m.target == 0 || waiting < m.target)) m.target = waiting;

  PgError err;
  if (MyReplicationSlot == nullptr) {
    SlotMove create{m.target != 0 ? m.target : GetRedoRecPtr(), false};
    if (!CallPostgres(TakeSlot, &create, &err)) {
      if (!warned) {
        warned = true;
        ereport(WARNING, (errmsg("eloqkv: could not take replication slot \"%s\": %s",
                                 kRetentionSlotName, err.message)));
      }
      SetActive(false);
      return;
    }
    warned = false;
    if (create.create)
      ereport(LOG, (errmsg("eloqkv: created replication slot \"%s\" to keep the WAL that KV "
                           "writes not yet synced by the engine need",
                           kRetentionSlotName)));
  }
  if (m.target != 0 && !CallPostgres(MoveSlot, &m, &err)) {
    ereport(WARNING, (errmsg("eloqkv: could not move replication slot \"%s\": %s",
                             kRetentionSlotName, err.message)));
    SetActive(false);
    return;
  }
  SetActive(SlotRestartLsn(MyReplicationSlot) != InvalidXLogRecPtr);
}

// ---- the startup process's side ----
namespace {

struct RetainedWal {
  XLogRecPtr from;
  XLogRecPtr to;
  void (*redo)(XLogReaderState*);
  List* history;
  // Freed by the caller whatever happened: an ERROR out of a segment's open or a record's redo
  // would otherwise leave the reader, and the descriptor of its open segment, behind.
  XLogReaderState* reader;
  uint64 replayed;
  char problem[MAXPGPATH + 200];
};

int ReadRetainedPage(XLogReaderState* state, XLogRecPtr page, int, XLogRecPtr, char* buf) {
  auto* w = static_cast<RetainedWal*>(state->private_data);
  XLogSegNo seg;
  XLByteToSeg(page, seg, wal_segment_size);
  TimeLineID tli = tliOfPointInHistory(page, w->history);
  char path[MAXPGPATH];
  XLogFilePath(path, tli, seg, wal_segment_size);
  if (access(path, R_OK) != 0) {
    snprintf(w->problem, sizeof(w->problem), "WAL segment %s is gone", path);
    return -1;
  }
  WALReadError e;
  if (!WALRead(state, buf, page, XLOG_BLCKSZ, tli, &e)) {
    snprintf(w->problem, sizeof(w->problem), "could not read WAL segment %s", path);
    return -1;
  }
  return XLOG_BLCKSZ;
}

// C calls only (CallPostgres).
void ReadRetained(void* arg) {
  auto* w = static_cast<RetainedWal*>(arg);
  // The startup process replays toward recoveryTargetTLI; another process (a start without
  // redo, after recovery) reads the timeline WAL is written on now.
  w->history =
      readTimeLineHistory(AmStartupProcess() ? recoveryTargetTLI : GetWALInsertionTimeLine());
  XLogReaderRoutine routine;
  std::memset(&routine, 0, sizeof(routine));
  routine.page_read = ReadRetainedPage;
  routine.segment_open = wal_segment_open;
  routine.segment_close = wal_segment_close;
  XLogReaderState* reader = XLogReaderAllocate(wal_segment_size, nullptr, &routine, w);
  if (reader == nullptr) elog(ERROR, "out of memory allocating a WAL reader");
  w->reader = reader;
  const XLogRecPtr first = XLogFindNextRecord(reader, w->from);
  if (first == InvalidXLogRecPtr) {
    elog(ERROR, "no WAL record found at or after %X/%X (%s)", High(w->from), Low(w->from),
         w->problem[0] ? w->problem : "end of WAL");
  }
  XLogBeginRead(reader, first);
  for (;;) {
    char* message = nullptr;
    XLogRecord* record = XLogReadRecord(reader, &message);
    if (record == nullptr) {
      const XLogRecPtr at = reader->EndRecPtr;
      elog(ERROR, "WAL ends at %X/%X before the redo start %X/%X (%s)", High(at), Low(at),
           High(w->to), Low(w->to), message ? message : (w->problem[0] ? w->problem : "no record"));
    }
    if (reader->ReadRecPtr >= w->to) break;
    if (XLogRecGetRmid(reader) == kEloqkvRmgrId) {
      w->redo(reader);
      ++w->replayed;
    }
  }
}

// C calls only (CallPostgres).
void FreeRetainedReader(void* arg) {
  auto* w = static_cast<RetainedWal*>(arg);
  if (w->reader != nullptr) XLogReaderFree(w->reader);  // closes its open segment too
  w->reader = nullptr;
}

}  // namespace

bool KeptWalReplayed() {
  return pg_atomic_read_u32(&SharedReplication()->retained_replayed) != 0;
}

void MarkKeptWalReplayed() {
  pg_atomic_write_u32(&SharedReplication()->retained_replayed, 1);
}

bool ReplayRetainedWal(void (*redo)(XLogReaderState*), char* problem, size_t size) {
  ReplicationSlot* slot = SearchNamedReplicationSlot(kRetentionSlotName, true);
  RetainedWal w;
  std::memset(&w, 0, sizeof(w));
  w.from = slot != nullptr ? SlotRestartLsn(slot) : InvalidXLogRecPtr;
  w.to = GetRedoRecPtr();
  w.redo = redo;
  bool ok = true;
  if (w.from != InvalidXLogRecPtr && w.from < w.to) {
    PgError err;
    ok = CallPostgres(ReadRetained, &w, &err);
    PgError free_err;
    (void)CallPostgres(FreeRetainedReader, &w, &free_err);
    if (!ok) {
      snprintf(problem, size, "the WAL kept for KV writes from %X/%X could not be replayed: %s",
               High(w.from), Low(w.from), err.message);
    } else {
      ereport(LOG, (errmsg("eloqkv: replayed %" PRIu64
                           " KV records from the WAL kept between %X/%X and the redo start %X/%X",
                           w.replayed, High(w.from), Low(w.from), High(w.to), Low(w.to))));
    }
  }
  return ok;
}

}  // namespace eloqkv::pg
