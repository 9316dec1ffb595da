#include "engine/index.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <random>
#include <unordered_map>

#include "engine/eloqkv.h"
#include "engine/point_hash.h"

namespace eloqkv {
namespace {

constexpr uint64_t kIndexMagic = 0x3158444E4956514Bull;  // "KQVINDX1"
constexpr size_t kPage = Index::kPageSize;
constexpr size_t kMinIndexBytes = size_t{1} << 20;
constexpr size_t kGuardPages = 2;

// Entry block size classes. The last spans two pages so a maximal key fits.
constexpr uint32_t kClassSizes[] = {64,   80,   96,   112,  128,  160,  192,  224,  256,
                                    320,  384,  448,  512,  640,  768,  896,  1024, 1280,
                                    1536, 1792, 2048, 2560, 3072, 3584, 4096, 8192};
constexpr int kNumClasses = sizeof(kClassSizes) / sizeof(kClassSizes[0]);

// Page kinds: 0 for an unused page, kPageNode, or class + 1 for an entry page.
constexpr uint8_t kPageNode = 0xFF;

constexpr uint8_t kEntryTombstone = 1;
constexpr uint8_t kEntrySeparator = 2;
constexpr uint8_t kEntryFree = 4;

constexpr uint8_t kNodeObsolete = 1;

// 16 key bytes after the node's common prefix, as two big-endian words, zero-padded.
struct Prefix {
  uint64_t hi;
  uint64_t lo;
  bool operator==(const Prefix& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const Prefix& o) const { return !(*this == o); }
  bool operator<(const Prefix& o) const { return hi != o.hi ? hi < o.hi : lo < o.lo; }
};

struct Slot {
  Prefix prefix;
  uint32_t keyspace;
  uint32_t ref;
};

// The longest key prefix a node may hold for all its slots (see Node::skip).
constexpr size_t kMaxSkip = 40;
constexpr size_t kNodeHeaderBytes = 16;
constexpr size_t kNodeTailBytes = 8 + kMaxSkip;
constexpr size_t kNodeSlotBytes = kPage - kNodeHeaderBytes - kNodeTailBytes;
constexpr int kLeafCap = static_cast<int>(kNodeSlotBytes / sizeof(Slot));  // 168 with 24-byte slots
constexpr int kInnerCap =
    static_cast<int>((kNodeSlotBytes - sizeof(uint32_t)) / (sizeof(Slot) + 4));  // 143

// Sixteen key bytes from `skip` on, big-endian and zero-padded: among keys that share their
// first `skip` bytes, comparing prefixes orders keys exactly as comparing the keys does whenever
// the prefixes differ, so a search touches a key's entry (a likely cache and TLB miss) only when
// the prefixes tie. Sixteen bytes separate typical keys ("agent-000123456", a UUID) without one;
// the node's skip takes away what its keys have in common ("myapp:session:user:").
Prefix PrefixOf(std::string_view key, size_t skip = 0) {
  unsigned char b[16] = {0};
  // An empty view may have no data at all, which memcpy must not be given even for 0 bytes.
  if (key.size() > skip) std::memcpy(b, key.data() + skip, std::min<size_t>(16, key.size() - skip));
  Prefix p{0, 0};
  for (int i = 0; i < 8; ++i) p.hi = (p.hi << 8) | b[i];
  for (int i = 8; i < 16; ++i) p.lo = (p.lo << 8) | b[i];
  return p;
}

size_t CommonPrefixLength(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

int ClassFor(size_t bytes) {
  for (int c = 0; c < kNumClasses; ++c)
    if (kClassSizes[c] >= bytes) return c;
  return -1;
}

size_t PagesPerBlock(int c) { return kClassSizes[c] > kPage ? kClassSizes[c] / kPage : 1; }
size_t BlocksPerCarve(int c) { return kClassSizes[c] > kPage ? 1 : kPage / kClassSizes[c]; }

struct SearchKey {
  SearchKey(uint32_t k, std::string_view s) : ks(k), key(s), prefix(PrefixOf(s)) {}
  uint32_t ks;
  std::string_view key;
  Prefix prefix;
};

}  // namespace

struct Index::Entry {
  VersionLock lock;
  uint32_t keyspace;
  uint16_t key_len;
  uint8_t flags;
  uint8_t size_class;
  uint32_t segment;
  uint32_t offset;
  uint32_t length;
  uint32_t next_free;
  uint64_t seq;
  int64_t expire_at_ms;
  std::atomic<uint64_t> cache_pos;

  char* key_data() { return reinterpret_cast<char*>(this) + sizeof(Entry); }
  const char* key_data() const { return reinterpret_cast<const char*>(this) + sizeof(Entry); }
};
static_assert(sizeof(Index::Entry) == 56, "entry header layout");

size_t Index::EntryBytes(size_t key_len) {
  const int c = ClassFor(sizeof(Entry) + key_len);
  const size_t block = c < 0 ? sizeof(Entry) + key_len : kClassSizes[c];
  return block + 2 * sizeof(uint32_t);  // a leaf slot's ref, the point table's
}

struct Index::Node {
  VersionLock lock;
  uint16_t count;  // leaf: slots; inner: separators (children = count + 1)
  uint8_t level;   // 0 = leaf
  uint8_t flags;
  // When skip > 0, every slot's key is in keyspace skip_keyspace and starts with the skip bytes
  // of skipped, and the slot's prefix holds its key's bytes from skip on. A node's range is wider
  // than its keys (separators are cut short, the edge nodes reach past their keys, an emptied
  // neighbour's range passes to it), so a search key need not share them: it then sorts before
  // or after every slot. Only skip is in the header's cache line:
  // a search reads the rest only when it is not 0.
  uint16_t skip;
  uint16_t unused;
  union {
    Slot leaf[kLeafCap];
    struct {
      Slot seps[kInnerCap];
      uint32_t children[kInnerCap + 1];
    } inner;
  };
  uint32_t next_free;
  uint32_t skip_keyspace;
  char skipped[kMaxSkip];
};
static_assert(sizeof(Index::Node) <= kPage, "node fits a page");
static_assert(offsetof(Index::Node, leaf) == kNodeHeaderBytes, "node header layout");

struct Index::Header {
  uint64_t magic;
  uint64_t bytes;
  uint32_t page_count;
  uint32_t first_data_page;
  std::atomic<uint32_t> root;
  std::atomic<uint32_t> height;
  uint32_t bump_page;
  uint32_t free_node_head;
  uint32_t free_nodes;
  uint32_t class_free_head[kNumClasses];
  uint32_t class_free_count[kNumClasses];
  std::atomic<uint64_t> entries;
  std::atomic<uint64_t> used_pages;
  uint32_t max_key_len;  // longest key ever inserted: bounds separator sizes
  uint64_t hash_offset;  // where the point hash's buckets start, from the region's base
  PointHash::Header hash;
  uint8_t* page_class() { return reinterpret_cast<uint8_t*>(this + 1); }
};

namespace {

// Everything below works on a base pointer plus offsets. A small accessor keeps the casts in one
// place and bounds-checks references an optimistic reader may have read from a torn node.
class Mem {
 public:
  explicit Mem(char* base) : base_(base), h_(reinterpret_cast<Index::Header*>(base)) {}

  Index::Header* h() const { return h_; }
  PointHash hash() const {
    return PointHash(&h_->hash, reinterpret_cast<std::atomic<uint64_t>*>(base_ + h_->hash_offset));
  }
  Index::Node* node(uint32_t page) const {
    return reinterpret_cast<Index::Node*>(base_ + size_t{page} * kPage);
  }
  bool valid_node(uint32_t page) const {
    return page >= h_->first_data_page && page < h_->page_count;
  }
  Index::Entry* entry(uint32_t ref) const {
    return reinterpret_cast<Index::Entry*>(base_ + size_t{ref} * 8);
  }
  // Allocatable pages end two guard pages before the region does, so reading a maximal key from
  // any block stays inside the region even when the key length was read from a torn entry.
  bool valid_entry(uint32_t ref) const {
    return ref != 0 && size_t{ref} * 8 >= size_t{h_->first_data_page} * kPage &&
           size_t{ref} * 8 < size_t{h_->page_count} * kPage;
  }

  // Optimistic comparison of a search key with a slot, whose prefix starts at the same byte as
  // `prefix` (the search key's); sets *bad when the slot's entry is not plausible (the caller
  // restarts).
  int Compare(const SearchKey& k, const Prefix& prefix, const Slot& s, bool* bad) const {
    if (k.ks != s.keyspace) return k.ks < s.keyspace ? -1 : 1;
    if (prefix != s.prefix) return prefix < s.prefix ? -1 : 1;
    return CompareKey(k, s, bad);
  }

  // The same, on whole keys.
  int CompareKey(const SearchKey& k, const Slot& s, bool* bad) const {
    if (k.ks != s.keyspace) return k.ks < s.keyspace ? -1 : 1;
    if (!valid_entry(s.ref)) {
      *bad = true;
      return 0;
    }
    const Index::Entry* e = entry(s.ref);
    const size_t len = e->key_len;
    if (len > kMaxKeySize) {
      *bad = true;
      return 0;
    }
    const size_t n = std::min(len, k.key.size());
    const int c = n ? std::memcmp(k.key.data(), e->key_data(), n) : 0;
    if (c != 0) return c;
    return k.key.size() < len ? -1 : (k.key.size() > len ? 1 : 0);
  }

  // First slot >= key in a leaf (or first separator > key in an inner node when upper).
  int Search(const Index::Node* n, const Slot* slots, int count, const SearchKey& k, bool upper,
             bool* bad) const {
    Prefix prefix = k.prefix;
    const size_t skip = n->skip;
    if (skip > 0) {
      if (skip > kMaxSkip) {
        *bad = true;
        return 0;
      }
      // A key without the node's common prefix sorts before or after all its slots.
      if (k.ks != n->skip_keyspace) return k.ks < n->skip_keyspace ? 0 : count;
      if (k.key.empty()) return 0;
      const int c = std::memcmp(k.key.data(), n->skipped, std::min(skip, k.key.size()));
      if (c < 0 || (c == 0 && k.key.size() < skip)) return 0;
      if (c > 0) return count;
      prefix = PrefixOf(k.key, skip);
    }
    int lo = 0, hi = count;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      const int c = Compare(k, prefix, slots[mid], bad);
      if (*bad) return 0;
      if (upper ? c >= 0 : c > 0) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  std::string_view KeyOf(const Slot& s) const {
    const Index::Entry* e = entry(s.ref);
    return {e->key_data(), e->key_len};
  }

  // ---- allocation (writer only) ----
  uint32_t AllocNode(uint8_t level) {
    uint32_t page;
    if (h_->free_node_head != 0) {
      page = h_->free_node_head;
      h_->free_node_head = node(page)->next_free;
      --h_->free_nodes;
    } else {
      if (h_->bump_page >= h_->page_count) return 0;
      page = h_->bump_page++;
      h_->page_class()[page] = kPageNode;
      h_->used_pages.fetch_add(1, std::memory_order_relaxed);
      new (&node(page)->lock) VersionLock();
    }
    Index::Node* n = node(page);
    n->lock.BeginWrite();
    n->count = 0;
    n->level = level;
    n->flags = 0;
    n->next_free = 0;
    n->skip = 0;
    n->skip_keyspace = 0;
    n->lock.EndWrite();
    return page;
  }

  // ---- a node's common prefix (writer only, inside the node's write bracket) ----
  // Makes the first `skip` bytes of `key` the node's common prefix and recomputes every slot's
  // prefix from its key (an entry read per slot: only when a split or an outlier changes it).
  void SetSkip(Index::Node* n, Slot* slots, int count, uint32_t keyspace, std::string_view key,
               size_t skip) {
    n->skip = static_cast<uint16_t>(skip);
    n->skip_keyspace = skip > 0 ? keyspace : 0;
    if (skip > 0 && key.data() != n->skipped) std::memmove(n->skipped, key.data(), skip);
    for (int i = 0; i < count; ++i) slots[i].prefix = PrefixOf(KeyOf(slots[i]), skip);
  }

  // Shortens the node's common prefix, if need be, so that (keyspace, key) shares it.
  void ShareSkipWith(Index::Node* n, Slot* slots, int count, uint32_t keyspace,
                     std::string_view key) {
    if (n->skip == 0) return;
    const size_t keep =
        keyspace == n->skip_keyspace
            ? CommonPrefixLength(key.substr(0, n->skip), std::string_view(n->skipped, n->skip))
            : 0;
    if (keep < n->skip)
      SetSkip(n, slots, count, keyspace, std::string_view(n->skipped, keep), keep);
  }

  // A split half. When neighbouring slots tie on their prefixes (a search between them reads
  // an entry), its common prefix becomes everything its slots share (a sorted run shares what
  // its first and last keys do); otherwise it stays, since raising it reads every slot's entry.
  // `from` is the split node, whose skip the slots' prefixes start at; it may be `n` itself.
  void FitSkip(Index::Node* n, Slot* slots, int count, const Index::Node* from) {
    bool ties = false;
    for (int i = 1; i < count && !ties; ++i)
      ties = slots[i].prefix == slots[i - 1].prefix && slots[i].keyspace == slots[i - 1].keyspace;
    size_t skip = from->skip;
    std::string_view first;
    if (ties && slots[0].keyspace == slots[count - 1].keyspace) {
      first = KeyOf(slots[0]);
      skip = std::min(kMaxSkip, CommonPrefixLength(first, KeyOf(slots[count - 1])));
    }
    if (skip == from->skip) {  // the same prefix: the slots' prefixes hold
      if (n != from) {
        n->skip = from->skip;
        n->skip_keyspace = from->skip_keyspace;
        std::memcpy(n->skipped, from->skipped, from->skip);
      }
      return;
    }
    SetSkip(n, slots, count, slots[0].keyspace, first, skip);
  }

  // Caller holds the node's write bracket (or the node is unreachable).
  void FreeNode(uint32_t page) {
    Index::Node* n = node(page);
    n->flags = kNodeObsolete;
    n->next_free = h_->free_node_head;
    h_->free_node_head = page;
    ++h_->free_nodes;
  }

  bool Carve(int c) {
    const size_t pages = PagesPerBlock(c);
    if (h_->bump_page + pages > h_->page_count) return false;
    const uint32_t first = h_->bump_page;
    h_->bump_page += static_cast<uint32_t>(pages);
    h_->used_pages.fetch_add(pages, std::memory_order_relaxed);
    for (size_t i = 0; i < pages; ++i) h_->page_class()[first + i] = static_cast<uint8_t>(c + 1);
    const size_t blocks = BlocksPerCarve(c);
    for (size_t b = blocks; b-- > 0;) {
      const size_t off = size_t{first} * kPage + b * kClassSizes[c];
      const auto ref = static_cast<uint32_t>(off / 8);
      Index::Entry* e = entry(ref);
      new (&e->lock) VersionLock();
      e->flags = kEntryFree;
      e->size_class = static_cast<uint8_t>(c);
      e->key_len = 0;
      e->next_free = h_->class_free_head[c];
      h_->class_free_head[c] = ref;
      ++h_->class_free_count[c];
    }
    return true;
  }

  uint32_t AllocEntry(size_t key_len) {
    const int c = ClassFor(sizeof(Index::Entry) + key_len);
    if (c < 0) return 0;
    if (h_->class_free_head[c] == 0 && !Carve(c)) return 0;
    const uint32_t ref = h_->class_free_head[c];
    h_->class_free_head[c] = entry(ref)->next_free;
    --h_->class_free_count[c];
    return ref;
  }

  void FreeEntry(uint32_t ref) {
    Index::Entry* e = entry(ref);
    e->lock.BeginWrite();
    e->flags = kEntryFree;
    e->key_len = 0;
    e->cache_pos.store(0, std::memory_order_relaxed);
    e->lock.EndWrite();
    const int c = e->size_class;
    e->next_free = h_->class_free_head[c];
    h_->class_free_head[c] = ref;
    ++h_->class_free_count[c];
  }

  // A private copy of a key for an inner separator.
  uint32_t AllocSeparator(uint32_t ks, std::string_view key) {
    const uint32_t ref = AllocEntry(key.size());
    if (ref == 0) return 0;
    Index::Entry* e = entry(ref);
    e->lock.BeginWrite();
    e->keyspace = ks;
    e->key_len = static_cast<uint16_t>(key.size());
    e->flags = kEntrySeparator;
    e->seq = 0;
    e->cache_pos.store(0, std::memory_order_relaxed);
    if (!key.empty()) std::memcpy(e->key_data(), key.data(), key.size());
    e->lock.EndWrite();
    return ref;
  }

  // Whether `nodes` nodes and one block of each class in `blocks` (-1: none) can be allocated
  // now, counting free lists first and then the pages not yet carved, as the allocators do.
  bool CanAllocate(size_t nodes, std::initializer_list<int> blocks) const {
    size_t pages = h_->page_count - h_->bump_page;
    const size_t from_bump = nodes > h_->free_nodes ? nodes - h_->free_nodes : 0;
    if (from_bump > pages) return false;
    pages -= from_bump;
    uint32_t free_blocks[kNumClasses];
    std::memcpy(free_blocks, h_->class_free_count, sizeof(free_blocks));
    for (int c : blocks) {
      if (c < 0) continue;
      if (free_blocks[c] == 0) {
        if (PagesPerBlock(c) > pages) return false;
        pages -= PagesPerBlock(c);
        free_blocks[c] = static_cast<uint32_t>(BlocksPerCarve(c));
      }
      --free_blocks[c];
    }
    return true;
  }

 private:
  char* base_;
  Index::Header* h_;
};

struct PathStep {
  uint32_t page;
  int child;  // index of the child taken (inner levels)
};

void CopyFields(const Index::Entry* e, EntryFields* f) {
  f->segment = e->segment;
  f->offset = e->offset;
  f->length = e->length;
  f->seq = e->seq;
  f->expire_at_ms = e->expire_at_ms;
  f->tombstone = (e->flags & kEntryTombstone) != 0;
}

// Reads an entry under its seqlock; false if it changed meanwhile or is not a key entry.
bool SnapshotEntry(const Mem& m, uint32_t ref, EntrySnapshot* out) {
  const Index::Entry* e = m.entry(ref);
  const uint64_t v = e->lock.ReadBegin();
  const uint8_t flags = e->flags;
  out->ref = ref;
  out->keyspace = e->keyspace;
  CopyFields(e, &out->fields);
  out->cache_pos = e->cache_pos.load(std::memory_order_relaxed);
  if (!e->lock.ReadValidate(v)) return false;
  return (flags & (kEntryFree | kEntrySeparator)) == 0;
}

// Shortest key s with a < s <= b (a < b; same keyspace). Keeps separators small.
std::string_view ShortSeparator(std::string_view a, std::string_view b) {
  size_t d = 0;
  while (d < a.size() && d < b.size() && a[d] == b[d]) ++d;
  return b.substr(0, std::min(b.size(), d + 1));
}

}  // namespace

namespace {
uint64_t RandomSeed() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}
}  // namespace

size_t Index::RequiredBytes(size_t index_memory) {
  const size_t bytes = std::max(index_memory, kMinIndexBytes);
  return (bytes + kPage - 1) / kPage * kPage;
}

void Index::Format(void* region, size_t bytes) {
  auto* base = static_cast<char*>(region);
  const auto pages = static_cast<uint32_t>(bytes / kPage - kGuardPages);
  const size_t meta = sizeof(Header) + pages;
  const auto meta_pages = static_cast<uint32_t>((meta + kPage - 1) / kPage);
  // A ninth of the pages for the point hash: a bucket (8 bytes) for every 64 bytes of the rest,
  // while a key takes at least a 64-byte entry and a 24-byte leaf slot, so the table stays under
  // three quarters full.
  const uint32_t hash_pages = std::max<uint32_t>(1, pages / 9);
  const uint32_t first_data = meta_pages + hash_pages;
  std::memset(base, 0, size_t{meta_pages} * kPage);
  auto* h = new (base) Header();
  h->magic = kIndexMagic;
  h->bytes = bytes;
  h->page_count = pages;
  h->first_data_page = first_data;
  h->bump_page = first_data;
  h->hash_offset = size_t{meta_pages} * kPage;
  new (&h->hash.rebuild) VersionLock();
  PointHash::Format(&h->hash, reinterpret_cast<std::atomic<uint64_t>*>(base + h->hash_offset),
                    size_t{hash_pages} * kPage / sizeof(uint64_t), RandomSeed());
  Mem m(base);
  const uint32_t root = m.AllocNode(0);
  h->root.store(root, std::memory_order_release);
  h->height.store(1, std::memory_order_release);
}

void Index::Attach(void* region) { base_ = static_cast<char*>(region); }

namespace {

bool TreeLookup(const Mem& m, const SearchKey& k, EntrySnapshot* out) {
  const Index::Header* h = m.h();
restart:
  for (;;) {
    const uint32_t root = h->root.load(std::memory_order_acquire);
    if (!m.valid_node(root)) goto restart;
    const Index::Node* n = m.node(root);
    uint64_t v = n->lock.ReadBegin();
    if (h->root.load(std::memory_order_acquire) != root) continue;
    bool bad = false;
    while (n->level > 0) {
      const int count = n->count;
      if (count > kInnerCap) goto restart;
      const int i = m.Search(n, n->inner.seps, count, k, /*upper=*/true, &bad);
      const uint32_t child = n->inner.children[i];
      if (bad || !m.valid_node(child)) goto restart;
      const Index::Node* c = m.node(child);
      const uint64_t cv = c->lock.ReadBegin();
      if (!n->lock.ReadValidate(v)) goto restart;
      n = c;
      v = cv;
    }
    const int count = n->count;
    if (count > kLeafCap) goto restart;
    const int pos = m.Search(n, n->leaf, count, k, /*upper=*/false, &bad);
    if (bad) goto restart;
    bool found = false;
    if (pos < count && m.CompareKey(k, n->leaf[pos], &bad) == 0 && !bad) {
      const uint32_t ref = n->leaf[pos].ref;
      if (!SnapshotEntry(m, ref, out)) goto restart;
      found = true;
    }
    if (bad || !n->lock.ReadValidate(v)) goto restart;
    return found;
  }
}

// Whether an entry holds (keyspace, key). A reader calls it inside the entry's version bracket;
// the key is read up to the search key's length, which the guard pages keep inside the region.
bool HoldsKey(const Index::Entry* e, uint8_t flags, uint32_t keyspace, std::string_view key) {
  return (flags & (kEntryFree | kEntrySeparator)) == 0 && e->keyspace == keyspace &&
         e->key_len == key.size() &&
         (key.empty() || std::memcmp(e->key_data(), key.data(), key.size()) == 0);
}

// A reader's match of a hash candidate: the entry still holds (keyspace, key), copied whole.
PointHash::Match SnapshotIfKey(const Mem& m, uint32_t ref, uint32_t keyspace, std::string_view key,
                               EntrySnapshot* out) {
  if (!m.valid_entry(ref)) return PointHash::Match::kNo;
  const Index::Entry* e = m.entry(ref);
  const uint64_t v = e->lock.ReadBegin();
  const bool same = HoldsKey(e, e->flags, keyspace, key);
  if (same) {
    out->ref = ref;
    out->keyspace = keyspace;
    CopyFields(e, &out->fields);
    out->cache_pos = e->cache_pos.load(std::memory_order_relaxed);
  }
  if (!e->lock.ReadValidate(v)) return PointHash::Match::kChanged;
  return same ? PointHash::Match::kYes : PointHash::Match::kNo;
}

}  // namespace

bool Index::Lookup(uint32_t keyspace, std::string_view key, EntrySnapshot* out) const {
  const Mem m(base_);
  const VersionLock& rebuild = header()->hash.rebuild;
  const uint64_t v = rebuild.RawLoad();
  if ((v & 1) == 0) {
    const uint32_t ref = m.hash().Probe(m.hash().HashOf(keyspace, key), [&](uint32_t r) {
      return SnapshotIfKey(m, r, keyspace, key, out);
    });
    if (rebuild.ReadValidate(v)) return ref != 0;
  }
  return TreeLookup(m, SearchKey(keyspace, key), out);
}

bool Index::ScanLeaf(uint32_t keyspace, std::string_view from, bool inclusive, bool all_keyspaces,
                     std::vector<ScanItem>* out, uint32_t* resume_keyspace,
                     std::string* resume) const {
  const Mem m(base_);
  const SearchKey k(keyspace, from);
  const size_t out_start = out->size();
  std::string upper;
  uint32_t upper_ks = 0;
restart:
  for (;;) {
    out->resize(out_start);
    bool has_upper = false;
    const uint32_t root = header()->root.load(std::memory_order_acquire);
    if (!m.valid_node(root)) goto restart;
    const Node* n = m.node(root);
    uint64_t v = n->lock.ReadBegin();
    if (header()->root.load(std::memory_order_acquire) != root) continue;
    bool bad = false;
    while (n->level > 0) {
      const int count = n->count;
      if (count > kInnerCap) goto restart;
      const int i = m.Search(n, n->inner.seps, count, k, /*upper=*/true, &bad);
      if (bad) goto restart;
      if (i < count) {
        const Slot& s = n->inner.seps[i];
        if (!m.valid_entry(s.ref)) goto restart;
        const Entry* e = m.entry(s.ref);
        const size_t len = e->key_len;
        if (len > kMaxKeySize) goto restart;
        upper.assign(e->key_data(), len);
        upper_ks = s.keyspace;
        has_upper = true;
      }
      const uint32_t child = n->inner.children[i];
      if (!m.valid_node(child)) goto restart;
      const Node* c = m.node(child);
      const uint64_t cv = c->lock.ReadBegin();
      if (!n->lock.ReadValidate(v)) goto restart;
      n = c;
      v = cv;
    }
    const int count = n->count;
    if (count > kLeafCap) goto restart;
    int pos = m.Search(n, n->leaf, count, k, /*upper=*/!inclusive, &bad);
    if (bad) goto restart;
    // The leaf's entries lie anywhere in the arena: their misses overlap when asked for first.
    for (int i = pos; i < count; ++i) {
      if (m.valid_entry(n->leaf[i].ref)) __builtin_prefetch(m.entry(n->leaf[i].ref));
    }
    bool keyspace_ended = false;
    for (; pos < count; ++pos) {
      const Slot& s = n->leaf[pos];
      if (!all_keyspaces && s.keyspace != keyspace) {
        keyspace_ended = true;
        break;
      }
      if (!m.valid_entry(s.ref)) goto restart;
      ScanItem& item = out->emplace_back();
      if (!SnapshotEntry(m, s.ref, &item.entry)) goto restart;
      const Entry* e = m.entry(s.ref);
      const size_t len = e->key_len;
      if (len > kMaxKeySize) goto restart;
      item.key.assign(e->key_data(), len);
    }
    // Freeing or reusing an entry first removes it from its leaf, so a leaf that validates also
    // vouches for the keys copied from its entries.
    if (!n->lock.ReadValidate(v)) goto restart;
    if (keyspace_ended || !has_upper) return false;
    if (!all_keyspaces && upper_ks != keyspace) return false;
    *resume_keyspace = upper_ks;
    *resume = upper;
    return true;
  }
}

bool Index::ReadEntry(uint32_t ref, EntrySnapshot* out) const {
  const Mem m(base_);
  if (!m.valid_entry(ref)) return false;
  for (int tries = 0; tries < 1000; ++tries) {
    const Entry* e = m.entry(ref);
    const uint64_t v = e->lock.ReadBegin();
    const uint8_t flags = e->flags;
    out->ref = ref;
    out->keyspace = e->keyspace;
    CopyFields(e, &out->fields);
    out->cache_pos = e->cache_pos.load(std::memory_order_relaxed);
    if (e->lock.ReadValidate(v)) return (flags & (kEntryFree | kEntrySeparator)) == 0;
  }
  return false;
}

bool Index::CasCachePos(uint32_t ref, uint64_t expected, uint64_t desired) {
  const Mem m(base_);
  if (!m.valid_entry(ref)) return false;
  return m.entry(ref)->cache_pos.compare_exchange_strong(expected, desired,
                                                         std::memory_order_acq_rel);
}

uint64_t Index::LoadCachePos(uint32_t ref) const {
  const Mem m(base_);
  if (!m.valid_entry(ref)) return 0;
  return m.entry(ref)->cache_pos.load(std::memory_order_acquire);
}

uint64_t Index::LoadEntrySeq(uint32_t ref) const {
  EntrySnapshot s;
  return ReadEntry(ref, &s) ? s.fields.seq : 0;
}

Status Index::ReserveFor(size_t new_keys, size_t max_key_size) const {
  const Header* h = header();
  const int c = ClassFor(sizeof(Entry) + max_key_size);
  if (c < 0) return Status::TooLarge("key exceeds the index's largest entry class");
  size_t pages = 0;
  if (new_keys > h->class_free_count[c]) {
    const size_t shortfall = new_keys - h->class_free_count[c];
    pages += (shortfall + BlocksPerCarve(c) - 1) / BlocksPerCarve(c) * PagesPerBlock(c);
  }
  // Worst case for splits: every level splits once, plus one split per 64 inserted keys; each
  // split needs a node and a separator copy (at most two pages).
  const size_t splits = h->height.load(std::memory_order_relaxed) + 1 + new_keys / 64;
  const size_t nodes = splits > h->free_nodes ? splits - h->free_nodes : 0;
  pages += nodes + splits * 2 + 4;
  const size_t left = h->page_count - h->bump_page;
  if (pages > left) {
    return Status::IndexFull("index memory is full (" + std::to_string(h->bytes >> 20) +
                             " MiB); raise the index memory setting or delete keys");
  }
  return Status::OK();
}

namespace {

// Pages the free lists cannot give for these entry blocks per class.
uint64_t PagesForBlocks(const Index::Header* h, const uint64_t* need) {
  uint64_t pages = 0;
  for (int c = 0; c < kNumClasses; ++c) {
    if (need[c] <= h->class_free_count[c]) continue;
    const uint64_t shortfall = need[c] - h->class_free_count[c];
    pages += (shortfall + BlocksPerCarve(c) - 1) / BlocksPerCarve(c) * PagesPerBlock(c);
  }
  return pages;
}

}  // namespace

Status Index::ReserveForKeys(const std::vector<NewKey>& keys) const {
  if (keys.empty()) return Status::OK();
  const Header* h = header();
  const uint64_t left = h->page_count - h->bump_page;
  uint64_t need[kNumClasses] = {0};
  size_t longest = h->max_key_len;  // a separator may copy one of the new keys
  for (const NewKey& nk : keys) {
    const int c = ClassFor(sizeof(Entry) + nk.key.size());
    if (c < 0) return Status::TooLarge("key exceeds the index's largest entry class");
    ++need[c];
    longest = std::max(longest, nk.key.size());
  }
  const int sep_class = ClassFor(sizeof(Entry) + longest + 1);
  // First a bound that needs no walk: n inserts split at most n leaves, so at most n nodes per
  // level; the tree grows by at most log2(n + 1) levels (each new level needs the nodes below
  // the old root to double); each leaf split copies one separator. When the free pages cover
  // that, the walk below could only agree.
  // A separator is cut as short as it can be, so its class may be any up to sep_class, and a
  // free block it takes may be one a new key's entry was counted on: each is reserved a carve
  // of sep_class of its own, never a free block.
  const uint64_t separator_pages = PagesPerBlock(sep_class);
  {
    const uint64_t n = keys.size();
    const uint64_t growth = static_cast<uint64_t>(std::bit_width(n));  // ceil(log2(n + 1))
    const uint64_t levels = h->height.load(std::memory_order_relaxed) + growth;
    const uint64_t nodes = n * levels + growth;
    const uint64_t pages = (nodes > h->free_nodes ? nodes - h->free_nodes : 0) +
                           PagesForBlocks(h, need) + n * separator_pages;
    if (pages <= left) return Status::OK();
  }
  // Near full: the nodes the keys land in. A leaf that receives m keys on top of c needs at
  // most ceil((c + m) / (cap / 2)) leaves afterwards (splits leave halves), so that many new ones.
  const Mem m(base_);
  std::unordered_map<uint32_t, std::pair<int, int>> leaves;  // page -> (count now, new keys)
  for (const NewKey& nk : keys) {
    const SearchKey k(nk.keyspace, nk.key);
    bool bad = false;
    uint32_t page = h->root.load(std::memory_order_relaxed);
    const Node* n = m.node(page);
    while (n->level > 0) {
      page = n->inner.children[m.Search(n, n->inner.seps, n->count, k, true, &bad)];
      n = m.node(page);
    }
    auto& leaf = leaves[page];
    leaf.first = n->count;
    ++leaf.second;
  }
  uint64_t new_leaves = 0;
  for (const auto& [page, cm] : leaves) {
    const int total = cm.first + cm.second;
    if (total > kLeafCap) new_leaves += static_cast<uint64_t>((total + kLeafCap / 2 - 1) / (kLeafCap / 2) - 1);
  }
  uint64_t nodes = 0;
  if (new_leaves > 0) {
    // Every new leaf adds a separator to a parent; inner splits likewise leave halves, up to
    // every level, plus a new root.
    const uint32_t height = h->height.load(std::memory_order_relaxed);
    uint64_t level_new = new_leaves;
    nodes = new_leaves;
    for (uint32_t level = 1; level <= height; ++level) {
      level_new = (level_new + kInnerCap / 2 - 1) / (kInnerCap / 2) + 1;
      nodes += level_new;
    }
  }
  // A leaf split copies one separator; inner splits move theirs.
  const uint64_t pages = (nodes > h->free_nodes ? nodes - h->free_nodes : 0) +
                         PagesForBlocks(h, need) + new_leaves * separator_pages;
  if (pages > left) {
    return Status::IndexFull("index memory is full (" + std::to_string(h->bytes >> 20) +
                             " MiB); raise the index memory setting or delete keys");
  }
  return Status::OK();
}

uint64_t Index::PointHashOf(uint32_t keyspace, std::string_view key) const {
  return Mem(base_).hash().HashOf(keyspace, key);
}

void Index::PrefetchBucket(uint64_t point_hash) const {
  Mem(base_).hash().PrefetchHome(point_hash);
}

uint32_t Index::PrefetchEntry(uint64_t point_hash) const {
  const Mem m(base_);
  const uint32_t ref = m.hash().PeekHome(point_hash);
  if (ref == 0 || !m.valid_entry(ref)) return 0;
  __builtin_prefetch(m.entry(ref));
  return ref;
}

void Index::PrefetchEntryRef(uint32_t ref) const {
  const Mem m(base_);
  if (m.valid_entry(ref)) __builtin_prefetch(m.entry(ref));
}

uint32_t Index::Find(uint32_t keyspace, std::string_view key, EntryFields* fields) const {
  const Mem m(base_);
  const uint32_t ref = m.hash().Probe(m.hash().HashOf(keyspace, key), [&](uint32_t r) {
    const Entry* e = m.entry(r);  // the writer's: nothing moves under it
    return HoldsKey(e, e->flags, keyspace, key) ? PointHash::Match::kYes : PointHash::Match::kNo;
  });
  if (ref != 0 && fields != nullptr) CopyFields(m.entry(ref), fields);
  return ref;
}

uint32_t Index::Insert(uint32_t keyspace, std::string_view key, const EntryFields& fields) {
  const uint32_t ref = InsertInTree(keyspace, key, fields);
  if (ref == 0) return 0;
  // Crowded with erased buckets: refill it from the tree, which holds the new key already.
  PointHash hash = Mem(base_).hash();
  if (!hash.Insert(hash.HashOf(keyspace, key), ref)) RebuildPointHash();
  return ref;
}

namespace {
void AddSubtreeToHash(const Mem& m, PointHash* hash, uint32_t page) {
  const Index::Node* n = m.node(page);
  if (n->level == 0) {
    for (int i = 0; i < n->count; ++i)
      hash->Add(hash->HashOf(n->leaf[i].keyspace, m.KeyOf(n->leaf[i])), n->leaf[i].ref);
    return;
  }
  for (int i = 0; i <= n->count; ++i) AddSubtreeToHash(m, hash, n->inner.children[i]);
}
}  // namespace

void Index::RebuildPointHash() {
  const Mem m(base_);
  PointHash hash = m.hash();
  hash.BeginRebuild();
  AddSubtreeToHash(m, &hash, header()->root.load(std::memory_order_relaxed));
  hash.EndRebuild();
}

// Everything the insert will allocate is checked before anything changes: the record is already
// logged when a write reaches here (the writer reserved room first), so running out halfway
// would leave a half-split tree; refusing leaves the index as it was.
uint32_t Index::InsertInTree(uint32_t keyspace, std::string_view key, const EntryFields& fields) {
  Mem m(base_);
  Header* h = header();
  const SearchKey k(keyspace, key);
  const int entry_class = ClassFor(sizeof(Entry) + key.size());
  if (entry_class < 0) return 0;

  // Descend, remembering the path.
  PathStep path[64];
  int depth = 0;
  bool rightmost = true;
  bool bad = false;
  uint32_t page = h->root.load(std::memory_order_relaxed);
  for (;;) {
    Node* n = m.node(page);
    if (n->level == 0) {
      path[depth++] = {page, 0};
      break;
    }
    const int i = m.Search(n, n->inner.seps, n->count, k, true, &bad);
    rightmost = rightmost && i == n->count;
    path[depth++] = {page, i};
    page = n->inner.children[i];
  }
  Node* leaf = m.node(path[depth - 1].page);
  const int pos = m.Search(leaf, leaf->leaf, leaf->count, k, false, &bad);

  // A full leaf splits, with every full node above it (the first with room, or a new root,
  // takes the last separator up), and the split copies one separator key.
  int top = depth - 1;
  while (top >= 0) {
    const Node* n = m.node(path[top].page);
    const bool full = n->level == 0 ? n->count >= kLeafCap : n->count >= kInnerCap;
    if (!full) break;
    --top;
  }
  const int total_slots = kLeafCap + 1;
  // Appending at the right edge (sequential keys): leave the left leaf nearly full.
  const int split = (rightmost && pos == kLeafCap) ? total_slots * 9 / 10 : total_slots / 2;
  size_t new_nodes = 0;
  int separator_class = -1;
  if (top < depth - 1) {
    new_nodes = static_cast<size_t>(depth - 1 - top) + (top < 0 ? 1 : 0);
    // The slots either side of the split, counting the new key at pos.
    auto slot_at = [&](int t, uint32_t* ks) {
      if (t == pos) {
        *ks = keyspace;
        return key;
      }
      const Slot& s = leaf->leaf[t < pos ? t : t - 1];
      *ks = s.keyspace;
      return m.KeyOf(s);
    };
    uint32_t lo_ks = 0, hi_ks = 0;
    const std::string_view lo = slot_at(split - 1, &lo_ks);
    const std::string_view hi = slot_at(split, &hi_ks);
    const size_t sep_len = lo_ks == hi_ks ? ShortSeparator(lo, hi).size() : 0;
    separator_class = ClassFor(sizeof(Entry) + sep_len);
  }
  if (!m.CanAllocate(new_nodes, {entry_class, separator_class})) return 0;

  const uint32_t ref = m.AllocEntry(key.size());
  h->max_key_len = std::max<uint32_t>(h->max_key_len, static_cast<uint32_t>(key.size()));
  Entry* e = m.entry(ref);
  e->lock.BeginWrite();
  e->keyspace = keyspace;
  e->key_len = static_cast<uint16_t>(key.size());
  e->flags = fields.tombstone ? kEntryTombstone : 0;
  e->segment = fields.segment;
  e->offset = fields.offset;
  e->length = fields.length;
  e->seq = fields.seq;
  e->expire_at_ms = fields.expire_at_ms;
  e->cache_pos.store(0, std::memory_order_relaxed);
  if (!key.empty()) std::memcpy(e->key_data(), key.data(), key.size());
  e->lock.EndWrite();
  Slot slot{Prefix{}, keyspace, ref};  // its prefix: at the leaf's skip, set below

  if (leaf->count < kLeafCap) {
    leaf->lock.BeginWrite();
    m.ShareSkipWith(leaf, leaf->leaf, leaf->count, keyspace, key);
    slot.prefix = PrefixOf(key, leaf->skip);
    std::memmove(&leaf->leaf[pos + 1], &leaf->leaf[pos], sizeof(Slot) * (leaf->count - pos));
    leaf->leaf[pos] = slot;
    ++leaf->count;
    leaf->lock.EndWrite();
    h->entries.fetch_add(1, std::memory_order_relaxed);
    return ref;
  }

  // Full leaf: bracket every node from the highest that changes down, so no reader validates a
  // half-done split.
  const int first_locked = std::max(top, 0);
  for (int i = first_locked; i < depth; ++i) m.node(path[i].page)->lock.BeginWrite();

  // Split the leaf.
  Slot carry_sep{};
  uint32_t carry_right = 0;
  {
    m.ShareSkipWith(leaf, leaf->leaf, leaf->count, keyspace, key);
    slot.prefix = PrefixOf(key, leaf->skip);
    Slot tmp[kLeafCap + 1];
    std::memcpy(tmp, leaf->leaf, sizeof(Slot) * pos);
    tmp[pos] = slot;
    std::memcpy(tmp + pos + 1, leaf->leaf + pos, sizeof(Slot) * (kLeafCap - pos));
    const uint32_t right_page = m.AllocNode(0);
    Node* right = m.node(right_page);
    right->lock.BeginWrite();
    std::memcpy(right->leaf, tmp + split, sizeof(Slot) * (total_slots - split));
    right->count = static_cast<uint16_t>(total_slots - split);
    m.FitSkip(right, right->leaf, right->count, leaf);
    right->lock.EndWrite();
    std::memcpy(leaf->leaf, tmp, sizeof(Slot) * split);
    leaf->count = static_cast<uint16_t>(split);
    m.FitSkip(leaf, leaf->leaf, leaf->count, leaf);
    const Slot& lo = tmp[split - 1];
    const Slot& hi = tmp[split];
    const std::string_view sep_key =
        lo.keyspace == hi.keyspace ? ShortSeparator(m.KeyOf(lo), m.KeyOf(hi)) : std::string_view();
    carry_sep = Slot{PrefixOf(sep_key), hi.keyspace, m.AllocSeparator(hi.keyspace, sep_key)};
    carry_right = right_page;
  }

  // Push the separator up, splitting full inner nodes.
  for (int level = depth - 2; level >= 0 && carry_right != 0; --level) {
    Node* n = m.node(path[level].page);
    const int ci = path[level].child;
    m.ShareSkipWith(n, n->inner.seps, n->count, carry_sep.keyspace, m.KeyOf(carry_sep));
    carry_sep.prefix = PrefixOf(m.KeyOf(carry_sep), n->skip);
    if (n->count < kInnerCap) {
      std::memmove(&n->inner.seps[ci + 1], &n->inner.seps[ci], sizeof(Slot) * (n->count - ci));
      std::memmove(&n->inner.children[ci + 2], &n->inner.children[ci + 1],
                   sizeof(uint32_t) * (n->count - ci));
      n->inner.seps[ci] = carry_sep;
      n->inner.children[ci + 1] = carry_right;
      ++n->count;
      carry_right = 0;
      break;
    }
    Slot seps[kInnerCap + 1];
    uint32_t kids[kInnerCap + 2];
    std::memcpy(seps, n->inner.seps, sizeof(Slot) * ci);
    seps[ci] = carry_sep;
    std::memcpy(seps + ci + 1, n->inner.seps + ci, sizeof(Slot) * (kInnerCap - ci));
    std::memcpy(kids, n->inner.children, sizeof(uint32_t) * (ci + 1));
    kids[ci + 1] = carry_right;
    std::memcpy(kids + ci + 2, n->inner.children + ci + 1, sizeof(uint32_t) * (kInnerCap - ci));
    const int total = kInnerCap + 1;  // separators
    bool edge = true;
    for (int up = 0; up <= level; ++up) edge = edge && path[up].child == m.node(path[up].page)->count;
    const int mid = (edge && ci == kInnerCap) ? total * 9 / 10 : total / 2;
    const uint32_t right_page = m.AllocNode(n->level);
    Node* right = m.node(right_page);
    right->lock.BeginWrite();
    std::memcpy(right->inner.seps, seps + mid + 1, sizeof(Slot) * (total - mid - 1));
    std::memcpy(right->inner.children, kids + mid + 1, sizeof(uint32_t) * (total - mid));
    right->count = static_cast<uint16_t>(total - mid - 1);
    m.FitSkip(right, right->inner.seps, right->count, n);
    right->lock.EndWrite();
    std::memcpy(n->inner.seps, seps, sizeof(Slot) * mid);
    std::memcpy(n->inner.children, kids, sizeof(uint32_t) * (mid + 1));
    n->count = static_cast<uint16_t>(mid);
    m.FitSkip(n, n->inner.seps, n->count, n);
    carry_sep = seps[mid];
    carry_right = right_page;
  }

  if (carry_right != 0) {  // the root split
    const uint32_t old_root = path[0].page;
    const uint32_t new_root = m.AllocNode(static_cast<uint8_t>(m.node(old_root)->level + 1));
    Node* r = m.node(new_root);
    r->lock.BeginWrite();
    r->inner.seps[0] = carry_sep;
    r->inner.seps[0].prefix = PrefixOf(m.KeyOf(carry_sep));
    r->inner.children[0] = old_root;
    r->inner.children[1] = carry_right;
    r->count = 1;
    r->lock.EndWrite();
    h->root.store(new_root, std::memory_order_release);
    h->height.fetch_add(1, std::memory_order_relaxed);
  }
  for (int i = depth - 1; i >= first_locked; --i) m.node(path[i].page)->lock.EndWrite();
  h->entries.fetch_add(1, std::memory_order_relaxed);
  return ref;
}

void Index::Update(uint32_t ref, const EntryFields& fields) {
  Mem m(base_);
  Entry* e = m.entry(ref);
  e->lock.BeginWrite();
  e->segment = fields.segment;
  e->offset = fields.offset;
  e->length = fields.length;
  e->seq = fields.seq;
  e->expire_at_ms = fields.expire_at_ms;
  e->flags = fields.tombstone ? kEntryTombstone : 0;
  e->cache_pos.store(0, std::memory_order_relaxed);
  e->lock.EndWrite();
}

void Index::Relocate(uint32_t ref, uint32_t segment, uint32_t offset) {
  Mem m(base_);
  Entry* e = m.entry(ref);
  e->lock.BeginWrite();
  e->segment = segment;
  e->offset = offset;
  e->lock.EndWrite();
}

void Index::Remove(uint32_t keyspace, std::string_view key, uint32_t ref) {
  Mem m(base_);
  Header* h = header();
  const SearchKey k(keyspace, key);
  PathStep path[64];
  int depth = 0;
  bool bad = false;
  uint32_t page = h->root.load(std::memory_order_relaxed);
  for (;;) {
    Node* n = m.node(page);
    if (n->level == 0) {
      path[depth++] = {page, 0};
      break;
    }
    const int i = m.Search(n, n->inner.seps, n->count, k, true, &bad);
    path[depth++] = {page, i};
    page = n->inner.children[i];
  }
  Node* leaf = m.node(path[depth - 1].page);
  const int pos = m.Search(leaf, leaf->leaf, leaf->count, k, false, &bad);
  if (pos >= leaf->count || leaf->leaf[pos].ref != ref) return;  // not present: nothing to do
  m.hash().Erase(m.hash().HashOf(keyspace, key), ref);

  // Which nodes disappear: an emptied leaf (unless it is the root) and every ancestor left with
  // no child. path[top] is the node that loses a child (or the leaf itself).
  int top = depth - 1;
  if (leaf->count == 1 && depth > 1) {
    top = depth - 2;
    while (top > 0 && m.node(path[top].page)->count == 0) --top;
  }
  for (int i = top; i < depth; ++i) m.node(path[i].page)->lock.BeginWrite();

  std::memmove(&leaf->leaf[pos], &leaf->leaf[pos + 1], sizeof(Slot) * (leaf->count - pos - 1));
  --leaf->count;
  if (top < depth - 1) {
    Node* parent = m.node(path[top].page);
    const int ci = path[top].child;
    if (parent->count == 0) {
      // Only the root can get here: it had a single child, now gone. It becomes an empty leaf.
      parent->level = 0;
      parent->count = 0;
      h->height.store(1, std::memory_order_relaxed);
    } else {
      const int sep = ci == 0 ? 0 : ci - 1;
      m.FreeEntry(parent->inner.seps[sep].ref);
      std::memmove(&parent->inner.seps[sep], &parent->inner.seps[sep + 1],
                   sizeof(Slot) * (parent->count - sep - 1));
      std::memmove(&parent->inner.children[ci], &parent->inner.children[ci + 1],
                   sizeof(uint32_t) * (parent->count - ci));
      --parent->count;
    }
    for (int i = top + 1; i < depth; ++i) m.FreeNode(path[i].page);
  }
  for (int i = depth - 1; i >= top; --i) m.node(path[i].page)->lock.EndWrite();

  // Collapse a root with a single child.
  for (;;) {
    const uint32_t root = h->root.load(std::memory_order_relaxed);
    Node* r = m.node(root);
    if (r->level == 0 || r->count != 0) break;
    r->lock.BeginWrite();
    h->root.store(r->inner.children[0], std::memory_order_release);
    h->height.fetch_sub(1, std::memory_order_relaxed);
    m.FreeNode(root);
    r->lock.EndWrite();
  }
  m.FreeEntry(ref);
  h->entries.fetch_sub(1, std::memory_order_relaxed);
}

uint64_t Index::entry_count() const { return header()->entries.load(std::memory_order_relaxed); }
uint64_t Index::used_bytes() const {
  return header()->used_pages.load(std::memory_order_relaxed) * kPage +
         uint64_t{header()->first_data_page} * kPage;
}
uint64_t Index::capacity_bytes() const { return header()->bytes; }
uint64_t Index::unused_pages() const {
  return header()->page_count - header()->bump_page;
}
uint64_t Index::point_hash_bytes() const {
  return header()->hash.buckets * sizeof(uint64_t);
}
uint64_t Index::point_hash_rebuilds() const {
  return header()->hash.rebuild.RawLoad() / 2;
}
uint64_t Index::point_hash_filled() const {
  return header()->hash.filled;
}
uint32_t Index::height() const { return header()->height.load(std::memory_order_relaxed); }

namespace {

struct Bound {
  bool set = false;
  uint32_t ks = 0;
  std::string key;
};

int CompareKeys(uint32_t aks, std::string_view a, uint32_t bks, std::string_view b) {
  if (aks != bks) return aks < bks ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

Status CheckNode(const Mem& m, uint32_t page, int level, const Bound& lo, const Bound& hi,
                 uint64_t* entries) {
  const Index::Node* n = m.node(page);
  if (n->level != level) return Status::Corruption("index: node level mismatch");
  if ((n->flags & kNodeObsolete) != 0) return Status::Corruption("index: obsolete node reachable");
  auto in_bounds = [&](uint32_t ks, std::string_view key) {
    if (lo.set && CompareKeys(ks, key, lo.ks, lo.key) < 0) return false;
    if (hi.set && CompareKeys(ks, key, hi.ks, hi.key) >= 0) return false;
    return true;
  };
  if (n->skip > kMaxSkip) return Status::Corruption("index: node prefix too long");
  const std::string_view skipped(n->skipped, n->skip);
  auto slot_matches = [&](const Slot& s, std::string_view key) {
    return PrefixOf(key, n->skip) == s.prefix &&
           (n->skip == 0 || (s.keyspace == n->skip_keyspace && key.substr(0, n->skip) == skipped));
  };
  for (int i = 0; level > 0 && i < n->count; ++i) {
    if (!slot_matches(n->inner.seps[i], m.KeyOf(n->inner.seps[i])))
      return Status::Corruption("index: separator does not match its node's prefixes");
  }
  if (level == 0) {
    for (int i = 0; i < n->count; ++i) {
      const Slot& s = n->leaf[i];
      const Index::Entry* e = m.entry(s.ref);
      const std::string_view key(e->key_data(), e->key_len);
      if (e->keyspace != s.keyspace || !slot_matches(s, key) || (e->flags & kEntryFree) != 0)
        return Status::Corruption("index: leaf slot does not match its entry");
      if (!in_bounds(s.keyspace, key)) return Status::Corruption("index: key outside node bounds");
      const uint32_t found = m.hash().Probe(m.hash().HashOf(s.keyspace, key), [&](uint32_t r) {
        return r == s.ref ? PointHash::Match::kYes : PointHash::Match::kNo;
      });
      if (found != s.ref) return Status::Corruption("index: a key is missing from the point hash");
      if (i > 0) {
        const Slot& p = n->leaf[i - 1];
        if (CompareKeys(p.keyspace, m.KeyOf(p), s.keyspace, key) >= 0)
          return Status::Corruption("index: leaf keys out of order");
      }
    }
    *entries += n->count;
    return Status::OK();
  }
  for (int i = 0; i <= n->count; ++i) {
    Bound clo = lo, chi = hi;
    if (i > 0) clo = Bound{true, n->inner.seps[i - 1].keyspace, std::string(m.KeyOf(n->inner.seps[i - 1]))};
    if (i < n->count) chi = Bound{true, n->inner.seps[i].keyspace, std::string(m.KeyOf(n->inner.seps[i]))};
    if (clo.set && chi.set && CompareKeys(clo.ks, clo.key, chi.ks, chi.key) >= 0)
      return Status::Corruption("index: separators out of order");
    Status s = CheckNode(m, n->inner.children[i], level - 1, clo, chi, entries);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace

Status Index::CheckInvariants() const {
  const Mem m(base_);
  const uint32_t root = header()->root.load();
  const int height = static_cast<int>(header()->height.load());
  uint64_t entries = 0;
  Status s = CheckNode(m, root, height - 1, Bound{}, Bound{}, &entries);
  if (!s.ok()) return s;
  if (entries != entry_count()) return Status::Corruption("index: entry count mismatch");
  if (m.hash().CountLive() != entries)
    return Status::Corruption("index: point hash holds " + std::to_string(m.hash().CountLive()) +
                              " entries, the tree " + std::to_string(entries));
  return Status::OK();
}

}  // namespace eloqkv
