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
}

namespace eloqkv::pg {
namespace {

TransactionId g_batch_xid = InvalidTransactionId;   // the transaction the next batch belongs to
TransactionId g_logged_xid = InvalidTransactionId;  // this transaction logged a batch
const std::string* g_batch_images = nullptr;        // before-images for the next batch

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
  // Images that would push the record past what WAL readers accept stay out of it: the abort
  // of a live transaction still has them, only crash recovery would not.
  const bool with_images =
      g_batch_images != nullptr && !g_batch_images->empty() &&
      batch.records.size() + g_batch_images->size() <= eloqkv::kMaxLoggedBatchSize;
  h.images_length = with_images ? static_cast<uint32>(g_batch_images->size()) : 0;
  OpenKvWindow();
  START_CRIT_SECTION();
  XLogBeginInsert();
  XLogRegisterData(reinterpret_cast<char*>(&h), sizeof(h));
  XLogRegisterData(const_cast<char*>(batch.records.data()),
                   static_cast<uint32>(batch.records.size()));
  if (with_images) XLogRegisterData(const_cast<char*>(g_batch_images->data()), h.images_length);
  const XLogRecPtr end = XLogInsert(kEloqkvRmgrId, kWalBatch);
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

void SetBatchImages(const std::string* images) {
  g_batch_images = images;
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

void LeaveReplicaModeIfRecovered(eloqkv::Engine* engine) {
  if (RecoveryInProgress()) return;
  ReplicationShared* shared = SharedReplication();
  // Whether or not the engine was in replica mode (it is not if it failed to recover).
  if (pg_atomic_read_u64(&shared->resolve_next_xid) != 0) {
    const uint64 resolve = pg_atomic_exchange_u64(&shared->resolve_next_xid, 0);
    if (resolve != 0) LogResolve(resolve);
  }
  if (engine->replica()) engine->SetReplica(false);
  if (pg_atomic_read_u32(&shared->undo_due) != 0 &&
      pg_atomic_exchange_u32(&shared->undo_due, 0) != 0)
    TakeBackUncommittedBatches(engine);
}
}  // namespace eloqkv::pg
