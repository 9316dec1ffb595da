// eloqkv: an embedded NVMe key-value engine whose state lives in a caller-supplied shared memory
// region, so that many processes (PostgreSQL backends, listener workers, tests' forked children)
// read and write it at once, each through its own Engine handle.
//
// Invariants the engine keeps (docs/architecture.md explains how):
//  * A write acknowledged with OK under SyncPolicy::kAlways survives kill -9 and power loss.
//  * A WriteBatch is atomic: after any crash either all of it is visible or none of it.
//  * Readers never take a lock and never wait for each other; a reader never sees a write before
//    it is durable (kAlways) or written to the file (other policies).
//  * Keys of one keyspace are ordered by bytewise comparison; iterators return keys in order,
//    without duplicates, and never lose a key that exists throughout the scan.
//  * A failed or refused operation changes nothing.
//  * No Postgres header is included anywhere under src/engine; errors are Status values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace eloqkv {

inline constexpr const char* kEngineVersion = "0.1.0";
inline constexpr size_t kMaxKeySize = 4096;
inline constexpr size_t kMaxValueSize = size_t{64} << 20;
// Room for a table's keyspace ("schema.table", 127 bytes) qualified by its database
// ("4294967295/") behind an internal prefix such as "@tags:".
inline constexpr size_t kMaxKeyspaceNameSize = 191;
// A batch handed to Options::replication_log: Postgres WAL readers refuse records of 1 GiB.
inline constexpr size_t kMaxLoggedBatchSize = size_t{1000} << 20;

enum class SyncPolicy : uint8_t { kAlways = 0, kInterval = 1, kOff = 2 };
enum class IoMode : uint8_t { kAuto = 0, kIoUring = 1, kPosix = 2 };
enum class LogLevel : uint8_t { kDebug, kInfo, kWarning, kError };

const char* SyncPolicyName(SyncPolicy p);
const char* IoModeName(IoMode m);

using LogFunction = void (*)(void* context, LogLevel level, const char* message);

// A write batch as a primary hands it to its standbys: the encoded records, with the sequence
// numbers the batch was given. Sequence numbers of consecutive logical batches are contiguous
// (compaction copies take none), so a standby that applies every batch in order has exactly the
// primary's numbers, and a batch that starts above the standby's next number reveals a gap.
struct ReplicatedBatch {
  std::string_view records;
  uint64_t first_seq = 0;
  uint32_t count = 0;
  // Where the batch ends in the host's log (a standby's replay position), for HostRetention.
  uint64_t host_end = 0;
};
// Called under the engine's write mutex, in sequence order, for every batch that changes what
// readers see (compaction copies are not logged). It may not fail: a host that cannot log must
// end the process. Returns the host's log position just past what it logged.
using ReplicationLogFunction = uint64_t (*)(void* context, const ReplicatedBatch& batch);
// Called before a logged batch reaches the engine's files (a write there survives a crash of the
// process): makes the host's log durable up to `host_position`, so that the engine never holds
// a batch the host's log could lose.
using HostFlushFunction = void (*)(void* context, uint64_t host_position);

struct Options {
  // Shared settings: fixed when the region is formatted; every process sees the same values.
  std::string data_dir;
  size_t index_memory = size_t{64} << 20;  // B+tree nodes and key entries
  size_t cache_memory = size_t{64} << 20;  // hot values (CLOCK cache)
  size_t log_buffer = size_t{16} << 20;    // group commit buffer (sync = always)
  SyncPolicy sync = SyncPolicy::kAlways;
  uint32_t sync_interval_ms = 1000;  // kInterval: longest time a write may stay unsynced
  uint64_t segment_size = uint64_t{64} << 20;
  IoMode io_mode = IoMode::kAuto;  // kAuto: io_uring when the kernel allows it, else pread/pwrite
  bool direct_reads = true;        // O_DIRECT reads (falls back when the file system refuses)
  uint64_t max_disk_bytes = 0;     // 0: no limit besides the file system's
  uint32_t max_keyspaces = 1024;
  uint64_t checkpoint_log_bytes = uint64_t{256} << 20;  // log volume that triggers a checkpoint
  uint32_t checkpoint_interval_ms = 300'000;            // ... or this much time with any writes
  double compaction_live_ratio = 0.5;  // segments below this live fraction are rewritten
  double compaction_space_amp = 1.3;   // ... and more of them while disk/live exceeds this

  // Process-local settings: each Attach may pass its own.
  LogFunction log = nullptr;
  void* log_context = nullptr;
  ReplicationLogFunction replication_log = nullptr;
  HostFlushFunction host_flush = nullptr;
  void* replication_context = nullptr;
};

// State of the shared engine, as seen by any attached process.
enum class EngineState : uint32_t {
  kFormatted = 0,  // region initialised, nobody has recovered yet
  kRecovering = 1,
  kReady = 2,
  kFailed = 3,  // recovery failed or a write hit an I/O error: see Engine::FailureMessage()
  kClosed = 4,
};
const char* EngineStateName(EngineState s);

enum class WriteCondition : uint8_t {
  kNone = 0,
  kIfAbsent,   // the key must not exist (insert)
  kIfPresent,  // the key must exist (update, delete)
  kIfSeq,      // the key's current sequence number must equal expected_seq (0: absent)
  // The key must be absent, and no write numbered expected_seq or later may have touched it
  // (created and deleted again, expired, emptied by a truncation): WriteBatch::CheckAbsentSince.
  kIfUntouchedSince,
};
enum class OnConditionFailure : uint8_t { kFailBatch = 0, kSkip = 1 };

// A group of writes applied atomically, in order. Records are encoded as they are added, so the
// batch holds the exact bytes that will reach the log (one copy of each value).
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;

  // expire_at_ms: absolute UNIX time in milliseconds, 0 for none.
  Status Put(uint32_t keyspace, std::string_view key, std::string_view value,
             int64_t expire_at_ms = 0, WriteCondition cond = WriteCondition::kNone,
             uint64_t expected_seq = 0, OnConditionFailure on_fail = OnConditionFailure::kFailBatch);
  Status Delete(uint32_t keyspace, std::string_view key,
                WriteCondition cond = WriteCondition::kNone, uint64_t expected_seq = 0,
                OnConditionFailure on_fail = OnConditionFailure::kFailBatch);
  // Writes nothing: fails the batch unless the key's sequence number is expected_seq (0: the key
  // is absent) when the batch is applied. Optimistic transactions (RESP WATCH/EXEC) validate
  // what they read with it. Checks go before the batch's writes to the same key.
  Status Check(uint32_t keyspace, std::string_view key, uint64_t expected_seq);
  // Writes nothing: fails the batch unless the key is absent and untouched by every write
  // numbered since_seq or later. A key seen absent is recorded with since_seq =
  // Engine::PublishedSequence() read before the lookup; Check(..., 0) would accept a key created
  // and deleted again meanwhile. May fail spuriously: the index forgets a deleted key's entry in
  // time, and a forgotten entry numbered since_seq or later fails the checks of the keys that
  // share its slot of Engine::ForgottenSequence.
  Status CheckAbsentSince(uint32_t keyspace, std::string_view key, uint64_t since_seq);
  // Empties the keyspace as part of this batch: ops added after it apply to the empty keyspace;
  // the batch fails with NotFound if the keyspace does not exist.
  Status TruncateKeyspace(uint32_t keyspace, std::string_view name);
  void Clear();
  size_t Count() const;
  size_t ByteSize() const;
  // Who wrote the batch, as the change feed reports it (0: nobody in particular). A reader of
  // the feed tells its own writes from others' by it (RESP CLIENT TRACKING NOLOOP).
  void set_origin(uint64_t origin);
  // The same for the ops from the first_op-th on: a batch that gathers several clients' writes
  // (the RESP listener's coalesced SETs) reports each client's ops as that client's.
  void set_origin_from(size_t first_op, uint64_t origin);
  // Drops the ops after the first `count` (a caller's partly added group of ops).
  void TruncateOps(size_t count);
  // Appends copies of from's ops [first_op, end_op), with their origins.
  void AppendOps(const WriteBatch& from, size_t first_op, size_t end_op);

  struct Rep;  // the encoded form; opaque outside the engine

 private:
  friend class Engine;
  friend class WriteBatchInternal;
  std::unique_ptr<Rep> rep_;
};

struct WriteResult {
  uint64_t first_seq = 0;      // sequence number of the batch's first record
  uint64_t end_lsn = 0;        // log position just past the batch
  std::vector<bool> applied;   // per op: false when skipped by OnConditionFailure::kSkip
  size_t failed_op = SIZE_MAX; // the op whose condition failed the batch
};

// A key that a write changed, as the change feed reports it (Engine::ReadChanges).
struct KeyChange {
  uint32_t keyspace = 0;
  uint64_t fingerprint = 0;     // Engine::KeyFingerprint(keyspace, key); 0 with whole_keyspace
  uint64_t origin = 0;          // the batch's WriteBatch::set_origin
  bool whole_keyspace = false;  // truncated or dropped: every key of it changed
};

// What a read observed, for EXPLAIN ANALYZE and stats.
struct ReadInfo {
  uint64_t seq = 0;
  int64_t expire_at_ms = 0;
  uint32_t cache_hits = 0;
  uint32_t device_reads = 0;
  // In: the caller holds whatever it derives from this read until SyncTo(depends_on_lsn)
  // returns (the RESP listener holds a round's replies). Get and Probe may then return a value
  // that is written but not yet durable (from the value cache) instead of syncing for it.
  bool unsynced_ok = false;
  // Out, with unsynced_ok: the log position the result depends on (0: already durable).
  uint64_t depends_on_lsn = 0;
};

struct ScanOptions {
  std::string lower;  // start key (empty: keyspace start)
  bool lower_inclusive = true;
  std::string upper;  // end key
  bool upper_inclusive = false;
  bool has_upper = false;
  std::string prefix;  // when set, only keys starting with it (combined with the bounds)
  bool keys_only = false;
};

class Iterator {
 public:
  virtual ~Iterator() = default;
  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  virtual std::string_view key() const = 0;
  // The value of the current key as of now (latest committed). A key deleted since the iterator
  // reached it reports NotFound; callers skip it.
  virtual Status value(std::string* out) = 0;
  virtual const ReadInfo& info() const = 0;
  virtual Status status() const = 0;
};

struct LatencySummary {
  uint64_t count = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
};

struct KeyspaceStats {
  uint32_t id = 0;
  std::string name;
  uint64_t keys = 0;
  uint64_t bytes = 0;  // live record bytes (header + key + value)
  uint64_t expiring = 0;   // of the keys, those with a TTL
  int64_t avg_ttl_ms = 0;  // their mean time left (0: none)
  uint64_t reads = 0, writes = 0, deletes = 0;
  uint64_t cache_hits = 0, cache_misses = 0, device_reads = 0;
  LatencySummary read_latency, write_latency;
};

struct EngineInfo {
  std::string version;
  std::string data_dir;
  std::string io_mode;     // "io_uring" or "pread"
  bool direct_reads = false;
  std::string sync;
  std::string state;
  std::string checksum;    // "sse4.2" or "table"
  uint64_t index_memory_used = 0, index_memory_limit = 0;
  uint64_t cache_memory_used = 0, cache_memory_limit = 0;
  uint64_t keys = 0;
  uint64_t live_bytes = 0, disk_bytes = 0;
  uint64_t segments = 0;
  uint64_t next_seq = 0;
  uint64_t durable_lsn = 0;
  uint64_t fsyncs = 0;
  uint64_t bytes_written = 0;  // appended to the log since the engine started
  LatencySummary fsync_latency;
  uint64_t checkpoints = 0;
  uint64_t last_checkpoint_lsn = 0;
  double last_checkpoint_ms = 0;
  double recovery_ms = 0;
  uint64_t recovered_records = 0;
  uint64_t compactions = 0, compaction_bytes_moved = 0, compaction_bytes_reclaimed = 0;
  uint32_t compacting_segment = 0;      // 0: none running
  double compacting_progress = 0;       // fraction of that segment processed
  uint64_t expired_swept = 0;
};

class Engine {
 public:
  // Bytes of shared memory the options need.
  static size_t SharedMemorySize(const Options& options);
  // Checks the shared settings (sizes, paths) without touching anything.
  static Status ValidateOptions(const Options& options);
  // Creates the data directory if needed and locks it for the rest of this process's life and
  // its forked children's, so that no other engine can open it. A host whose workers come and
  // go (the postmaster) calls it before forking them; calling it again is a no-op. Without it,
  // Recover() locks the directory for the lifetime of the recovering engine handle.
  static Status LockDataDirectory(const std::string& dir);
  // Initialises a region of at least SharedMemorySize(options) bytes. Call once, before any
  // process attaches (Postgres: in shmem_startup_hook; tests: before fork).
  static Status FormatRegion(void* region, size_t size, const Options& options);
  // Creates this process's handle on a formatted region. `local` supplies process-local settings;
  // shared settings come from the region.
  static Status Attach(void* region, const Options& local, std::unique_ptr<Engine>* out);

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Recovers the shared state from disk. Exactly one process calls it, once per formatted
  // region; the others observe state() moving to kReady or kFailed.
  Status Recover();
  EngineState state() const;
  // Whether the write path hit an I/O error: writes are refused until the engine is reopened.
  bool writes_failed() const;
  // Whether writes failed while a batch this engine logged to the host's log was not yet
  // durable in its files: the host's log alone holds it now (and may have acknowledged it), and
  // only a replay of that log, before the engine takes writes again, restores it. A reopen
  // from the files alone would lose it and hand its sequence numbers out again. Batches applied
  // from the host's log (ApplyReplicated) do not count: replaying them is the host's redo.
  bool logged_writes_stranded() const;
  std::string FailureMessage() const;
  // Makes everything durable, writes a checkpoint and refuses further writes.
  Status Shutdown();

  // Keyspaces. Names are unique among live keyspaces; ids are never reused.
  Status CreateKeyspace(std::string_view name, uint32_t* id);
  Status FindKeyspace(std::string_view name, uint32_t* id) const;
  // O(1): whether a live keyspace has this id (callers cache name -> id and check it).
  bool KeyspaceExists(uint32_t id) const;
  // Removes every key of the keyspace at once (space is reclaimed by compaction).
  Status TruncateKeyspace(uint32_t id);
  Status DropKeyspace(uint32_t id);
  std::vector<KeyspaceStats> ListKeyspaces() const;
  Status GetKeyspaceStats(uint32_t id, KeyspaceStats* out) const;

  // Reads: the latest durable value (value may be null: whether the key is there). Expired keys
  // are NotFound.
  Status Get(uint32_t keyspace, std::string_view key, std::string* value, ReadInfo* info = nullptr);
  // Reads many keys; every cold read is submitted in one batch. statuses[i] is OK or NotFound
  // (or an error) for keys[i].
  // seqs, when given, receives each found key's sequence number.
  void MultiGet(uint32_t keyspace, std::span<const std::string_view> keys,
                std::vector<std::string>* values, std::vector<Status>* statuses,
                ReadInfo* info = nullptr, std::vector<uint64_t>* seqs = nullptr);
  // How far Prefetch goes for a batch of keys about to be read or written.
  enum class PrefetchDepth {
    kIndex,   // the keys' index buckets and entries into the CPU cache (keys about to be written)
    kMemory,  // and their cached values: the lookups of the batch overlap their memory misses
    kDevice,  // and, in one batch of device reads, the values not in the value cache
  };
  // A hint for keys about to be accessed; errors are left for the access that follows to report.
  // With kDevice it brings into the value cache the keys a read would have to fetch from the
  // device (durable, live, not cached, small enough to cache) and returns how many it read;
  // otherwise it returns 0.
  size_t Prefetch(uint32_t keyspace, std::span<const std::string_view> keys,
                  PrefetchDepth depth = PrefetchDepth::kDevice);
  std::unique_ptr<Iterator> NewIterator(uint32_t keyspace, const ScanOptions& options);
  // Cheap existence/metadata probe without reading the value. On NotFound, info->seq is the
  // number of the last write to the key while the index still holds its entry (a delete, an
  // expired put, a put hidden by a truncation), 0 when it holds none: see ForgottenSequence.
  Status Probe(uint32_t keyspace, std::string_view key, ReadInfo* info);
  // The highest sequence number of an entry the index has forgotten (a swept delete or expired
  // key) among the keys that share this key's slot (one of 65,536, by fingerprint), since the
  // engine's shared state was formatted. A probe that finds no entry cannot tell whether a write
  // numbered up to this touched the key.
  uint64_t ForgottenSequence(uint32_t keyspace, std::string_view key) const;
  // Every write numbered below it shows in the index: a lookup made after reading it sees them
  // all. (NextSequence may already count a batch whose entries are not published yet.)
  uint64_t PublishedSequence() const;

  // Writes.
  Status Write(WriteBatch& batch, WriteResult* result = nullptr);
  // As Write(), but returns once the batch is in the log without waiting for the sync policy's
  // durability: the caller must not acknowledge it before SyncTo(result->end_lsn) returns.
  // An event loop writes a whole round of clients' commands this way and syncs once for all.
  // Readers of the new values wait for (or perform) that sync themselves.
  Status WriteDeferred(WriteBatch& batch, WriteResult* result);
  // Applies a batch that a primary logged (a standby's redo), with the primary's sequence
  // numbers. The batch must start at NextSequence() (InvalidArgument otherwise), or above it
  // with allow_gap. discard: its transaction aborted, so only its sequence numbers are used up.
  // Returns once the batch is in the log, like WriteDeferred: readers sync for it.
  Status ApplyReplicated(const ReplicatedBatch& batch, bool discard, bool allow_gap,
                         WriteResult* result = nullptr);
  // While set, the engine takes only replicated batches (and its own compaction): a standby, or
  // a host replaying its log after a crash, would otherwise hand out sequence numbers that the
  // primary's batches still need. Other writes fail with Unavailable.
  void SetReplica(bool replica);
  bool replica() const;
  // While held, the engine deletes and rewrites no file: compaction and checkpoints wait (Tick
  // skips them; Compact and Checkpoint fail with Unavailable), so that a file-level copy of the
  // data directory (a base backup) finds every file it listed. Writes go on. Taking a hold
  // waits for a compaction step or checkpoint already running; none starts while one is held.
  // Two kinds of holders, so that neither releases the other's: HoldFiles sets or clears the
  // one hold of whoever watches copies from outside (the maintenance worker, for pg_basebackup;
  // files_hold_set says whether it is set), and AddFileHold/ReleaseFileHold count holders that
  // come and go on their own (sessions between pg_backup_start and pg_backup_stop).
  void HoldFiles(bool hold);
  bool files_hold_set() const;
  void AddFileHold();
  void ReleaseFileHold();
  bool files_held() const;
  // Makes the log durable (sync policy always) or written (other policies) up to lsn.
  Status SyncTo(uint64_t lsn);
  // How far SyncTo would return at once: the durable (policy always) or written position.
  uint64_t SyncedLsn() const;
  // For a host that logs every batch (replication_log): makes the host's log durable up to the
  // batches before lsn and writes them to the engine's files, without syncing those files. A
  // write is then as safe as the host's log, provided the host keeps its log from
  // HostRetention() and replays it after a crash. Calls host_flush: the host's thread only.
  Status WriteOut(uint64_t lsn);
  // How far WriteOut would return at once (any process's WriteOut counts). Any thread.
  uint64_t WrittenOutLsn() const;
  // Syncs what WriteOut (or anyone) wrote to the files; never calls the host, so any thread may.
  Status SyncWritten();
  // WriteOut of everything written so far (every batch whose Write returned). Host thread only.
  Status WriteOutAll();
  // The host's log position past every batch whose bytes are in the engine's files, synced or
  // not (0: none since the shared state was formatted). A copy of the files taken after it
  // reached a position holds every batch the host logged before that position.
  uint64_t HostWritten() const;
  // What of the host's log the engine still needs: `pending` when some batch is not yet durable
  // in the engine's files; every such batch begins at or after `durable_host` in the host's log
  // (0: no batch was made durable since the engine's shared state was formatted).
  struct HostRetention {
    bool pending = false;
    uint64_t durable_host = 0;
  };
  HostRetention Retention() const;
  // Greater than the sequence number of every write made so far, including across restarts:
  // a value read now can be told apart from every record that existed before.
  uint64_t NextSequence() const;
  Status Put(uint32_t keyspace, std::string_view key, std::string_view value,
             int64_t expire_at_ms = 0);
  Status Delete(uint32_t keyspace, std::string_view key);
  // Waits until every write acknowledged so far is durable, whatever the sync policy.
  Status Flush();

  // Maintenance, driven by one process (Postgres: the eloqkv maintenance worker): interval
  // sync, TTL sweep, one compaction step and a checkpoint when due. Returns quickly.
  Status Tick();
  Status Checkpoint();
  // Runs compaction until no segment qualifies (or max_segments were rewritten). Waits for a
  // maintenance step another process is running (Tick skips a round instead).
  Status Compact(uint32_t max_segments = UINT32_MAX);
  // Removes index entries of expired keys and truncated keyspaces; returns how many. Waits
  // like Compact.
  size_t SweepExpired(size_t max_entries);

  EngineInfo Info() const;
  // Info()'s cache_memory_used and cache_memory_limit alone, without the rest's cost.
  void CacheUsage(uint64_t* used, uint64_t* limit) const;

  // The change feed: every key a write changes after SubscribeChanges() returns is reported by
  // ReadChanges before the write is acknowledged to its writer. While any process is subscribed
  // every write pays for an entry; unsubscribe when done.
  // Returns the position to read from.
  uint64_t SubscribeChanges();
  // The feed's current end. A read that starts after this call sees every change reported
  // before this position (each change is published in the index before it enters the feed).
  uint64_t ChangePosition() const;
  void UnsubscribeChanges();
  // Appends the changes from *position on to *out and advances *position. False when the reader
  // fell so far behind that changes were lost: it must assume every key changed.
  bool ReadChanges(uint64_t* position, std::vector<KeyChange>* out) const;
  // Identifies a key in the feed. Different keys may share one (rarely): a reader that keeps
  // copies drops a copy whose fingerprint changed, and at worst drops one too many.
  static uint64_t KeyFingerprint(uint32_t keyspace, std::string_view key);
  // What a key with a value of this size takes: its index entry in memory (its block and its
  // slots in the tree and the point table) and its record (header, key, value), which is on
  // disk and, while the value is cached, in the value cache.
  static size_t KeyFootprint(size_t key_len, size_t value_len);

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Milliseconds since the UNIX epoch, the clock TTLs are measured against.
int64_t NowMillis();
// The same clock at the kernel tick's resolution (a few ms), at a fraction of the cost: for
// idle times and reload intervals checked on every request, never for TTLs.
int64_t CoarseNowMillis();
// Tests only: shifts both clocks above by `offset_ms`, as a clock stepped forward or back would.
void SetClockOffsetForTesting(int64_t offset_ms);

}  // namespace eloqkv
