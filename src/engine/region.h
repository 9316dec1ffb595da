// Region: the layout of the engine's shared memory and the state every process shares.
//
// Invariant: the region is self-describing (sizes and offsets in its header) and holds no
// pointers; FormatRegion writes everything a process needs to attach, and nothing in it depends on
// the address it is mapped at.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/change_feed.h"
#include "engine/eloqkv.h"
#include "engine/shm_sync.h"
#include "engine/stats.h"

namespace eloqkv {

inline uint64_t MakeLsn(uint32_t segment, uint64_t offset) {
  return (uint64_t{segment} << 32) | offset;
}
inline uint32_t LsnSegment(uint64_t lsn) { return static_cast<uint32_t>(lsn >> 32); }
inline uint32_t LsnOffset(uint64_t lsn) { return static_cast<uint32_t>(lsn); }

struct SharedOptions {
  char data_dir[1024];
  uint64_t index_memory;
  uint64_t cache_memory;
  uint64_t segment_size;
  uint64_t max_disk_bytes;
  uint64_t checkpoint_log_bytes;
  uint32_t sync_interval_ms;
  uint32_t max_keyspaces;
  uint32_t checkpoint_interval_ms;
  uint8_t sync;
  uint8_t io_mode;
  uint8_t direct_reads;
  double compaction_live_ratio;
  double compaction_space_amp;
};

// One slot per in-flight append, in reservation order, so the written watermark can advance
// over a contiguous prefix while appends complete out of order.
struct CommitSlot {
  std::atomic<uint64_t> end_lsn;
  std::atomic<uint64_t> stage_pos;  // where the bytes wait in the log buffer (or UINT64_MAX)
  std::atomic<uint32_t> length;
  std::atomic<uint32_t> seal;      // a seal record: the flusher trims the file after it
  std::atomic<uint64_t> done;      // ticket + 1 once the bytes are staged or in the file
  std::atomic<uint32_t> synced;    // (ticket + 1) mod 2^32 once they are durable; futex word
  std::atomic<uint32_t> waiting;   // the ticket's writer sleeps on `synced`
  std::atomic<uint64_t> host_end;  // the host's log position past this batch (0: not in it)
};

struct LogShared {
  static constexpr uint32_t kRing = 4096;
  // The write mutex orders everything that must agree with log order: write conditions,
  // sequence numbers, space reservation, index publication and catalog changes.
  ShmMutex write_mu;
  uint64_t next_seq;
  std::atomic<uint64_t> host_position;  // the host's log position past the last logged batch
  uint32_t active_segment;
  uint64_t active_offset;
  uint64_t active_capacity;
  uint64_t next_ticket;
  std::atomic<uint64_t> reserved_lsn;  // just past the last reservation
  ShmMutex advance_mu;
  std::atomic<uint64_t> written_ticket;
  std::atomic<uint64_t> durable_ticket;  // every ticket below it is durable
  // The log buffer (sync = always): a ring of stage_capacity bytes at RegionHeader::stage_off.
  uint64_t stage_capacity;
  uint64_t stage_head;                // next position to hand out (write mutex)
  std::atomic<uint64_t> stage_tail;   // positions before it are free again
  uint64_t file_ticket;               // tickets below it are in their files (flush mutex)
  ShmWatermark written;  // every byte before it is in the file
  ShmWatermark durable;  // every byte before it is synced
  ShmMutex flush_mu;
  std::atomic<int64_t> last_sync_ms;
  std::atomic<uint64_t> appended_bytes;  // total appended since the region was formatted
  CommitSlot ring[kRing];
  std::atomic<uint64_t> file_lsn;  // every byte before it is in its file (flush mutex)
  // The host's log position past the last batch made durable (0: none since the region was
  // formatted). Host order is ticket order, so no batch that is not durable ends before it.
  std::atomic<uint64_t> durable_host;
  // The host's log position past every batch whose bytes are in their file (synced or not).
  std::atomic<uint64_t> file_host;
  // Held while syncing the files and waking the writers covered (step 2 and 3 of a flush).
  // Never held with flush_mu: writing out the next bytes need not wait for a sync.
  ShmMutex sync_mu;
  // Every write numbered below it shows in the index (stored under the write mutex once a
  // batch's entries are published; read without it by Engine::PublishedSequence).
  std::atomic<uint64_t> published_seq;
  // By key fingerprint: the highest sequence number of an index entry removed since formatting
  // (the sweep, under the write mutex; read without it by Engine::ForgottenSequence). Spread
  // over many slots so that a removal touches the checks of few other keys.
  static constexpr size_t kForgottenSlots = 65536;
  std::atomic<uint64_t> forgotten_seq[kForgottenSlots];
};

struct CheckpointShared {
  ShmMutex mu;
  std::atomic<uint64_t> started;     // checkpoints begun
  std::atomic<uint64_t> completed;   // checkpoints finished
  std::atomic<uint64_t> newest_lsn;  // replay start of the newest retained checkpoint
  std::atomic<uint64_t> oldest_lsn;  // ... of the older one (0 if fewer than two)
  std::atomic<uint64_t> appended_at_last;
  std::atomic<int64_t> last_ms;
};

struct RegionHeader {
  static constexpr uint64_t kMagic = 0x314E4F4947455251ull;  // "QREGION1"
  static constexpr uint32_t kLayoutVersion = 8;
  uint64_t magic;
  uint32_t layout_version;
  uint64_t region_size;
  SharedOptions opts;
  std::atomic<uint32_t> state;       // EngineState
  std::atomic<uint32_t> write_failed;  // sticky after a device error on the write path
  std::atomic<uint32_t> io_uring;    // selected at recovery: 1 io_uring, 0 POSIX
  std::atomic<uint32_t> replica;     // Engine::SetReplica: only replicated and physical writes
  // No compaction, no checkpoint while nonzero: bit 0 Engine::HoldFiles, the rest 2 per
  // AddFileHold.
  std::atomic<uint32_t> files_held;
  ShmMutex failure_mu;
  char failure[1024];
  LogShared log;
  CheckpointShared ckpt;
  ShmMutex maintenance_mu;  // compaction and sweeps: one process at a time
  // The latest clock reading that removed an expired key's entry (maintenance_mu): a segment
  // retired after that may have left the key's record behind, whatever the clock says later.
  int64_t expiry_clock_ms;
  GlobalCounters stats;
  ChangeFeedShared feed;
  uint64_t segments_off, keyspaces_off, index_off, index_bytes, cache_off, cache_bytes, stage_off,
      feed_off;
};

}  // namespace eloqkv
