#include "engine/value_cache.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "engine/index.h"

namespace eloqkv {
namespace {

constexpr uint32_t kItemMagic = 0x4D455449;  // "ITEM"
constexpr uint32_t kPadMagic = 0x44444150;   // "PADD"
constexpr size_t kMinCacheBytes = size_t{1} << 20;
constexpr size_t kMaxItemValue = size_t{1} << 20;
// Bounds an insert's work: past this many kept items in a row, the next live one is evicted.
constexpr int kMaxSecondChancesPerInsert = 32;
// How far ahead of the tail items have their index entries prefetched. Each eviction checks
// its item's entry, which was a cache miss per insert: ~11 % of a RESP listener's time under
// a SET load. A dozen small items ahead is a few microseconds of inserts.
constexpr uint64_t kEntryPrefetchBytes = 4096;
// A kept item of up to this size is copied out on the stack rather than the heap.
constexpr size_t kKeptItemStackBytes = 1024;

struct ItemHeader {
  uint32_t magic;
  uint32_t size;  // whole item, header included, multiple of 8
  uint32_t entry_ref;
  uint32_t value_len;
  uint64_t seq;
  std::atomic<uint8_t> referenced;
  uint8_t pad[7];
};
static_assert(sizeof(ItemHeader) == 32);

uint64_t ItemSize(size_t value_len) { return (sizeof(ItemHeader) + value_len + 7) & ~uint64_t{7}; }

}  // namespace

struct ValueCache::Header {
  uint64_t capacity;
  ShmMutex mu;
  std::atomic<uint64_t> head;  // next append position
  std::atomic<uint64_t> tail;  // oldest live position
  std::atomic<uint64_t> evictions;
  // Bytes that reached the tail lately, and how many of them were still live (decayed): when
  // little of the ring is live, every live item is worth its copy.
  uint64_t tail_seen;
  uint64_t tail_live;
  // Items before it (and at or past tail) have had their entries prefetched (mutex held).
  uint64_t prefetched;
};

size_t ValueCache::RequiredBytes(size_t cache_memory) {
  const size_t ring = std::max(cache_memory, kMinCacheBytes) & ~size_t{7};
  return sizeof(Header) + ring;
}

void ValueCache::Format(void* region, size_t bytes) {
  auto* h = new (region) Header();
  h->capacity = (bytes - sizeof(Header)) & ~uint64_t{7};
  h->head.store(0);
  h->tail.store(0);
  // The prior: an empty ring counts as dead, so the first items reaching the tail are judged by
  // what is behind them rather than by themselves.
  h->tail_seen = h->capacity / 4;
  h->tail_live = 0;
}

void ValueCache::Attach(void* region, Index* index) {
  h_ = static_cast<Header*>(region);
  index_ = index;
}

char* ValueCache::ring() const { return reinterpret_cast<char*>(h_ + 1); }

size_t ValueCache::max_value_size() const {
  return std::min<size_t>(kMaxItemValue, h_->capacity / 8);
}

void ValueCache::Prefetch(uint64_t pos) const {
  if (pos != 0) __builtin_prefetch(ring() + (pos - 1) % h_->capacity);
}

bool ValueCache::Get(uint64_t pos, uint32_t ref, uint64_t seq, std::string* out) {
  if (pos == 0) return false;
  const uint64_t at = pos - 1;
  if (at < h_->tail.load(std::memory_order_acquire)) return false;
  const char* p = ring() + at % h_->capacity;
  auto* item = reinterpret_cast<const ItemHeader*>(p);
  const uint32_t magic = item->magic;
  const uint32_t value_len = item->value_len;
  const uint32_t item_ref = item->entry_ref;
  const uint64_t item_seq = item->seq;
  if (magic != kItemMagic || item_ref != ref || item_seq != seq || value_len > kMaxItemValue ||
      at % h_->capacity + ItemSize(value_len) > h_->capacity)
    return false;
  out->assign(p + sizeof(ItemHeader), value_len);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (at < h_->tail.load(std::memory_order_relaxed)) return false;  // overwritten while copying
  auto& referenced = const_cast<ItemHeader*>(item)->referenced;
  if (referenced.load(std::memory_order_relaxed) == 0)
    referenced.store(1, std::memory_order_relaxed);
  return true;
}

bool ValueCache::Contains(uint64_t pos, uint32_t ref, uint64_t seq) const {
  if (pos == 0 || pos - 1 < h_->tail.load(std::memory_order_acquire)) return false;
  const auto* item = reinterpret_cast<const ItemHeader*>(ring() + (pos - 1) % h_->capacity);
  return item->magic == kItemMagic && item->entry_ref == ref && item->seq == seq;
}

// Called with the mutex held, for a position between tail and head: the bytes from it to the
// next item. An item or pad says its size; a position in the unpadded gap at the ring's end
// (too short for a header) skips to the start.
uint64_t ValueCache::SpanAt(uint64_t pos) const {
  const uint64_t cap = h_->capacity;
  const uint64_t off = pos % cap;
  if (cap - off < sizeof(ItemHeader)) return cap - off;
  const auto* item = reinterpret_cast<const ItemHeader*>(ring() + off);
  return item->magic == kItemMagic || item->magic == kPadMagic ? item->size : cap - off;
}

// Called with the mutex held. Walks the items from the tail on, as eviction will, so that each
// one's entry is in the CPU cache by the time the tail reaches it.
void ValueCache::PrefetchEntriesAhead(uint64_t tail, uint64_t head) {
  uint64_t at = std::max(h_->prefetched, tail);
  const uint64_t limit = std::min(head, tail + kEntryPrefetchBytes);
  while (at < limit) {
    const uint64_t off = at % h_->capacity;
    const auto* item = reinterpret_cast<const ItemHeader*>(ring() + off);
    if (h_->capacity - off >= sizeof(ItemHeader) && item->magic == kItemMagic)
      index_->PrefetchEntryRef(item->entry_ref);
    const uint64_t span = SpanAt(at);
    if (span == 0) break;
    at += span;
  }
  h_->prefetched = at;
}

// Called with the mutex held. Advances tail until `need` bytes fit after head, giving live items
// a second chance (see the header's invariants).
bool ValueCache::MakeRoom(uint64_t need, int* second_chances) {
  const uint64_t cap = h_->capacity;
  for (;;) {
    uint64_t head = h_->head.load(std::memory_order_relaxed);
    uint64_t tail = h_->tail.load(std::memory_order_relaxed);
    // Never start an item in the last bytes of the ring: pad to the start instead.
    const uint64_t off = head % cap;
    if (off + need > cap) {
      const uint64_t pad = cap - off;
      if (head + pad - tail > cap) {
        // The pad itself needs room: fall through to evict.
      } else {
        auto* item = reinterpret_cast<ItemHeader*>(ring() + off);
        if (pad >= sizeof(ItemHeader)) {
          item->magic = kPadMagic;
          item->size = static_cast<uint32_t>(pad);
        }
        h_->head.store(head + pad, std::memory_order_release);
        continue;
      }
    } else if (head + need - tail <= cap) {
      return true;
    }
    if (tail == head) return false;  // empty and still no room: cannot happen for sane sizes
    PrefetchEntriesAhead(tail, head);
    auto* item = reinterpret_cast<ItemHeader*>(ring() + tail % cap);
    const uint64_t size = SpanAt(tail);
    const bool live = cap - tail % cap >= sizeof(ItemHeader) && item->magic == kItemMagic &&
                      index_->LoadCachePos(item->entry_ref) == tail + 1 &&
                      index_->LoadEntrySeq(item->entry_ref) == item->seq;
    h_->tail_seen += size;
    if (live) h_->tail_live += size;
    if (h_->tail_seen > cap / 4) {
      h_->tail_seen /= 2;
      h_->tail_live /= 2;
    }
    // CLOCK keeps what was read since it was cached. Overwritten values leave dead copies behind,
    // so while most of what reaches the tail is dead, unread live values are kept too: a data set
    // smaller than the cache then stays whole however much is written through it.
    const bool mostly_dead = h_->tail_live * 4 < h_->tail_seen * 3;
    const bool keep = live && *second_chances > 0 &&
                      (mostly_dead || item->referenced.load(std::memory_order_relaxed) != 0);
    // A kept item is copied out first: making room for it may reuse its bytes. (Its size, not
    // the largest item's: allocating 1 MiB per call was an mmap and a munmap each time.)
    char stack_bytes[kKeptItemStackBytes];
    std::unique_ptr<char[]> heap_bytes;
    char* saved_bytes = stack_bytes;
    if (keep) {
      if (size > sizeof(stack_bytes)) {
        heap_bytes = std::make_unique_for_overwrite<char[]>(size);
        saved_bytes = heap_bytes.get();
      }
      std::memcpy(saved_bytes, item, size);
    }
    h_->tail.store(tail + size, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_release);
    h_->evictions.fetch_add(1, std::memory_order_relaxed);
    if (keep) {
      --*second_chances;
      auto* saved = reinterpret_cast<ItemHeader*>(saved_bytes);
      const uint64_t item_size = saved->size;
      if (!MakeRoom(item_size, second_chances)) continue;
      const uint64_t at = h_->head.load(std::memory_order_relaxed);
      char* dst = ring() + at % cap;
      std::memcpy(dst, saved_bytes, item_size);
      reinterpret_cast<ItemHeader*>(dst)->referenced.store(0, std::memory_order_relaxed);
      h_->head.store(at + item_size, std::memory_order_release);
      index_->CasCachePos(saved->entry_ref, tail + 1, at + 1);
    }
  }
}

void ValueCache::Insert(uint32_t ref, uint64_t seq, uint64_t observed_pos, std::string_view value) {
  if (value.size() > max_value_size()) return;
  const uint64_t size = ItemSize(value.size());
  uint64_t at;
  {
    ShmLockGuard lock(h_->mu);
    int second_chances = kMaxSecondChancesPerInsert;
    if (!MakeRoom(size, &second_chances)) return;
    at = h_->head.load(std::memory_order_relaxed);
    char* dst = ring() + at % h_->capacity;
    auto* item = reinterpret_cast<ItemHeader*>(dst);
    item->magic = kItemMagic;
    item->size = static_cast<uint32_t>(size);
    item->entry_ref = ref;
    item->value_len = static_cast<uint32_t>(value.size());
    item->seq = seq;
    item->referenced.store(0, std::memory_order_relaxed);
    if (!value.empty()) std::memcpy(dst + sizeof(ItemHeader), value.data(), value.size());
    h_->head.store(at + size, std::memory_order_release);
  }
  index_->CasCachePos(ref, observed_pos, at + 1);
}

uint64_t ValueCache::used_bytes() const {
  return h_->head.load(std::memory_order_relaxed) - h_->tail.load(std::memory_order_relaxed);
}
uint64_t ValueCache::capacity() const { return h_->capacity; }
uint64_t ValueCache::evictions() const { return h_->evictions.load(std::memory_order_relaxed); }

}  // namespace eloqkv
