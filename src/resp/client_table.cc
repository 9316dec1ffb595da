#include "resp/client_table.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <type_traits>

namespace eloqkv::resp {

static_assert(std::is_trivially_copyable_v<ClientSnapshot>);

struct SharedClientTable::Slot {
  std::atomic<uint64_t> client_id;  // 0: free
  std::atomic<uint32_t> seq;
  std::atomic<uint64_t> kill;  // the client id a CLIENT KILL aimed at (0: none)
  std::atomic<uint64_t> unblock;  // a CLIENT UNBLOCK: UnblockRequest (0: none)
  std::atomic<int32_t> owner_pid;
  ClientSnapshot snapshot;
};

struct SharedClientTable::Header {
  uint64_t slots;
  std::atomic<uint64_t> hint;  // where the next Claim starts looking
  Slot* at(size_t i) { return reinterpret_cast<Slot*>(this + 1) + i; }
};

void ClientSnapshot::Set(char* field, size_t size, std::string_view value) {
  const size_t n = std::min(value.size(), size - 1);
  if (n > 0) std::memcpy(field, value.data(), n);
  field[n] = '\0';
}

size_t SharedClientTable::RequiredBytes(size_t slots) {
  return sizeof(Header) + slots * sizeof(Slot);
}

void SharedClientTable::Format(void* region, size_t slots) {
  auto* h = new (region) Header();
  h->slots = slots;
  h->hint.store(0);
  for (size_t i = 0; i < slots; ++i) {
    Slot* s = new (h->at(i)) Slot();
    s->client_id.store(0);
    s->seq.store(0);
    s->kill.store(0);
    s->unblock.store(0);
    s->owner_pid.store(0);
  }
}

void SharedClientTable::Attach(void* region) {
  h_ = static_cast<Header*>(region);
}

size_t SharedClientTable::slots() const {
  return h_ == nullptr ? 0 : h_->slots;
}

int SharedClientTable::Claim(uint64_t id) {
  const size_t n = slots();
  const size_t start = n == 0 ? 0 : h_->hint.load(std::memory_order_relaxed) % n;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    Slot* s = h_->at(i);
    uint64_t expected = 0;
    if (s->client_id.load(std::memory_order_relaxed) == 0 &&
        s->client_id.compare_exchange_strong(expected, id, std::memory_order_acq_rel)) {
      s->kill.store(0, std::memory_order_relaxed);
      s->unblock.store(0, std::memory_order_relaxed);
      s->owner_pid.store(static_cast<int32_t>(::getpid()), std::memory_order_relaxed);
      h_->hint.store(i + 1, std::memory_order_relaxed);
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool SharedClientTable::Contains(uint64_t id) const {
  for (size_t i = 0; i < slots(); ++i)
    if (h_->at(i)->client_id.load(std::memory_order_relaxed) == id) return true;
  return false;
}

void SharedClientTable::Publish(int slot, const ClientSnapshot& snapshot) {
  Slot* s = h_->at(static_cast<size_t>(slot));
  const uint32_t seq = s->seq.load(std::memory_order_relaxed);
  s->seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(static_cast<void*>(&s->snapshot), &snapshot, sizeof(snapshot));
  s->seq.store(seq + 2, std::memory_order_release);
}

bool SharedClientTable::Read(int slot, ClientSnapshot* out) const {
  Slot* s = h_->at(static_cast<size_t>(slot));
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (s->client_id.load(std::memory_order_acquire) == 0) return false;
    const uint32_t before = s->seq.load(std::memory_order_acquire);
    if (before & 1) continue;
    std::memcpy(static_cast<void*>(out), &s->snapshot, sizeof(*out));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->seq.load(std::memory_order_relaxed) == before) return out->id != 0;
  }
  return false;  // its owner keeps rewriting it: skip it this time
}

void SharedClientTable::Release(int slot) {
  Slot* s = h_->at(static_cast<size_t>(slot));
  Publish(slot, ClientSnapshot{});
  s->client_id.store(0, std::memory_order_release);
}

void SharedClientTable::ReleaseOrphans() {
  for (size_t i = 0; i < slots(); ++i) {
    Slot* s = h_->at(i);
    const uint64_t id = s->client_id.load(std::memory_order_acquire);
    const pid_t owner = s->owner_pid.load(std::memory_order_relaxed);
    if (id != 0 && owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) {
      uint64_t expected = id;
      s->client_id.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
    }
  }
}

bool SharedClientTable::kill_requested(int slot) const {
  const Slot* s = h_->at(static_cast<size_t>(slot));
  const uint64_t target = s->kill.load(std::memory_order_acquire);
  return target != 0 && target == s->client_id.load(std::memory_order_acquire);
}

// The target's id, not a flag: if the slot changed hands since it was listed, the new client is
// not the one aimed at and is left alone.
void SharedClientTable::RequestKill(int slot, uint64_t client_id) {
  h_->at(static_cast<size_t>(slot))->kill.store(client_id, std::memory_order_release);
}

namespace {
// One word, so that a request is never half written: the client id (40 bits), the low 22 bits
// of its wait's number, how.
constexpr int kParkBits = 22;
constexpr uint64_t kMaxRequestId = (uint64_t{1} << (64 - kParkBits - 2)) - 1;
uint64_t UnblockRequest(uint64_t client_id, uint32_t park, int how) {
  return client_id << (kParkBits + 2) | (uint64_t{park} & ((1u << kParkBits) - 1)) << 2 |
         static_cast<uint64_t>(how);
}
}  // namespace

bool SharedClientTable::RequestUnblock(int slot, uint64_t client_id, uint32_t park, int how) {
  if (client_id > kMaxRequestId) return false;
  h_->at(static_cast<size_t>(slot))
      ->unblock.store(UnblockRequest(client_id, park, how), std::memory_order_release);
  return true;
}

int SharedClientTable::TakeUnblock(int slot, uint32_t park) {
  Slot* s = h_->at(static_cast<size_t>(slot));
  if (s->unblock.load(std::memory_order_relaxed) == 0) return 0;
  const uint64_t request = s->unblock.exchange(0, std::memory_order_acq_rel);
  const int how = static_cast<int>(request & 3);
  // For an earlier holder of the slot, or an earlier wait of this client: not for this one.
  const uint64_t client_id = s->client_id.load(std::memory_order_acquire);
  return request == UnblockRequest(client_id, park, how) ? how : 0;
}

}  // namespace eloqkv::resp
