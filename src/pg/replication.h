// KV replication through Postgres WAL: the primary logs every engine batch (wal_log.cc), standbys
// redo them into their own engine (wal_redo.cc). docs/replication.md describes the guarantees.
#pragma once

#include <cstdint>
#include <string>

#include "engine/eloqkv.h"
#include "pg/pg_headers.h"

extern "C" {
struct XLogReaderState;
}

namespace eloqkv::pg {

// ---- primary side (wal_log.cc) ----
// Engine hooks (Options::replication_log / host_flush), installed on every process's handle.
uint64_t LogEngineBatch(void* context, const eloqkv::ReplicatedBatch& batch);
void FlushWalForEngine(void* context, uint64_t wal_position);
// The transaction whose KV batch the next engine write carries (InvalidTransactionId: none).
void SetBatchTransaction(TransactionId xid);
// While it lives (around one engine write of this process), the batch records this process
// logs carry the before-images of a transaction's keys (kv_undo.h; nullptr: none) and the
// first sequence number of the aborted batch they take back (0: none).
class BatchRecordExtras {
 public:
  BatchRecordExtras(const std::string* images, uint64_t compensates);
  ~BatchRecordExtras();
  BatchRecordExtras(const BatchRecordExtras&) = delete;
  BatchRecordExtras& operator=(const BatchRecordExtras&) = delete;
};
// At commit of a transaction that logged a batch: tells standbys to apply it now.
void LogBatchCommit();
void ForgetBatchTransaction();
// Once Postgres has left recovery, lets the engine take writes again (it took only replayed
// batches until then), logging the resolve record a crash recovery left due. Cheap otherwise.
// may_wait: a backend waits (bounded, interruptibly) for a replay or take-back in progress; a
// RESP worker does not (replica mode refuses its writes meanwhile).
void LeaveReplicaModeIfRecovered(eloqkv::Engine* engine, bool may_wait = true);
// Maintenance worker, every tick and at shutdown: a PANIC when the engine's writes failed while
// batches it had logged were not yet in its files (Engine::logged_writes_stranded). A clean
// shutdown replays no WAL, so those batches would be lost and their sequence numbers reused
// (standbys, which replayed them, would skip the new writes); crash recovery writes them again.
void RestartIfWritesStranded(eloqkv::Engine* engine);

// ---- standby side (wal_redo.cc) ----
void RegisterWalResourceManager();
// Maintenance worker, on a primary whose startup process ran no redo (a clean start, or a crash
// recovery with nothing after the last checkpoint; Postgres calls no resource manager then):
// replays the WAL kept for the engine as the startup process would have, before the engine
// takes its first write. Without it, batches that only WAL holds (the engine failed before
// writing them, or a machine crash took them from the engine's unsynced files) would be lost
// and their sequence numbers handed out again.
void ReplayKeptWalAfterStart(eloqkv::Engine* engine);
// Whether the WAL kept for the engine has been replayed since the server started (and what
// that replay decided is in effect).
bool KeptWalReplayed();
void MarkKeptWalReplayed();
// Raises an ERROR when KV reads cannot give current rows: this server's KV replay, as a
// standby, stopped or skipped writes (it may have been promoted since).
void RefuseStaleKvReads();
// Why KV reads here are refused (false: they are not). For the RESP listener.
bool ReplayBrokenReason(char* out, size_t size);

// ---- batches of transactions that never committed (undo_pending.cc) ----
// A primary's engine applies a transaction's batch at pre-commit, before the commit record: if
// the server crashes in between, crash recovery finds the batch in the engine, and the
// transaction never committed. Its WAL record's before-images take it back (kv_undo.h), once
// the engine takes writes again.
// Startup process, during a primary's crash recovery: the engine held the batch of a
// transaction that did not commit.
void CollectUndo(uint64_t first_seq, const char* images, size_t length);
// ... and a batch that took back the one at `first_seq` (its abort did, or a recovery before).
void NoteTakenBack(uint64_t first_seq);
// Redo of a base backup (a standby, a point-in-time restore): batches that the copied server
// had to take back are its own business; it logs their compensation, and this copy replays it.
void ForgetCopiedUndo();
// At the end of redo: makes what was collected durable, for TakeBackUncommittedBatches.
void PersistCollectedUndo();
// At shared memory initialisation: whether compensating batches are still due.
bool UndoFileExists();
// Once recovery is over, in the first process that lets the engine take writes: writes the
// compensating batches, then forgets them.
void TakeBackUncommittedBatches(eloqkv::Engine* engine);

// ---- the stop, kept on disk (replay_stop.cc) ----
// Startup process, when a standby's replay stops: survives restarts, promotion, base backups.
void PersistReplayStop(const char* reason);
// At shared memory initialisation: the reason recorded before the last restart, if any.
bool LoadReplayStop(char* out, size_t size);

// ---- WAL the engine still needs (wal_retention.cc) ----
inline constexpr const char* kRetentionSlotName = "eloqkv_engine";
// Maintenance worker, every tick: keeps the slot where Engine::Retention says the engine's
// unsynced batches begin (creating it if needed).
void MaintainWalRetention(eloqkv::Engine* engine);
// Whether WAL is kept for the engine (the slot is held and placed): a write is then safe once
// WAL is flushed, before the engine's own sync.
bool WalRetentionActive();
// Startup process, before redo: feeds `redo` the eloqkv records between the slot and the redo
// start, which a crash of the machine may have taken from the engine's files. False (with the
// reason) when that WAL could not be read.
bool ReplayRetainedWal(void (*redo)(XLogReaderState*), char* problem, size_t size);

// ---- checkpoints wait for logged batches to reach the engine's files (checkpoint_interlock.cc)
size_t InterlockShmemSize();
void InterlockShmemInit();
void RegisterCheckpointInterlock();
// LogEngineBatch, before its WAL insertion and after it (with the record's end).
void OpenKvWindow();
void NoteKvWindowEnd(uint64_t wal_end);
// Closes this process's window if the engine's files hold what it logged (or never will).
// Cheap; Guarded() calls it after every engine call.
void CheckKvWindow() noexcept;
// Writes out what this process logged, then closes its window: at transaction end and after
// a maintenance tick, so that no window outlives the work that opened it.
void CloseKvWindow();

// ---- shared state (wal_redo.cc) ----
void InstallReplicationShmemHooks();
struct ReplicationPosition {
  uint64_t logged_lsn = 0;       // primary: end of the last batch record logged
  uint64_t logged_seq_end = 0;   // ... and the sequence number after it
  uint64_t applied_lsn = 0;      // standby: end of the last batch record applied
  uint64_t applied_seq_end = 0;  // ... and the sequence number after it
  uint32_t waiting = 0;          // standby: batches waiting for their transaction's outcome
};
ReplicationPosition CurrentReplicationPosition();

}  // namespace eloqkv::pg
