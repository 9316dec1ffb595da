#include "resp/slow_log.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <thread>

#include "resp/text.h"

namespace eloqkv::resp {

namespace {

constexpr size_t kShownArgBytes = SlowLog::kMaxArgBytes + 32;  // and "... (N more bytes)"
constexpr size_t kTextBytes = 64;                              // peer and name, cut there

struct Slot {
  std::atomic<uint64_t> mark;  // 2*id+1 while written, 2*id+2 once done, 0 never written
  uint64_t id;
  int64_t unix_time_s;
  uint64_t duration_us;
  uint32_t argc;
  uint16_t arg_len[SlowLog::kMaxArgs];
  uint8_t peer_len;
  uint8_t name_len;
  char args[SlowLog::kMaxArgs][kShownArgBytes];
  char peer[kTextBytes];
  char name[kTextBytes];
};

size_t Cut(std::string_view s, char* to, size_t room) {
  const size_t n = std::min(s.size(), room);
  std::memcpy(to, s.data(), n);
  return n;
}

}  // namespace

struct SlowLog::Header {
  std::atomic<uint64_t> next_id;
  std::atomic<uint64_t> reset_id;  // entries below it were reset
  uint64_t capacity;
  Slot* slots() { return reinterpret_cast<Slot*>(this + 1); }
  const Slot* slots() const { return reinterpret_cast<const Slot*>(this + 1); }
};

static_assert(sizeof(SlowLog::Header) % alignof(Slot) == 0);

size_t SlowLog::RequiredBytes(size_t capacity) {
  return sizeof(Header) + capacity * sizeof(Slot);
}

void SlowLog::Format(void* region, size_t capacity) {
  auto* h = new (region) Header();
  h->next_id.store(0);
  h->reset_id.store(0);
  h->capacity = capacity;
  for (size_t i = 0; i < capacity; ++i) new (&h->slots()[i]) Slot{};
}

size_t SlowLog::capacity() const {
  return h_ == nullptr ? 0 : h_->capacity;
}

std::vector<std::string> SlowLog::Shown(std::span<const std::string_view> args) {
  std::vector<bool> redacted(args.size(), false);
  if (!args.empty() && EqualsIgnoreCase(args[0], "auth")) {
    std::fill(redacted.begin() + 1, redacted.end(), true);
  } else if (args.size() > 2 && EqualsIgnoreCase(args[0], "config") &&
             EqualsIgnoreCase(args[1], "set")) {
    // Refused here, but a value may be a password (requirepass, masterauth).
    for (size_t j = 3; j < args.size(); j += 2) redacted[j] = true;
  } else if (!args.empty() && EqualsIgnoreCase(args[0], "hello")) {
    for (size_t j = 2; j < args.size(); ++j) {
      if (EqualsIgnoreCase(args[j], "auth") && j + 2 < args.size()) {
        redacted[j + 1] = redacted[j + 2] = true;
        j += 2;
      } else if (EqualsIgnoreCase(args[j], "setname")) {
        ++j;
      }
    }
  }
  const size_t shown = std::min(args.size(), kMaxArgs);
  std::vector<std::string> out;
  out.reserve(shown);
  for (size_t j = 0; j < shown; ++j) {
    if (shown != args.size() && j + 1 == shown)
      out.push_back("... (" + std::to_string(args.size() - shown + 1) + " more arguments)");
    else if (redacted[j])
      out.emplace_back("(redacted)");
    else if (args[j].size() > kMaxArgBytes)
      out.push_back(std::string(args[j].substr(0, kMaxArgBytes)) + "... (" +
                    std::to_string(args[j].size() - kMaxArgBytes) + " more bytes)");
    else
      out.emplace_back(args[j]);
  }
  return out;
}

void SlowLog::Add(std::span<const std::string_view> args, uint64_t duration_us,
                  std::string_view peer, std::string_view name, int64_t unix_time_s) {
  if (h_ == nullptr || h_->capacity == 0) return;
  const std::vector<std::string> shown = Shown(args);
  const uint64_t id = h_->next_id.fetch_add(1, std::memory_order_relaxed);
  Slot& s = h_->slots()[id % h_->capacity];
  // The slot is this writer's alone once its mark goes from done to 2*id+1. Another writer in it
  // (a lap of the ring ago) is waited for a little; a newer entry already there, or a writer
  // that does not finish (it died), and this entry is dropped: the log is never blocked on.
  uint64_t mark = s.mark.load(std::memory_order_acquire);
  for (int spins = 0;; ++spins) {
    if (mark > 2 * id) return;
    if (mark % 2 == 0 && s.mark.compare_exchange_weak(mark, 2 * id + 1, std::memory_order_acquire))
      break;
    if (spins == 10000) return;
    if (mark % 2 == 1) {
      std::this_thread::yield();
      mark = s.mark.load(std::memory_order_acquire);
    }
  }
  std::atomic_thread_fence(std::memory_order_release);
  s.id = id;
  s.unix_time_s = unix_time_s;
  s.duration_us = duration_us;
  s.argc = static_cast<uint32_t>(shown.size());
  for (size_t j = 0; j < shown.size(); ++j)
    s.arg_len[j] = static_cast<uint16_t>(Cut(shown[j], s.args[j], kShownArgBytes));
  s.peer_len = static_cast<uint8_t>(Cut(peer, s.peer, kTextBytes - 1));
  s.name_len = static_cast<uint8_t>(Cut(name, s.name, kTextBytes - 1));
  s.mark.store(2 * id + 2, std::memory_order_release);
}

std::vector<SlowLog::Entry> SlowLog::Newest(size_t count) const {
  std::vector<Entry> out;
  if (h_ == nullptr || h_->capacity == 0) return out;
  const uint64_t next = h_->next_id.load(std::memory_order_acquire);
  const uint64_t oldest = std::max(h_->reset_id.load(std::memory_order_acquire),
                                   next > h_->capacity ? next - h_->capacity : uint64_t{0});
  for (uint64_t id = next; id > oldest && out.size() < count;) {
    --id;
    const Slot& s = h_->slots()[id % h_->capacity];
    if (s.mark.load(std::memory_order_acquire) != 2 * id + 2) continue;  // being written
    Entry e;
    e.id = s.id;
    e.unix_time_s = s.unix_time_s;
    e.duration_us = s.duration_us;
    const uint32_t argc = std::min<uint32_t>(s.argc, kMaxArgs);
    for (uint32_t j = 0; j < argc; ++j)
      e.args.emplace_back(s.args[j], std::min<size_t>(s.arg_len[j], kShownArgBytes));
    e.peer.assign(s.peer, std::min<size_t>(s.peer_len, kTextBytes));
    e.name.assign(s.name, std::min<size_t>(s.name_len, kTextBytes));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.mark.load(std::memory_order_relaxed) != 2 * id + 2 || e.id != id) continue;  // rewritten
    out.push_back(std::move(e));
  }
  return out;
}

size_t SlowLog::Length() const {
  if (h_ == nullptr || h_->capacity == 0) return 0;
  const uint64_t next = h_->next_id.load(std::memory_order_acquire);
  const uint64_t oldest = std::max(h_->reset_id.load(std::memory_order_acquire),
                                   next > h_->capacity ? next - h_->capacity : uint64_t{0});
  size_t n = 0;
  for (uint64_t id = oldest; id < next; ++id)
    n += h_->slots()[id % h_->capacity].mark.load(std::memory_order_acquire) == 2 * id + 2;
  return n;
}

void SlowLog::Reset() {
  if (h_ == nullptr) return;
  h_->reset_id.store(h_->next_id.load(std::memory_order_acquire), std::memory_order_release);
}

}  // namespace eloqkv::resp
