#include "resp/tracking.h"

#include <algorithm>

namespace eloqkv::resp {

Tracker::~Tracker() {
  if (active()) engine_->UnsubscribeChanges();
}

void Tracker::Retain() {
  if (!active()) position_ = engine_->SubscribeChanges();
}

void Tracker::Release() {
  if (active()) return;
  engine_->UnsubscribeChanges();
  Clear();
}

void Tracker::AddClient() {
  Retain();
  ++clients_;
}

void Tracker::RemoveClient() {
  if (clients_ == 0) return;
  --clients_;
  if (clients_ == 0) Clear();  // nobody tracks: the table goes (waiters stay)
  Release();
}

bool Tracker::AddWaiter(uint64_t client, uint32_t keyspace, std::string_view engine_key) {
  const bool subscribed_now = !active();
  Retain();
  auto [it, first] = waits_of_.try_emplace(client);
  if (first) ++waiting_clients_;
  const uint64_t fp = Engine::KeyFingerprint(keyspace, engine_key);
  if (std::find(it->second.begin(), it->second.end(), fp) != it->second.end())
    return subscribed_now;  // already waiting for it
  it->second.push_back(fp);
  waiters_[fp].emplace_back(client, keyspace);
  return subscribed_now;
}

void Tracker::RemoveWaiter(uint64_t client) {
  auto it = waits_of_.find(client);
  if (it == waits_of_.end()) return;
  for (uint64_t fp : it->second) {
    auto w = waiters_.find(fp);
    if (w == waiters_.end()) continue;
    std::erase_if(w->second, [&](const auto& x) { return x.first == client; });
    if (w->second.empty()) waiters_.erase(w);
  }
  waits_of_.erase(it);
  --waiting_clients_;
  Release();
}

void Tracker::WakeAll(std::vector<uint64_t>* woken) {
  std::vector<uint64_t> all;
  for (const auto& [client, fps] : waits_of_) all.push_back(client);
  for (uint64_t client : all) {
    woken->push_back(client);
    RemoveWaiter(client);
  }
}

void Tracker::Clear() {
  table_.clear();
  key_count_ = item_count_ = 0;
  expiries_ = {};
}

void Tracker::Remember(uint64_t client, std::string_view key, uint32_t keyspace,
                       std::string_view engine_key, int64_t expire_at_ms, uint64_t since) {
  if (clients_ == 0) return;
  const uint64_t fp = Engine::KeyFingerprint(keyspace, engine_key);
  Bucket& bucket = table_[fp];
  auto it =
      std::find_if(bucket.begin(), bucket.end(), [&](const Entry& e) { return e.key == key; });
  if (it == bucket.end()) {
    bucket.push_back(Entry{std::string(key), keyspace, 0, {}});
    it = bucket.end() - 1;
    ++key_count_;
  }
  auto r = std::find_if(it->readers.begin(), it->readers.end(),
                        [&](const Reader& x) { return x.client == client; });
  if (r == it->readers.end()) {
    it->readers.push_back(Reader{client, since});
    ++item_count_;
  } else {
    // Already remembered: a change between its earlier read and this one is still owed.
    r->since = std::min(r->since, since);
  }
  it->expire_at_ms = expire_at_ms;
  if (expire_at_ms > 0) expiries_.emplace(expire_at_ms, fp);
  // Over the limit: invalidate some other key now, so that memory stays bounded.
  if (key_count_ > max_keys_) {
    for (auto victim = table_.begin(); victim != table_.end(); ++victim) {
      if (victim->first == fp) continue;
      Invalidate(victim->first, UINT64_MAX, 0, &evicted_);
      break;
    }
  }
}

bool Tracker::InvalidateEntry(Entry* e, uint64_t at, uint64_t origin,
                              std::vector<Invalidation>* out) {
  auto keep = e->readers.begin();
  for (const Reader& r : e->readers) {
    if (at != UINT64_MAX && at < r.since) {
      *keep++ = r;  // its read already saw this change
      continue;
    }
    out->push_back(Invalidation{r.client, e->key, origin});
    --item_count_;
  }
  e->readers.erase(keep, e->readers.end());
  if (!e->readers.empty()) return false;
  --key_count_;
  return true;
}

void Tracker::Invalidate(uint64_t fingerprint, uint64_t at, uint64_t origin,
                         std::vector<Invalidation>* out) {
  auto it = table_.find(fingerprint);
  if (it == table_.end()) return;
  Bucket& bucket = it->second;
  std::erase_if(bucket, [&](Entry& e) { return InvalidateEntry(&e, at, origin, out); });
  if (bucket.empty()) table_.erase(it);
}

void Tracker::InvalidateKeyspace(uint32_t keyspace, uint64_t at, uint64_t origin,
                                 std::vector<Invalidation>* out) {
  for (auto it = table_.begin(); it != table_.end();) {
    Bucket& bucket = it->second;
    std::erase_if(bucket, [&](Entry& e) {
      return e.keyspace == keyspace && InvalidateEntry(&e, at, origin, out);
    });
    it = bucket.empty() ? table_.erase(it) : std::next(it);
  }
}

void Tracker::Wake(const KeyChange& c, std::vector<uint64_t>* woken) {
  std::vector<uint64_t> clients;
  if (c.whole_keyspace) {
    for (const auto& [fp, list] : waiters_)
      for (const auto& [client, keyspace] : list)
        if (keyspace == c.keyspace) clients.push_back(client);
  } else if (auto it = waiters_.find(c.fingerprint); it != waiters_.end()) {
    for (const auto& [client, keyspace] : it->second) clients.push_back(client);
  }
  for (uint64_t client : clients) {
    if (!waits_of_.contains(client)) continue;  // woken by an earlier key of this batch
    woken->push_back(client);
    RemoveWaiter(client);
  }
}

void Tracker::Collect(int64_t now_ms, uint32_t flushed_keyspace, Collected* collected) {
  std::vector<Invalidation>* out = &collected->invalidations;
  collected->flush_all = false;
  if (!evicted_.empty()) {
    out->insert(out->end(), evicted_.begin(), evicted_.end());
    evicted_.clear();
  }
  if (!active()) return;
  changes_.clear();
  const uint64_t first = position_;
  if (!engine_->ReadChanges(&position_, &changes_)) {
    Clear();
    collected->flush_all = clients_ > 0;
    WakeAll(&collected->woken);
    return;
  }
  for (size_t i = 0; i < changes_.size(); ++i) {
    const KeyChange& c = changes_[i];
    if (!waiters_.empty()) Wake(c, &collected->woken);
    if (c.whole_keyspace && flushed_keyspace != 0 && c.keyspace == flushed_keyspace) {
      Clear();
      collected->flush_all = clients_ > 0;
      continue;
    }
    if (c.whole_keyspace)
      InvalidateKeyspace(c.keyspace, first + i, c.origin, out);
    else
      Invalidate(c.fingerprint, first + i, c.origin, out);
  }
  while (!expiries_.empty() && expiries_.top().first <= now_ms) {
    const uint64_t fp = expiries_.top().second;
    expiries_.pop();
    auto it = table_.find(fp);
    if (it == table_.end()) continue;
    // Only the keys of the bucket past their (latest) expiry.
    Bucket& bucket = it->second;
    std::erase_if(bucket, [&](Entry& e) {
      return e.expire_at_ms != 0 && e.expire_at_ms <= now_ms &&
             InvalidateEntry(&e, UINT64_MAX, 0, out);
    });
    if (bucket.empty()) table_.erase(it);
  }
}

}  // namespace eloqkv::resp
