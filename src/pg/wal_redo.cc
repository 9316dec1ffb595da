// The standby's half of KV replication: the eloqkv WAL resource manager. Redo applies each
// primary batch to this server's engine in sequence order. A batch written by a transaction
// waits (with every batch after it, so that order holds) until clog says how the transaction
// ended: committed batches are applied, aborted ones only use up their sequence numbers.
//
// Crash recovery of a primary runs the same code: batches its engine already holds (below the
// engine's next sequence number) are skipped, the rest applied.
#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/replication_shared.h"
#include "pg/wal_records.h"

extern "C" {
#include "access/transam.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "lib/stringinfo.h"
#include "postmaster/startup.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace eloqkv::pg {
namespace {

ReplicationShared* g_shared = nullptr;

// LSN_FORMAT_ARGS checks its argument's type with a C-only builtin.
uint32 LsnHigh(XLogRecPtr lsn) {
  return static_cast<uint32>(lsn >> 32);
}
uint32 LsnLow(XLogRecPtr lsn) {
  return static_cast<uint32>(lsn);
}
shmem_request_hook_type g_prev_request = nullptr;
shmem_startup_hook_type g_prev_startup = nullptr;

// ---- the startup process's queue of batches waiting for their transaction ----
struct QueuedBatch {
  QueuedBatch* next;
  TransactionId xid;
  bool aborted;
  uint64 first_seq;
  uint32 count;
  XLogRecPtr start_lsn;
  XLogRecPtr end_lsn;
  size_t length;         // records, then images
  size_t images_length;  // the before-images at the end (WalBatchHeader)
  char records[FLEXIBLE_ARRAY_MEMBER];
};

QueuedBatch* g_head = nullptr;
QueuedBatch* g_tail = nullptr;
uint32 g_waiting = 0;
eloqkv::Engine* g_engine = nullptr;  // attached by rm_startup
TimestampTz g_last_sync = 0;
constexpr long kSyncIntervalMs = 100;

// A standby stops serving KV reads for good (see replay_stop.cc); crash recovery of a primary
// only warns, since refusing every read of a primary would be an outage of its own.
void SetBroken(const char* reason) {
  if (!IsStandby()) {
    ereport(WARNING, (errmsg("eloqkv: KV replay: %s", reason)));
    return;
  }
  SpinLockAcquire(&g_shared->mutex);
  const bool first = !g_shared->broken;
  if (first) {
    g_shared->broken = true;
    snprintf(g_shared->broken_reason, sizeof(g_shared->broken_reason), "%s", reason);
  }
  SpinLockRelease(&g_shared->mutex);
  if (first) {
    PersistReplayStop(reason);
    ereport(WARNING,
            (errmsg("eloqkv: KV replay: %s", reason),
             errhint("KV reads on this standby fail until it is rebuilt from a new base backup "
                     "(or eloqkv.accept_replay_gap() is run).")));
  }
}

// Applies (or, for an aborted transaction, only numbers) one batch. Batches the engine already
// holds are skipped (returns true): they were replayed before a restart, or a primary's engine
// kept them.
bool ApplyBatch(uint64 first_seq, uint32 count, const char* records, size_t length, bool discard,
                XLogRecPtr end_lsn) {
  if (g_engine == nullptr) return false;
  const uint64 next = g_engine->NextSequence();
  if (first_seq + count <= next) return true;
  char reason[400];
  bool allow_gap = false;
  if (first_seq < next) {
    snprintf(reason, sizeof(reason),
             "the batch at %X/%X (sequence numbers %" PRIu64 "-%" PRIu64
             ") overlaps what the engine holds (up to %" PRIu64 ")",
             LsnHigh(end_lsn), LsnLow(end_lsn), first_seq, first_seq + count - 1, next - 1);
    SetBroken(reason);
    return false;
  }
  if (first_seq > next) {
    snprintf(reason, sizeof(reason),
             "KV writes with sequence numbers %" PRIu64 "-%" PRIu64
             " never reached this server's engine (the next batch, at %X/%X, starts at %" PRIu64
             ")",
             next, first_seq - 1, LsnHigh(end_lsn), LsnLow(end_lsn), first_seq);
    SetBroken(reason);
    allow_gap = true;  // later writes still apply; reads stay refused
  }
  PgError err;
  const bool ok = Guarded(&err, [&] {
    return g_engine->ApplyReplicated({std::string_view(records, length), first_seq, count, end_lsn},
                                     discard, allow_gap);
  });
  if (!ok) {
    snprintf(reason, sizeof(reason), "the batch at %X/%X could not be applied: %s",
             LsnHigh(end_lsn), LsnLow(end_lsn), err.message);
    SetBroken(reason);
    return false;
  }
  pg_atomic_write_u64(&g_shared->applied_lsn, end_lsn);
  pg_atomic_write_u64(&g_shared->applied_seq_end, first_seq + count);
  // Applied batches are written, not synced (readers sync for what they read); a periodic sync
  // bounds what a standby crash can take back before a restartpoint passes it.
  const TimestampTz now = GetCurrentTimestamp();
  if (TimestampDifferenceExceeds(g_last_sync, now, kSyncIntervalMs)) {
    g_last_sync = now;
    if (!Guarded(&err, [&] { return g_engine->Flush(); })) {
      snprintf(reason, sizeof(reason), "could not sync the engine: %s", err.message);
      SetBroken(reason);
    }
  }
  return false;
}

// What the WAL retention slot must keep for the queue (see wal_retention.cc).
void PublishWaiting() {
  pg_atomic_write_u64(&g_shared->oldest_waiting_lsn, g_head != nullptr ? g_head->start_lsn : 0);
  pg_atomic_write_u32(&g_shared->waiting, g_waiting);
}

// Applies queued batches from the head while their transactions' outcomes are known.
void Drain() {
  while (g_head != nullptr) {
    QueuedBatch* b = g_head;
    bool discard;
    if (b->aborted) {
      discard = true;
    } else if (!TransactionIdIsValid(b->xid) || TransactionIdDidCommit(b->xid)) {
      discard = false;
    } else if (TransactionIdDidAbort(b->xid)) {
      discard = true;
    } else {
      break;  // still running on the primary
    }
    const size_t records_length = b->length - b->images_length;
    const bool held =
        ApplyBatch(b->first_seq, b->count, b->records, records_length, discard, b->end_lsn);
    // The engine already had the batch of a transaction that never committed: a primary's
    // engine applies it at pre-commit, before the commit record. (A standby's engine holds one
    // only as numbers it used up, or from a base backup: then the primary takes it back.)
    if (held && discard && b->images_length > 0 && !IsStandby())
      CollectUndo(b->first_seq, b->records + records_length, b->images_length);
    g_head = b->next;
    if (g_head == nullptr) g_tail = nullptr;
    --g_waiting;
    pfree(b);
  }
  PublishWaiting();
}

// A batch record (kWalBatch or kWalBatchExtras), parsed.
struct BatchRecord {
  WalBatchHeader h;
  WalBatchExtras x;  // zeros for kWalBatch
  const char* records;
  size_t records_length;  // the before-images (x.images_length bytes) follow the records
};

// False, with why in *error (a static string), when the record is too short for what it says.
bool ParseBatchRecord(uint8 info, const char* data, size_t length, BatchRecord* out,
                      const char** error) {
  std::memset(out, 0, sizeof(*out));
  const size_t header =
      sizeof(WalBatchHeader) + (info == kWalBatchExtras ? sizeof(WalBatchExtras) : 0);
  if (length < header) {
    *error = "batch record too short";
    return false;
  }
  std::memcpy(&out->h, data, sizeof(out->h));
  if (info == kWalBatchExtras) std::memcpy(&out->x, data + sizeof(out->h), sizeof(out->x));
  if (out->x.images_length > length - header) {
    *error = "batch record's images exceed it";
    return false;
  }
  out->records = data + header;
  out->records_length = length - header - out->x.images_length;
  return true;
}

void Enqueue(const BatchRecord& r, XLogRecPtr start_lsn, XLogRecPtr end_lsn) {
  const size_t length = r.records_length + r.x.images_length;
  auto* b = static_cast<QueuedBatch*>(
      MemoryContextAlloc(TopMemoryContext, offsetof(QueuedBatch, records) + length));
  b->next = nullptr;
  b->xid = r.h.xid;
  b->aborted = false;
  b->first_seq = r.h.first_seq;
  b->count = r.h.count;
  b->start_lsn = start_lsn;
  b->end_lsn = end_lsn;
  b->length = length;
  b->images_length = r.x.images_length;
  std::memcpy(b->records, r.records, length);
  if (g_tail != nullptr)
    g_tail->next = b;
  else
    g_head = b;
  g_tail = b;
  ++g_waiting;
  PublishWaiting();
}

extern "C" void EloqkvRedo(XLogReaderState* record) {
  const uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
  const char* data = XLogRecGetData(record);
  const size_t length = XLogRecGetDataLen(record);
  switch (info) {
    case kWalBatch:
    case kWalBatchExtras: {
      BatchRecord r;
      const char* error = nullptr;
      if (!ParseBatchRecord(info, data, length, &r, &error))
        elog(PANIC, "eloqkv: %s (%zu bytes)", error, length);
      if (r.x.compensates != 0 && !IsStandby()) NoteTakenBack(r.x.compensates);
      // Nothing waits and nobody's commit is needed: apply without a copy.
      if (g_head == nullptr && !TransactionIdIsValid(r.h.xid))
        (void)ApplyBatch(r.h.first_seq, r.h.count, r.records, r.records_length, false,
                         record->EndRecPtr);
      else
        Enqueue(r, record->ReadRecPtr, record->EndRecPtr);
      break;
    }
    case kWalCommit:
      break;  // the commit record before it is replayed: Drain finds the transaction committed
    case kWalResolve: {
      WalResolve r;
      if (length < sizeof(r)) elog(PANIC, "eloqkv: resolve record too short (%zu bytes)", length);
      std::memcpy(&r, data, sizeof(r));
      for (QueuedBatch* b = g_head; b != nullptr; b = b->next) {
        const FullTransactionId horizon = FullTransactionIdFromU64(r.next_xid);
        if (TransactionIdIsValid(b->xid) &&
            TransactionIdPrecedes(b->xid, XidFromFullTransactionId(horizon)) &&
            !TransactionIdDidCommit(b->xid))
          b->aborted = true;
      }
      break;
    }
    default:
      elog(PANIC, "eloqkv: unknown WAL record type %u", info);
  }
  Drain();
}

extern "C" void EloqkvDesc(StringInfo buf, XLogReaderState* record) {
  const uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
  const char* data = XLogRecGetData(record);
  const size_t length = XLogRecGetDataLen(record);
  BatchRecord r;
  const char* error = nullptr;
  if (info == kWalBatch || info == kWalBatchExtras) {
    if (!ParseBatchRecord(info, data, length, &r, &error)) {
      appendStringInfo(buf, "%s (%zu bytes)", error, length);
      return;
    }
    appendStringInfo(buf, "seq %" PRIu64 " count %u xid %u bytes %zu", r.h.first_seq, r.h.count,
                     r.h.xid, r.records_length);
    if (r.x.images_length > 0) appendStringInfo(buf, " images %u", r.x.images_length);
    if (r.x.compensates > 0) appendStringInfo(buf, " takes back seq %" PRIu64, r.x.compensates);
  } else if (info == kWalCommit && length >= sizeof(WalCommit)) {
    WalCommit c;
    std::memcpy(&c, data, sizeof(c));
    appendStringInfo(buf, "xid %u", c.xid);
  } else if (info == kWalResolve && length >= sizeof(WalResolve)) {
    WalResolve r;
    std::memcpy(&r, data, sizeof(r));
    appendStringInfo(buf, "next xid %" PRIu64, r.next_xid);
  }
}

extern "C" const char* EloqkvIdentify(uint8 info) {
  switch (info & ~XLR_INFO_MASK) {
    case kWalBatch:
    case kWalBatchExtras:
      return "BATCH";
    case kWalCommit:
      return "COMMIT";
    case kWalResolve:
      return "RESOLVE";
    default:
      return nullptr;
  }
}

// Redo is about to start: this process applies batches from now on, and nobody else writes
// (the engine refuses their writes until Postgres leaves recovery).
extern "C" void EloqkvStartup(void) {
  eloqkv::Engine* e = AttachedEngine();
  // After a crash restart the postmaster starts background workers only once this process is
  // done, so the maintenance worker cannot be the one that recovers the engine: whichever comes
  // first does it (Recover claims the region atomically), and the other waits.
  if (e->state() == eloqkv::EngineState::kFormatted) RecoverEngine(e);
  for (;;) {
    const eloqkv::EngineState st = e->state();
    if (st == eloqkv::EngineState::kReady) break;
    if (st == eloqkv::EngineState::kFailed || st == eloqkv::EngineState::kClosed) {
      SetBroken("the engine is not available, so KV writes are not replayed");
      return;
    }
    HandleStartupProcInterrupts();
    pg_usleep(10000L);
  }
  e->SetReplica(true);
  g_engine = e;
  if (ArchiveRecoveryRequested) ForgetCopiedUndo();
  g_last_sync = GetCurrentTimestamp();
  // Batches that reached WAL before the redo start but maybe not the engine's synced files.
  char problem[sizeof(g_shared->broken_reason)];
  if (!ReplayRetainedWal(EloqkvRedo, problem, sizeof(problem))) SetBroken(problem);
  MarkKeptWalReplayed();  // redo follows, and recovery keeps writes out until its end
}

// Redo is over (promotion, or the end of crash recovery): transactions still undecided will
// never commit.
extern "C" void EloqkvCleanup(void) {
  for (QueuedBatch* b = g_head; b != nullptr; b = b->next) {
    if (TransactionIdIsValid(b->xid) && !TransactionIdDidCommit(b->xid)) b->aborted = true;
  }
  Drain();
  if (g_engine != nullptr) {
    PgError err;
    if (!Guarded(&err, [&] { return g_engine->Flush(); }))
      ereport(WARNING, (errmsg("eloqkv: could not sync the engine after redo: %s", err.message)));
  }
  // Before the end-of-recovery checkpoint moves the redo start past those batches' records.
  PersistCollectedUndo();
  pg_atomic_write_u64(&g_shared->resolve_next_xid,
                      U64FromFullTransactionId(ReadNextFullTransactionId()));
}

RmgrData g_rmgr = {
    .rm_name = kEloqkvRmgrName,
    .rm_redo = EloqkvRedo,
    .rm_desc = EloqkvDesc,
    .rm_identify = EloqkvIdentify,
    .rm_startup = EloqkvStartup,
    .rm_cleanup = EloqkvCleanup,
    .rm_mask = nullptr,
    .rm_decode = nullptr,
};

void RequestShmem() {
  if (g_prev_request != nullptr) g_prev_request();
  RequestAddinShmemSpace(sizeof(ReplicationShared));
  RequestAddinShmemSpace(InterlockShmemSize());
}

void StartupShmem() {
  if (g_prev_startup != nullptr) g_prev_startup();
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  g_shared = static_cast<ReplicationShared*>(
      ShmemInitStruct("eloqkv replication", sizeof(ReplicationShared), &found));
  if (!found) {
    std::memset(g_shared, 0, sizeof(ReplicationShared));
    pg_atomic_init_u64(&g_shared->logged_lsn, 0);
    pg_atomic_init_u64(&g_shared->logged_seq_end, 0);
    pg_atomic_init_u64(&g_shared->applied_lsn, 0);
    pg_atomic_init_u64(&g_shared->applied_seq_end, 0);
    pg_atomic_init_u32(&g_shared->waiting, 0);
    pg_atomic_init_u64(&g_shared->oldest_waiting_lsn, 0);
    pg_atomic_init_u32(&g_shared->retained_replayed, 0);
    pg_atomic_init_u32(&g_shared->retention_active, 0);
    pg_atomic_init_u64(&g_shared->resolve_next_xid, 0);
    pg_atomic_init_u32(&g_shared->undo_due, UndoFileExists() ? kUndoDue : kUndoNone);
    SpinLockInit(&g_shared->mutex);
    g_shared->broken = LoadReplayStop(g_shared->broken_reason, sizeof(g_shared->broken_reason));
  }
  InterlockShmemInit();
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void ReplayKeptWalAfterStart(eloqkv::Engine* engine) {
  g_engine = engine;
  g_last_sync = GetCurrentTimestamp();
  char problem[sizeof(g_shared->broken_reason)];
  if (!ReplayRetainedWal(EloqkvRedo, problem, sizeof(problem))) SetBroken(problem);
  EloqkvCleanup();
  g_engine = nullptr;
  // Only now may writes come in: the queue is drained, the resolve and the take-backs are due.
  // An ERROR before here leaves it unset, and the restarted worker replays again (harmless).
  MarkKeptWalReplayed();
}

ReplicationShared* SharedReplication() {
  return g_shared;
}

void RegisterWalResourceManager() {
  RegisterCustomRmgr(kEloqkvRmgrId, &g_rmgr);
}

void InstallReplicationShmemHooks() {
  g_prev_request = shmem_request_hook;
  shmem_request_hook = RequestShmem;
  g_prev_startup = shmem_startup_hook;
  shmem_startup_hook = StartupShmem;
}

bool ReplayBrokenReason(char* out, size_t size) {
  if (g_shared == nullptr) return false;
  SpinLockAcquire(&g_shared->mutex);
  const bool broken = g_shared->broken;
  if (broken) snprintf(out, size, "%s", g_shared->broken_reason);
  SpinLockRelease(&g_shared->mutex);
  return broken;
}

void RefuseStaleKvReads() {
  char reason[sizeof(g_shared->broken_reason)];
  if (!ReplayBrokenReason(reason, sizeof(reason))) return;
  if (IsStandby())
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("eloqkv tables on this standby are not current"), errdetail("%s", reason),
             errhint("Rebuild the standby from a new base backup; the primary has the rows.")));
  ereport(ERROR,
          (errcode(ERRCODE_DATA_CORRUPTED), errmsg("eloqkv tables on this server are not current"),
           errdetail("Its KV replay stopped while it was a standby: %s", reason),
           errhint("Rebuild it from a base backup of a server that has the rows, or accept what "
                   "it has with eloqkv.accept_replay_gap().")));
}

ReplicationPosition CurrentReplicationPosition() {
  ReplicationPosition p;
  if (g_shared == nullptr) return p;
  p.logged_lsn = pg_atomic_read_u64(&g_shared->logged_lsn);
  p.logged_seq_end = pg_atomic_read_u64(&g_shared->logged_seq_end);
  p.applied_lsn = pg_atomic_read_u64(&g_shared->applied_lsn);
  p.applied_seq_end = pg_atomic_read_u64(&g_shared->applied_seq_end);
  p.waiting = pg_atomic_read_u32(&g_shared->waiting);
  return p;
}

}  // namespace eloqkv::pg
