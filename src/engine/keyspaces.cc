#include "engine/keyspaces.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace eloqkv {
namespace {
uint32_t TableSize(uint32_t max_keyspaces) { return max_keyspaces * 2 + 1; }
}  // namespace

size_t KeyspaceTable::RequiredBytes(uint32_t max_keyspaces) {
  return sizeof(Header) + sizeof(KeyspaceSlot) * TableSize(max_keyspaces);
}

void KeyspaceTable::Format(void* region, uint32_t max_keyspaces) {
  auto* h = new (region) Header();
  h->capacity = TableSize(max_keyspaces);
  h->next_id.store(1);
  auto* s = reinterpret_cast<KeyspaceSlot*>(h + 1);
  for (uint32_t i = 0; i < h->capacity; ++i) {
    new (&s[i]) KeyspaceSlot();
    s[i].state.store(static_cast<uint32_t>(KeyspaceState::kEmpty));
    s[i].id.store(0);
    s[i].min_seq.store(0);
    s[i].name[0] = '\0';
    s[i].counters.Reset();
  }
}

KeyspaceSlot* KeyspaceTable::Probe(uint32_t id, bool for_insert) const {
  const uint32_t cap = h_->capacity;
  KeyspaceSlot* reuse = nullptr;
  for (uint32_t i = 0; i < cap; ++i) {
    KeyspaceSlot* s = &slots()[(id + i) % cap];
    const auto st = static_cast<KeyspaceState>(s->state.load(std::memory_order_acquire));
    if (st == KeyspaceState::kEmpty) return for_insert ? (reuse ? reuse : s) : nullptr;
    if (st == KeyspaceState::kDeleted) {
      if (for_insert && reuse == nullptr) reuse = s;
      continue;
    }
    if (s->id.load(std::memory_order_acquire) == id) return s;
  }
  return for_insert ? reuse : nullptr;
}

KeyspaceSlot* KeyspaceTable::Find(uint32_t id) const {
  if (id == 0) return nullptr;
  KeyspaceSlot* s = Probe(id, false);
  if (s == nullptr || s->state.load(std::memory_order_acquire) != static_cast<uint32_t>(KeyspaceState::kLive))
    return nullptr;
  return s;
}

bool KeyspaceTable::FindByName(std::string_view name, uint32_t* id) const {
  for (uint32_t i = 0; i < h_->capacity; ++i) {
    const KeyspaceSlot& s = slots()[i];
    if (s.state.load(std::memory_order_acquire) == static_cast<uint32_t>(KeyspaceState::kLive) &&
        name == s.name) {
      *id = s.id.load(std::memory_order_acquire);
      return true;
    }
  }
  return false;
}

std::vector<uint32_t> KeyspaceTable::LiveIds() const {
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < h_->capacity; ++i) {
    const KeyspaceSlot& s = slots()[i];
    if (s.state.load(std::memory_order_acquire) == static_cast<uint32_t>(KeyspaceState::kLive))
      ids.push_back(s.id.load(std::memory_order_acquire));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status KeyspaceTable::CheckNewName(std::string_view name) const {
  if (name.empty()) return Status::InvalidArgument("keyspace name must not be empty");
  if (name.size() > kMaxKeyspaceNameSize)
    return Status::InvalidArgument("keyspace name is longer than " +
                                   std::to_string(kMaxKeyspaceNameSize) + " bytes");
  if (name.find('\0') != std::string_view::npos)
    return Status::InvalidArgument("keyspace name must not contain NUL bytes");
  uint32_t existing;
  if (FindByName(name, &existing))
    return Status::KeyExists("keyspace \"" + std::string(name) + "\" already exists");
  uint32_t used = 0;
  for (uint32_t i = 0; i < h_->capacity; ++i) {
    const auto st = static_cast<KeyspaceState>(slots()[i].state.load());
    if (st == KeyspaceState::kLive || st == KeyspaceState::kDropped) ++used;
  }
  if (used >= (h_->capacity - 1) / 2)
    return Status::NoSpace("too many keyspaces (the limit is " +
                           std::to_string((h_->capacity - 1) / 2) + ")");
  return Status::OK();
}

Status KeyspaceTable::Apply(std::string_view name, const KeyspaceRecord& r) {
  KeyspaceSlot* s = Probe(r.id, false);
  if (s == nullptr) {
    if ((r.flags & kKeyspaceDropped) != 0) return Status::OK();  // dropped before we knew it
    s = Probe(r.id, true);
    if (s == nullptr) return Status::NoSpace("keyspace table is full");
    std::memset(s->name, 0, sizeof(s->name));
    std::memcpy(s->name, name.data(), std::min(name.size(), kMaxKeyspaceNameSize));
    s->counters.Reset();
    s->id.store(r.id, std::memory_order_release);
  }
  s->min_seq.store(r.min_seq, std::memory_order_release);
  const auto state = (r.flags & kKeyspaceDropped) ? KeyspaceState::kDropped : KeyspaceState::kLive;
  s->state.store(static_cast<uint32_t>(state), std::memory_order_release);
  RaiseNextId(r.id + 1);
  return Status::OK();
}

void KeyspaceTable::Forget(uint32_t id) {
  KeyspaceSlot* s = Probe(id, false);
  if (s != nullptr && s->state.load() == static_cast<uint32_t>(KeyspaceState::kDropped))
    s->state.store(static_cast<uint32_t>(KeyspaceState::kDeleted), std::memory_order_release);
}

void KeyspaceTable::RaiseNextId(uint32_t at_least) {
  uint32_t cur = h_->next_id.load();
  while (cur < at_least && !h_->next_id.compare_exchange_weak(cur, at_least)) {
  }
}

std::vector<KeyspaceTable::Snapshot> KeyspaceTable::SnapshotAll() const {
  std::vector<Snapshot> out;
  for (uint32_t i = 0; i < h_->capacity; ++i) {
    const KeyspaceSlot& s = slots()[i];
    const auto st = static_cast<KeyspaceState>(s.state.load(std::memory_order_acquire));
    if (st != KeyspaceState::kLive && st != KeyspaceState::kDropped) continue;
    Snapshot snap;
    snap.name = s.name;
    snap.record.id = s.id.load();
    snap.record.min_seq = s.min_seq.load();
    snap.record.flags = st == KeyspaceState::kDropped ? kKeyspaceDropped : 0;
    out.push_back(std::move(snap));
  }
  return out;
}

}  // namespace eloqkv
