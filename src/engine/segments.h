// Segments: the append-only files of the log, their shared bookkeeping and each process's open
// file descriptors.
//
// Invariants:
//  * Segment ids only grow; a file is named by its id and is never appended to after it is
//    sealed (a seal record ends it) or after recovery cut its tail.
//  * A segment file is created with its full capacity preallocated (so a write into it cannot
//    hit ENOSPC) and its directory entry synced before any record is written to it.
//  * live_bytes of a segment is the total size of the records in it that some index entry
//    points to; compaction uses it to pick victims.
//  * A segment is deleted only once recovery can no longer need it: compaction deletes it when
//    the copies of its live records (and its carried deletes) are durable.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/eloqkv.h"

namespace eloqkv {

enum class SegmentState : uint32_t {
  kFree = 0,
  kActive = 1,   // being appended to
  kSealed = 2,   // complete
  kRetired = 3,  // compacted away (transient: deleted once its copies are durable)
};

// Segment flags.
inline constexpr uint32_t kSegmentHasCatalog = 1;        // holds keyspace records
inline constexpr uint32_t kSegmentAccountingUnknown = 2;  // pinned bytes unknown (not replayed)

struct SegmentSlot {
  std::atomic<uint32_t> id;
  std::atomic<uint32_t> state;
  std::atomic<uint32_t> flags;
  // Bytes of records that carry no index entry but must outlive their segment while it is above
  // the compaction horizon: deletes and retirement records.
  std::atomic<int64_t> pinned_bytes;
  std::atomic<uint64_t> size;      // bytes in use (header + records (+ seal))
  std::atomic<uint64_t> capacity;  // file size
  std::atomic<int64_t> live_bytes;
};

class SegmentTable {
 public:
  static constexpr uint32_t kSlots = 1u << 16;
  static size_t RequiredBytes() { return sizeof(Header) + sizeof(SegmentSlot) * kSlots; }
  static void Format(void* region);
  void Attach(void* region) { h_ = static_cast<Header*>(region); }

  SegmentSlot* Get(uint32_t id) const;  // nullptr unless the slot holds id
  // Claims the slot for a new id; false when the slot is still in use (too many segments).
  bool Add(uint32_t id, SegmentState state, uint64_t size, uint64_t capacity);
  void Remove(uint32_t id);
  void AddLive(uint32_t id, int64_t delta);
  void AddPinned(uint32_t id, int64_t delta);
  void SetFlags(uint32_t id, uint32_t flags);
  // Records that a sealed segment's file was trimmed to `capacity` bytes.
  void SetCapacity(uint32_t id, uint64_t capacity);
  // Ids of every segment in the table, ascending.
  std::vector<uint32_t> Ids() const;

  uint64_t disk_bytes() const { return h_->disk_bytes.load(std::memory_order_relaxed); }
  uint32_t count() const { return h_->count.load(std::memory_order_relaxed); }
  // Bumped whenever a segment is deleted, so processes can drop stale descriptors.
  uint64_t deletions() const { return h_->deletions.load(std::memory_order_acquire); }

 private:
  struct Header {
    std::atomic<uint64_t> disk_bytes;
    std::atomic<uint32_t> count;
    std::atomic<uint64_t> deletions;
  };
  SegmentSlot* slots() const { return reinterpret_cast<SegmentSlot*>(h_ + 1); }
  Header* h_ = nullptr;
};

// This process's descriptors for segment files. Thread-safe.
class SegmentFiles {
 public:
  SegmentFiles(std::string dir, bool direct_reads) : dir_(std::move(dir)), direct_(direct_reads) {}
  ~SegmentFiles();

  static std::string Name(uint32_t id);
  std::string Path(uint32_t id) const { return dir_ + "/" + Name(id); }
  // Parses "0000000042.seg"; false for any other name.
  static bool ParseName(const std::string& name, uint32_t* id);

  // Creates, preallocates and durably names a new segment file, header written.
  Status Create(uint32_t id, uint64_t capacity);
  Status WriteFd(uint32_t id, int* fd);
  // *direct tells whether the descriptor uses O_DIRECT (then transfers must be aligned).
  Status ReadFd(uint32_t id, int* fd, bool* direct);
  // Whether reads bypass the page cache: asked for, and not refused by the file system for any
  // segment this process opened so far.
  bool reads_direct() const { return direct_ && !direct_refused_.load(std::memory_order_relaxed); }
  // Closes descriptors of segments no longer in `table`.
  void DropStale(const SegmentTable& table);
  Status Delete(uint32_t id);
  const std::string& dir() const { return dir_; }

 private:
  struct Fds {
    int write = -1;
    int read = -1;
    bool direct = false;
  };
  Status Open(uint32_t id, Fds* fds);

  std::string dir_;
  bool direct_;
  std::atomic<bool> direct_refused_{false};
  std::mutex mu_;
  std::unordered_map<uint32_t, Fds> fds_;
  uint64_t seen_deletions_ = 0;
};

// Durably records directory changes (file creation, rename, deletion).
Status SyncDirectory(const std::string& dir);

}  // namespace eloqkv
