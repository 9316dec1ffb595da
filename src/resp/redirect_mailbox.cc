#include "resp/redirect_mailbox.h"

#include <sched.h>

#include <cstring>
#include <new>

namespace eloqkv::resp {

namespace {

constexpr uint32_t kEverything = UINT32_MAX;

struct Slot {
  std::atomic<uint64_t> target;
  std::atomic<uint32_t> length;  // kEverything: no key
  std::atomic<uint64_t> words[RedirectMailbox::kKeyWords];
};

}  // namespace

struct RedirectMailbox::Header {
  std::atomic<uint32_t> lock;
  std::atomic<uint64_t> head;     // messages readable
  std::atomic<uint64_t> claimed;  // messages a poster has started
  Slot slots[kSlots];
};

size_t RedirectMailbox::RequiredBytes() {
  return sizeof(Header);
}

void RedirectMailbox::Format(void* region) {
  std::memset(region, 0, sizeof(Header));
  new (region) Header();
}

void RedirectMailbox::Post(uint64_t target, const std::string* key) {
  const bool fits = key != nullptr && key->size() <= kKeyWords * 8;
  uint64_t words[kKeyWords] = {};
  if (fits) std::memcpy(words, key->data(), key->size());
  uint32_t unlocked = 0;
  while (!h_->lock.compare_exchange_weak(unlocked, 1, std::memory_order_acquire)) {
    unlocked = 0;
    sched_yield();
  }
  const uint64_t pos = h_->head.load(std::memory_order_relaxed);
  Slot& slot = h_->slots[pos % kSlots];
  h_->claimed.store(pos + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  slot.target.store(target, std::memory_order_relaxed);
  slot.length.store(fits ? static_cast<uint32_t>(key->size()) : kEverything,
                    std::memory_order_relaxed);
  for (size_t i = 0; i < kKeyWords; ++i) slot.words[i].store(words[i], std::memory_order_relaxed);
  h_->head.store(pos + 1, std::memory_order_release);
  h_->lock.store(0, std::memory_order_release);
}

uint64_t RedirectMailbox::Position() const {
  return h_->head.load(std::memory_order_acquire);
}

bool RedirectMailbox::Read(uint64_t* position, std::vector<Message>* out) const {
  const uint64_t head = h_->head.load(std::memory_order_acquire);
  const uint64_t from = *position;
  if (head - from > kSlots) {
    *position = head;
    return false;
  }
  const size_t first = out->size();
  for (uint64_t p = from; p < head; ++p) {
    const Slot& slot = h_->slots[p % kSlots];
    Message m;
    m.target = slot.target.load(std::memory_order_relaxed);
    const uint32_t length = slot.length.load(std::memory_order_relaxed);
    m.everything = length > kKeyWords * 8;
    if (!m.everything) {
      uint64_t words[kKeyWords];
      for (size_t i = 0; i < kKeyWords; ++i)
        words[i] = slot.words[i].load(std::memory_order_relaxed);
      m.key.assign(reinterpret_cast<const char*>(words), length);
    }
    out->push_back(std::move(m));
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  if (h_->claimed.load(std::memory_order_relaxed) - from > kSlots) {
    out->resize(first);
    *position = h_->head.load(std::memory_order_acquire);  // never past a message in progress
    return false;
  }
  *position = head;
  return true;
}

}  // namespace eloqkv::resp
