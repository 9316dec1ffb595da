#include "engine/cache_warmer.h"

#include <algorithm>
#include <string_view>
#include <vector>

namespace eloqkv {

bool CacheWarmer::Room(uint64_t* used, uint64_t* room) const {
  uint64_t limit = 0;
  engine_->CacheUsage(used, &limit);
  const auto full = static_cast<uint64_t>(static_cast<double>(limit) * kFullFraction);
  *room = full > *used ? full - *used : 0;
  return *room > 0;
}

size_t CacheWarmer::BatchKeys(uint64_t room) const {
  if (values_measured_ == 0 || bytes_added_ == 0) return kFirstBatchKeys;
  const uint64_t per_value = std::max<uint64_t>(1, bytes_added_ / values_measured_);
  return static_cast<size_t>(std::clamp<uint64_t>(room / per_value, 1, kBatchKeys));
}

Status CacheWarmer::Step(size_t max_keys, int64_t until_ms, bool* done) {
  uint64_t used = 0, room = 0;
  if (!done_ && engine_->state() != EngineState::kReady) done_ = interrupted_ = true;
  if (!done_ && !Room(&used, &room)) done_ = true;
  *done = done_;
  if (done_) return Status::OK();
  std::vector<KeyspaceStats> spaces = engine_->ListKeyspaces();
  std::sort(spaces.begin(), spaces.end(),
            [](const KeyspaceStats& a, const KeyspaceStats& b) { return a.id < b.id; });
  std::vector<std::string> keys;
  std::vector<std::string_view> views;
  size_t batch = BatchKeys(room);
  // Reads the batch's uncached values and learns what a value takes in the cache, so that the
  // next batch fits the room left; false once there is none.
  auto read_batch = [&] {
    views.assign(keys.begin(), keys.end());
    const size_t read = engine_->Prefetch(keyspace_, views, Engine::PrefetchDepth::kDevice);
    keys.clear();
    values_read_ += read;
    const uint64_t before = used;
    const bool more = Room(&used, &room);
    if (read > 0 && used > before) {  // readers' fills count too: an estimate on the high side
      bytes_added_ += used - before;
      values_measured_ += read;
    }
    batch = BatchKeys(room);
    return more;
  };
  auto out_of_time = [&] { return until_ms != 0 && NowMillis() >= until_ms; };
  size_t visited = 0;
  for (const KeyspaceStats& space : spaces) {
    if (space.id < keyspace_) continue;
    if (space.id != keyspace_) {  // the one visited last is gone, or done: start the next
      keyspace_ = space.id;
      started_ = false;
    }
    ScanOptions options;
    options.keys_only = true;
    if (started_) {
      options.lower = last_key_;
      options.lower_inclusive = false;
    }
    std::unique_ptr<Iterator> it = engine_->NewIterator(keyspace_, options);
    for (; it->Valid() && visited < max_keys; it->Next()) {
      keys.emplace_back(it->key());
      last_key_.assign(it->key());
      started_ = true;
      ++visited;
      ++keys_visited_;
      if (keys.size() >= batch) {
        if (!read_batch()) {
          done_ = *done = true;
          return Status::OK();
        }
        if (out_of_time()) return Status::OK();  // the next step resumes after last_key_
      }
    }
    // A keyspace dropped meanwhile ends its walk; nothing else stops the warming.
    if (!it->status().ok() && !it->status().IsNotFound()) return it->status();
    const bool more_here = it->Valid();
    it.reset();
    if (!keys.empty() && !read_batch()) {
      done_ = *done = true;
      return Status::OK();
    }
    if (more_here || visited >= max_keys) return Status::OK();
    ++keyspace_;  // this one is done
    started_ = false;
  }
  done_ = *done = true;
  return Status::OK();
}

}  // namespace eloqkv
