#include "engine/change_feed.h"

namespace eloqkv {

void ChangeFeed::Append(uint32_t keyspace, uint64_t fingerprint, uint64_t origin,
                        bool whole_keyspace) {
  const uint64_t head = shared_->head.load(std::memory_order_relaxed);
  ChangeSlot& slot = ring_[head % ChangeFeedShared::kCapacity];
  // A seqlock over the ring: readers check `claimed` after copying a slot, and a copy of a slot
  // this writer has begun to reuse shows up as a claim past the reader's window.
  shared_->claimed.store(head + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  slot.fingerprint.store(fingerprint, std::memory_order_relaxed);
  slot.origin.store(origin, std::memory_order_relaxed);
  slot.keyspace.store(keyspace, std::memory_order_relaxed);
  slot.whole_keyspace.store(whole_keyspace ? 1 : 0, std::memory_order_relaxed);
  // Published: a reader that loads this head (acquire) sees the slot's contents.
  shared_->head.store(head + 1, std::memory_order_release);
}

uint64_t ChangeFeed::Subscribe() {
  shared_->readers.fetch_add(1, std::memory_order_relaxed);
  return shared_->head.load(std::memory_order_relaxed);
}

void ChangeFeed::Unsubscribe() {
  if (shared_->readers.load(std::memory_order_relaxed) > 0)
    shared_->readers.fetch_sub(1, std::memory_order_relaxed);
}

bool ChangeFeed::Read(uint64_t* position, std::vector<KeyChange>* out) const {
  constexpr uint64_t cap = ChangeFeedShared::kCapacity;
  const uint64_t head = shared_->head.load(std::memory_order_acquire);
  uint64_t from = *position;
  if (head - from > cap) {
    *position = head;
    return false;
  }
  const size_t first = out->size();
  for (uint64_t p = from; p < head; ++p) {
    const ChangeSlot& slot = ring_[p % cap];
    KeyChange c;
    c.fingerprint = slot.fingerprint.load(std::memory_order_relaxed);
    c.origin = slot.origin.load(std::memory_order_relaxed);
    c.keyspace = slot.keyspace.load(std::memory_order_relaxed);
    c.whole_keyspace = slot.whole_keyspace.load(std::memory_order_relaxed) != 0;
    out->push_back(c);
  }
  // Slot p is reused by the claim of entry p + cap: the copies are good only if no claim went
  // that far while we read.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t now = shared_->claimed.load(std::memory_order_relaxed);
  if (now - from > cap) {
    out->resize(first);
    *position = shared_->head.load(std::memory_order_acquire);  // never past an entry in progress
    return false;
  }
  *position = head;
  return true;
}

}  // namespace eloqkv
