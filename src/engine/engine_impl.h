// Engine::Impl: one process's view of the shared engine, and the internal interface shared by
// the write path, read path, checkpoint, recovery and compaction files.
//
// Invariant: everything here that is shared lives in the region (RegionHeader and the tables it
// locates); members of Impl itself are process-local caches of that state.
#pragma once

#include <cstdarg>
#include <memory>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/data_dir_lock.h"
#include "engine/eloqkv.h"
#include "engine/index.h"
#include "engine/io.h"
#include "engine/keyspaces.h"
#include "engine/record.h"
#include "engine/region.h"
#include "engine/segments.h"
#include "engine/value_cache.h"

namespace eloqkv {

// The encoded form of a WriteBatch.
struct WriteBatch::Rep {
  struct Op {
    size_t offset = 0;  // of the record in `data`
    size_t size = 0;
    RecordType type = RecordType::kPut;
    uint32_t keyspace = 0;
    uint16_t key_len = 0;
    uint32_t value_len = 0;
    int64_t expire_at_ms = 0;
    WriteCondition cond = WriteCondition::kNone;
    OnConditionFailure on_fail = OnConditionFailure::kFailBatch;
    uint64_t expected_seq = 0;
    bool relocation = false;  // compaction copy (puts apply only if the entry is still at old_*)
    uint32_t old_segment = 0;
    uint32_t old_offset = 0;
    KeyspaceRecord keyspace_record;  // RecordType::kKeyspace
    bool own_origin = false;         // set_origin_from: reported with `origin`, not the batch's
    uint64_t origin = 0;
  };
  std::string data;
  std::vector<Op> ops;
  size_t max_key = 0;
  uint64_t origin = 0;
  // A primary's batch applied by a standby: records keep the primary's sequence numbers
  // (starting at replicated_first_seq) and keyspace ids, and the batch is not logged again.
  bool replicated = false;
  bool allow_gap = false;
  uint64_t replicated_first_seq = 0;
  uint64_t replicated_host_end = 0;

  uint64_t origin_of(const Op& op) const { return op.own_origin ? op.origin : origin; }
  std::string_view key(const Op& op) const {
    return std::string_view(data).substr(op.offset + kRecordHeaderSize, op.key_len);
  }
  std::string_view value(const Op& op) const {
    return std::string_view(data).substr(op.offset + kRecordHeaderSize + op.key_len, op.value_len);
  }
};

class WriteBatchInternal {
 public:
  static WriteBatch::Rep* rep(WriteBatch& b) { return b.rep_.get(); }
  // Appends a catalog record.
  static void AddKeyspaceRecord(WriteBatch& b, std::string_view name, const KeyspaceRecord& r);
  // Appends a compaction copy of a put found at (segment, offset); it applies only if the entry
  // still points there.
  static void AddRelocation(WriteBatch& b, const RecordView& rec, uint32_t segment,
                            uint32_t offset);
  // Appends a compaction copy of a delete or retirement record (no index effect; replay needs
  // it while its segment is above the compaction horizon).
  static void AddCarry(WriteBatch& b, const RecordView& rec);
  // Appends a record saying that `segment` was compacted away.
  // retired_at_ms: no key whose entry was removed as expired before now expires after it.
  static void AddRetire(WriteBatch& b, uint32_t segment, int64_t retired_at_ms);
};

// A contiguous range of the log reserved for one ticket.
struct LogPiece {
  uint32_t segment = 0;
  uint64_t offset = 0;
  size_t length = 0;
  uint64_t ticket = 0;
  uint64_t stage_pos = UINT64_MAX;  // position in the log buffer, or UINT64_MAX if written directly
};

// What ReserveLog set aside for a batch: maybe the seal of the previous segment, then padding
// and the batch itself.
struct LogReservation {
  bool sealed_previous = false;
  LogPiece seal;
  LogPiece batch;  // padding + records
  size_t pad = 0;
  uint64_t data_offset = 0;
  uint64_t end_lsn = 0;
  uint32_t durable_segment = 0;
  uint64_t host_end = 0;  // the host's log position past the batch (0: not logged)
};

struct Engine::Impl {
  // ---- attachment ----
  RegionHeader* rh = nullptr;
  Options local;
  Index index;
  ValueCache cache;
  SegmentTable segments;
  KeyspaceTable keyspaces;
  ChangeFeed feed;
  std::unique_ptr<SegmentFiles> files;
  DataDirLock dir_lock;  // held by the process that recovered, unless its host holds it

  // Process-local maintenance cursors.
  uint32_t sweep_keyspace = 0;
  std::string sweep_key;
  uint32_t compact_victim = 0;
  uint64_t compact_offset = 0;
  bool compact_carry = false;  // the victim is above the horizon: carry deletes, log retirement
  std::set<uint32_t> compact_skip;  // damaged segments, reported once
  // Segments whose last pass left live bytes (entries of dropped or truncated keyspaces, which
  // only the sweep removes), with the live bytes they had then: not chosen again until they
  // hold fewer (a sweep in any process removed some). Retrying at once found the same entries
  // and never ended.
  std::map<uint32_t, int64_t> compact_deferred;
  int64_t compact_orphan_bytes = 0;  // the victim's records skipped as such, this pass
  AlignedBuffer compact_read_buffer;  // this process's reads of victims

  ~Impl();

  char* base() const { return reinterpret_cast<char*>(rh); }
  const SharedOptions& opts() const { return rh->opts; }
  SyncPolicy sync() const { return static_cast<SyncPolicy>(rh->opts.sync); }
  Io* io();
  void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  bool write_failed() const { return rh->write_failed.load(std::memory_order_acquire) != 0; }
  // Refuses all further writes after a device error (reads continue).
  void FailWrites(const Status& s);
  // What a write, write-out or sync answers once write_failed().
  Status WritesDisabled() const {
    return Status::IOError("writes are disabled after a device error: " + Failure());
  }
  // Engine::HoldFiles / AddFileHold: no compaction, no checkpoint.
  bool files_held() const { return rh->files_held.load(std::memory_order_acquire) != 0; }
  void SetFailure(const std::string& msg);
  std::string Failure() const;
  Status CheckReady() const;

  // ---- write path (write_path.cc) ----
  Status Write(WriteBatch::Rep& rep, WriteResult* result, bool wait_durable = true);

  // ---- log writer (log_writer.cc) ----
  // Write mutex held: room and tickets for the batch (rolling segments as needed).
  Status ReserveLog(const WriteBatch::Rep& rep, LogReservation* r);
  // Outside the mutex: seals checksums and writes (or stages) the reserved bytes.
  Status AppendLog(const LogReservation& r, WriteBatch::Rep& rep);
  Status TakeTicket(LogPiece* piece, bool seal);
  void CompleteTicket(uint64_t ticket);
  void TrimSealed(uint32_t segment, uint64_t end);
  char* stage_ring() const;
  // `ticket`, when the caller has one, lets it sleep until exactly its own write is durable.
  Status GroupCommit(uint64_t target_lsn, uint64_t ticket = UINT64_MAX);
  // Called with flush_mu held; releases it after the write-out, before the sync, so that the
  // next write-out (a listener's WriteOut, the next flusher) never waits for a device sync.
  Status FlushAndUnlock();
  // FlushAndUnlock's halves. The first makes the host's log durable and writes the staged pieces
  // of every written ticket (to *upto_ticket, ending at *upto); the second syncs the files up to
  // there and wakes the writers it covered. The first needs flush_mu, the second sync_mu, and
  // no one holds both: syncs queue behind each other, write-outs behind write-outs only.
  Status WriteOutLocked(uint64_t* upto, uint64_t* upto_ticket);
  Status SyncFilesLocked(uint64_t upto, uint64_t upto_ticket);
  // After a sync of the log from `from` to `upto`: lets the page cache drop those pages.
  void DropSyncedPages(uint64_t from, uint64_t upto);
  Status SyncUpTo(uint64_t target_lsn);
  // Creates segment `id` and makes it the active one (write mutex held).
  Status StartSegment(uint32_t id, uint64_t capacity);

  // ---- read path (read_path.cc) ----
  // Whether a snapshot is a live value for its keyspace at time now_ms.
  bool IsLive(const EntrySnapshot& e, const KeyspaceSlot* ks, int64_t now_ms) const;
  // LogShared::forgotten_seq's slot for the key.
  std::atomic<uint64_t>& ForgottenSlot(uint32_t keyspace, std::string_view key) const {
    return rh->log
        .forgotten_seq[Engine::KeyFingerprint(keyspace, key) % LogShared::kForgottenSlots];
  }
  // IsLive at the current time; reads the clock only for a key with an expiry (a point read
  // paid a third of its clock reads for keys that have none).
  bool IsLiveNow(const EntrySnapshot& e, const KeyspaceSlot* ks) const {
    return IsLive(e, ks, e.fields.expire_at_ms == 0 ? 0 : NowMillis());
  }
  // Waits until the record behind the entry may be read; false if writes failed meanwhile.
  bool WaitVisible(const EntrySnapshot& e);
  Status ReadValue(uint32_t keyspace, std::string_view key, const EntrySnapshot& e,
                   std::string* value, ReadInfo* info, KeyspaceCounters* counters);
  Status Get(uint32_t keyspace, std::string_view key, std::string* value, ReadInfo* info);
  // For a reader with ReadInfo::unsynced_ok: true when `e` may be used without a sync (it is
  // durable, or the caller defers to depends_on_lsn, which this sets).
  bool DeferVisible(const EntrySnapshot& e, ReadInfo* info) const;
  void MultiGet(uint32_t keyspace, std::span<const std::string_view> keys,
                std::vector<std::string>* values, std::vector<Status>* statuses, ReadInfo* info,
                std::vector<uint64_t>* seqs);
  size_t Prefetch(uint32_t keyspace, std::span<const std::string_view> keys,
                  Engine::PrefetchDepth depth);

  // ---- checkpoint (checkpoint.cc) ----
  Status WriteCheckpoint();
  struct LoadedCheckpoint {
    uint64_t lsn = 0;
    uint64_t next_seq = 1;
    uint32_t next_keyspace = 1;
    std::vector<std::pair<uint32_t, uint64_t>> segments;  // id, size
    uint64_t entries = 0;
  };
  // Loads a checkpoint file into the (empty) index and catalog.
  Status LoadCheckpoint(const std::string& path, LoadedCheckpoint* out);
  // Removes a segment from the table and deletes its file.
  void DeleteSegment(uint32_t id);

  // ---- recovery (recovery.cc) ----
  Status Recover();
  uint32_t MaxDurableSegment(const std::vector<uint32_t>& ids);

  // ---- maintenance (compaction.cc) ----
  size_t Sweep(size_t max_entries, bool wait = false);  // wait: as CompactStep
  // Does a bounded amount of compaction work; *did_work tells whether anything qualified.
  // wait: block for the maintenance lock instead of skipping the step when it is busy.
  Status CompactStep(uint64_t budget_bytes, bool* did_work, bool wait = false);
  void RecomputeAccounting();
};

}  // namespace eloqkv
