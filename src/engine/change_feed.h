// ChangeFeed: a ring, in shared memory, of the keys that writes changed, for processes that
// keep copies of values outside the engine (the RESP listener's client-side caching) and must
// hear of every change.
//
// Invariants:
//  * Entries are appended under the write mutex, in the critical section that publishes the
//    write in the index, so in log order and before the writer is acknowledged: a reader that
//    subscribed before it read a value finds every later change of that value in the feed.
//  * A change enters the feed only after it is published in the index: a read that begins after
//    the feed reached position P sees every change before P.
//  * A reader that falls more than kCapacity entries behind is told that it lost entries (and
//    then must assume that every key changed); it is never handed an entry that a writer
//    overwrote while it was reading.
//  * While no reader is subscribed nothing is appended: the write path pays one load.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/eloqkv.h"

namespace eloqkv {

struct ChangeSlot {
  std::atomic<uint64_t> fingerprint;
  std::atomic<uint64_t> origin;
  std::atomic<uint32_t> keyspace;
  std::atomic<uint32_t> whole_keyspace;
};

struct ChangeFeedShared {
  static constexpr uint64_t kCapacity = 1 << 15;
  std::atomic<uint64_t> head;     // entries readable: every one before it is complete
  std::atomic<uint64_t> claimed;  // entries a writer has started (head, or head + 1)
  std::atomic<uint32_t> readers;  // subscriptions (changed under the write mutex)
};

class ChangeFeed {
 public:
  static size_t RequiredBytes() { return sizeof(ChangeSlot) * ChangeFeedShared::kCapacity; }
  void Attach(ChangeFeedShared* shared, void* ring) {
    shared_ = shared;
    ring_ = static_cast<ChangeSlot*>(ring);
  }

  // Write mutex held for all three.
  bool active() const { return shared_->readers.load(std::memory_order_relaxed) != 0; }
  void Append(uint32_t keyspace, uint64_t fingerprint, uint64_t origin, bool whole_keyspace);
  uint64_t Subscribe();
  void Unsubscribe();

  bool Read(uint64_t* position, std::vector<KeyChange>* out) const;
  uint64_t Position() const { return shared_->head.load(std::memory_order_acquire); }

 private:
  ChangeFeedShared* shared_ = nullptr;
  ChangeSlot* ring_ = nullptr;
};

}  // namespace eloqkv
