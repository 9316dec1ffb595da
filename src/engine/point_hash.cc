#include "engine/point_hash.h"

namespace eloqkv {
namespace {

constexpr uint64_t kMul1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMul2 = 0xC2B2AE3D27D4EB4Full;

uint64_t Mix(uint64_t h, uint64_t word) {
  h ^= word * kMul2;
  h = (h << 31) | (h >> 33);
  return h * kMul1;
}

// A final avalanche, so every input bit reaches the high bits that choose the bucket.
uint64_t Finish(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

uint64_t PointHash::HashOf(uint32_t keyspace, std::string_view key) const {
  uint64_t h = Mix(kMul1 ^ h_->seed, (uint64_t{keyspace} << 32) | key.size());
  const char* p = key.data();
  size_t n = key.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = Mix(h, w);
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = Mix(h, w ^ (uint64_t{0x80} << 56));
  }
  return Finish(h);
}

void PointHash::Place(uint64_t hash, uint32_t ref) {
  const uint64_t n = h_->buckets;
  uint64_t i = Home(hash, n);
  for (;;) {
    const uint64_t w = b_[i].load(std::memory_order_relaxed);
    if (w == kEmpty || w == kErased) {
      if (w == kEmpty) ++h_->filled;
      // Release: a reader that loads this word sees the entry the writer initialised before.
      b_[i].store((uint64_t{Tag(hash)} << 32) | ref, std::memory_order_release);
      return;
    }
    if (++i == n) i = 0;
  }
}

bool PointHash::Insert(uint64_t hash, uint32_t ref) {
  if (h_->filled >= h_->buckets - h_->buckets / 8) return false;
  Place(hash, ref);
  return true;
}

void PointHash::Erase(uint64_t hash, uint32_t ref) {
  const uint64_t n = h_->buckets;
  uint64_t i = Home(hash, n);
  for (uint64_t probes = 0; probes < n; ++probes) {
    const uint64_t w = b_[i].load(std::memory_order_relaxed);
    if (w == kEmpty) return;
    if (w != kErased && static_cast<uint32_t>(w) == ref) {
      b_[i].store(kErased, std::memory_order_release);
      // Erased buckets that end a run go back to empty, so churn seldom needs a rebuild. A
      // reader crossing them looks for a key past them, which cannot be there: the key would
      // have needed the empty bucket after them filled when it was placed.
      while (b_[i == n - 1 ? 0 : i + 1].load(std::memory_order_relaxed) == kEmpty &&
             b_[i].load(std::memory_order_relaxed) == kErased) {
        b_[i].store(kEmpty, std::memory_order_release);
        --h_->filled;
        i = i == 0 ? n - 1 : i - 1;
      }
      return;
    }
    if (++i == n) i = 0;
  }
}

void PointHash::BeginRebuild() {
  h_->rebuild.BeginWrite();
  for (uint64_t i = 0; i < h_->buckets; ++i) b_[i].store(kEmpty, std::memory_order_relaxed);
  h_->filled = 0;
}

uint64_t PointHash::CountLive() const {
  uint64_t live = 0;
  for (uint64_t i = 0; i < h_->buckets; ++i) {
    const uint64_t w = b_[i].load(std::memory_order_relaxed);
    live += w != kEmpty && w != kErased;
  }
  return live;
}

}  // namespace eloqkv
