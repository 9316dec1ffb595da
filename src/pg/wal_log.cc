// The primary's half of KV replication: every engine batch goes into WAL as it gets its
// sequence numbers, and the engine syncs nothing that WAL does not already hold durably.
#include <cstring>

#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/replication_shared.h"
#include "pg/wal_records.h"

extern "C" {
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
}

namespace eloqkv::pg {
namespace {

TransactionId g_batch_xid = InvalidTransactionId;   // the transaction the next batch belongs to
TransactionId g_logged_xid = InvalidTransactionId;  // this transaction logged a batch
const std::string* g_batch_images = nullptr;        // before-images for the next batch
uint64 g_batch_compensates = 0;                     // the batch the next one takes back

void LogResolve(uint64 next_xid) {
  if (!XLogIsNeeded()) return;
  WalResolve r;
  r.next_xid = next_xid;
  XLogBeginInsert();
  XLogRegisterData(reinterpret_cast<char*>(&r), sizeof(r));
  const XLogRecPtr end = XLogInsert(kEloqkvRmgrId, kWalResolve);
  XLogSetAsyncXactLSN(end);
}

}  // namespace

// Runs under the engine's write mutex. An ERROR must not longjmp out of it (the engine's C++
// frames and its mutex), so the insertion is a critical section: a failure there is a PANIC, as
// for any WAL insertion Postgres cannot complete.
uint64_t LogEngineBatch(void*, const eloqkv::ReplicatedBatch& batch) {
  if (!XLogIsNeeded()) return 0;  // wal_level = minimal: there can be no standby
  WalBatchHeader h;
  std::memset(&h, 0, sizeof(h));
  h.first_seq = batch.first_seq;
  h.count = batch.count;
  h.xid = g_batch_xid;
  WalBatchExtras x;
  std::memset(&x, 0, sizeof(x));
  x.compensates = g_batch_compensates;
  // Images that would push the record past what WAL readers accept stay out of it: the abort
  // of a live transaction still has them, only crash recovery would not.
  if (g_batch_images != nullptr && !g_batch_images->empty() &&
      batch.records.size() + g_batch_images->size() <= eloqkv::kMaxLoggedBatchSize)
    x.images_length = static_cast<uint32>(g_batch_images->size());
  const bool extras = x.compensates != 0 || x.images_length != 0;
  OpenKvWindow();
  START_CRIT_SECTION();
  XLogBeginInsert();
  XLogRegisterData(reinterpret_cast<char*>(&h), sizeof(h));
  if (extras) XLogRegisterData(reinterpret_cast<char*>(&x), sizeof(x));
  XLogRegisterData(const_cast<char*>(batch.records.data()),
                   static_cast<uint32>(batch.records.size()));
  if (x.images_length != 0)
    XLogRegisterData(const_cast<char*>(g_batch_images->data()), x.images_length);
  const XLogRecPtr end = XLogInsert(kEloqkvRmgrId, extras ? kWalBatchExtras : kWalBatch);
  END_CRIT_SECTION();
  NoteKvWindowEnd(end);
  ReplicationShared* shared = SharedReplication();
  if (shared != nullptr) {
    pg_atomic_write_u64(&shared->logged_lsn, end);
    pg_atomic_write_u64(&shared->logged_seq_end, batch.first_seq + batch.count);
  }
  if (TransactionIdIsValid(g_batch_xid)) g_logged_xid = g_batch_xid;
  return end;
}

// Runs in whichever process leads the engine's group commit, before it syncs, on a thread that
// may call Postgres (the RESP listener syncs on its event loop's thread for this reason).
void FlushWalForEngine(void*, uint64_t wal_position) {
  if (RecoveryInProgress()) return;  // a standby's engine: its WAL is the primary's
  START_CRIT_SECTION();
  XLogFlush(wal_position);
  END_CRIT_SECTION();
}

void SetBatchTransaction(TransactionId xid) {
  g_batch_xid = xid;
}

BatchRecordExtras::BatchRecordExtras(const std::string* images, uint64_t compensates) {
  g_batch_images = images;
  g_batch_compensates = compensates;
}

BatchRecordExtras::~BatchRecordExtras() {
  g_batch_images = nullptr;
  g_batch_compensates = 0;
}

void LogBatchCommit() {
  if (!TransactionIdIsValid(g_logged_xid)) return;
  WalCommit c;
  c.xid = g_logged_xid;
  g_logged_xid = InvalidTransactionId;
  g_batch_xid = InvalidTransactionId;
  XLogBeginInsert();
  XLogRegisterData(reinterpret_cast<char*>(&c), sizeof(c));
  const XLogRecPtr end = XLogInsert(kEloqkvRmgrId, kWalCommit);
  // The commit record before it is durable already; this one lets standbys apply the batch
  // without waiting for the next eloqkv record. Usually the WAL writer sends it soon, as for an
  // asynchronous commit; a session that asked to read its writes on standbys (remote_apply)
  // waits for them to apply it too.
  if (SyncRepRequested() && synchronous_commit >= SYNCHRONOUS_COMMIT_REMOTE_APPLY) {
    XLogFlush(end);
    SyncRepWaitForLSN(end, false);
  } else {
    XLogSetAsyncXactLSN(end);
  }
}

void ForgetBatchTransaction() {
  g_logged_xid = InvalidTransactionId;
  g_batch_xid = InvalidTransactionId;
}

void RestartIfWritesStranded(eloqkv::Engine* engine) {
  if (RecoveryInProgress() || !engine->logged_writes_stranded()) return;
  char failure[512] = "unknown";
  CopyEngineFailure(engine, failure, sizeof(failure));
  // Postgres's own answer when a data file write or sync fails after WAL has the change
  // (data_sync_retry = off): crash recovery, not a retry that may find the page cache lying.
  ereport(
      PANIC,
      (errcode(ERRCODE_IO_ERROR),
       errmsg("eloqkv: KV writes in WAL could not be written to the engine's files: %s", failure),
       errdetail("Only WAL holds them now; crash recovery writes them to the engine again.")));
}

namespace {

// Waits until done() or max_ms passed; interruptible, and ends with the postmaster.
bool WaitUntil(bool (*done)(), int max_ms) {
  for (int ms = 0; ms < max_ms; ++ms) {
    if (done()) return true;
    CHECK_FOR_INTERRUPTS();
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1L,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
  return done();
}

bool TakeBackDone() {
  return pg_atomic_read_u32(&SharedReplication()->undo_due) != kUndoRunning;
}

}  // namespace

void LeaveReplicaModeIfRecovered(eloqkv::Engine* engine, bool may_wait) {
  if (RecoveryInProgress()) return;
  ReplicationShared* shared = SharedReplication();
  // The maintenance worker replays the WAL kept for the engine first (ReplayKeptWalAfterStart).
  // Writes stay refused until then; a backend waits for it rather than fail, a while at most.
  constexpr int kWaitMs = 30000;
  if (!KeptWalReplayed() && (!may_wait || !WaitUntil(KeptWalReplayed, kWaitMs))) return;
  // Whether or not the engine was in replica mode (it is not if it failed to recover).
  if (pg_atomic_read_u64(&shared->resolve_next_xid) != 0) {
    const uint64 resolve = pg_atomic_exchange_u64(&shared->resolve_next_xid, 0);
    if (resolve != 0) LogResolve(resolve);
  }
  uint32 due = pg_atomic_read_u32(&shared->undo_due);
  if (due == kUndoDue && pg_atomic_compare_exchange_u32(&shared->undo_due, &due, kUndoRunning)) {
    // The engine takes writes from here on, the compensating ones first. Other processes wait
    // below rather than read what is about to be taken back; nothing here may end this process
    // before the state is cleared.
    HOLD_INTERRUPTS();
    if (engine->replica()) engine->SetReplica(false);
    TakeBackUncommittedBatches(engine);
    pg_atomic_write_u32(&shared->undo_due, kUndoNone);
    RESUME_INTERRUPTS();
    return;
  }
  if (due == kUndoRunning && (!may_wait || !WaitUntil(TakeBackDone, kWaitMs))) return;
  if (engine->replica()) engine->SetReplica(false);
}
}  // namespace eloqkv::pg
