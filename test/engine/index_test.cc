#include "engine/index.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/eloqkv.h"
#include "gtest/gtest.h"

namespace eloqkv {
namespace {

class IndexTest : public ::testing::Test {
 protected:
  void Make(size_t bytes) {
    mem_.assign(Index::RequiredBytes(bytes) + 64, '\0');
    base_ = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem_.data()) + 63) & ~uintptr_t{63});
    Index::Format(base_, Index::RequiredBytes(bytes));
    index_.Attach(base_);
  }
  EntryFields Fields(uint64_t seq) {
    EntryFields f;
    f.segment = static_cast<uint32_t>(seq % 1000 + 1);
    f.offset = static_cast<uint32_t>(seq * 8);
    f.length = 100;
    f.seq = seq;
    return f;
  }
  void Put(uint32_t ks, const std::string& key, uint64_t seq) {
    ASSERT_TRUE(index_.ReserveFor(1, key.size()).ok());
    EntryFields old;
    if (uint32_t ref = index_.Find(ks, key, &old)) {
      index_.Update(ref, Fields(seq));
    } else {
      ASSERT_NE(index_.Insert(ks, key, Fields(seq)), 0u);
    }
  }
  void Del(uint32_t ks, const std::string& key) {
    EntryFields old;
    if (uint32_t ref = index_.Find(ks, key, &old)) index_.Remove(ks, key, ref);
  }
  std::vector<std::pair<uint32_t, std::string>> ScanAll(uint32_t ks, bool all) {
    std::vector<std::pair<uint32_t, std::string>> out;
    std::vector<ScanItem> items;
    uint32_t cur = ks;
    std::string from;
    bool more = true;
    while (more) {
      items.clear();
      uint32_t rks = 0;
      std::string resume;
      more = index_.ScanLeaf(cur, from, true, all, &items, &rks, &resume);
      for (auto& it : items) out.emplace_back(it.entry.keyspace, it.key);
      cur = rks;
      from = resume;
    }
    return out;
  }

  // The first leaf's worth of entries at or after (ks, from), in any keyspace; empty at the end.
  std::vector<ScanItem> FirstAtOrAfter(uint32_t ks, std::string from) {
    std::vector<ScanItem> items;
    bool more = true;
    while (items.empty() && more) {
      uint32_t rks = 0;
      std::string resume;
      more = index_.ScanLeaf(ks, from, true, true, &items, &rks, &resume);
      ks = rks;
      from = resume;
    }
    return items;
  }

  std::vector<char> mem_;
  void* base_ = nullptr;
  Index index_;
};

// prefix + i in `digits` zero-padded digits: keys that sort as their numbers do.
std::string Numbered(const std::string& prefix, int i, int digits = 6) {
  char b[32];
  std::snprintf(b, sizeof b, "%0*d", digits, i);
  return prefix + b;
}

// Keys sharing a 24-byte prefix, in number order.
std::string SessionKey(int i) {
  return Numbered("myapp:prod:session:user:", i, 8);
}

std::string RandomKey(std::mt19937_64& rng) {
  static const char* kAlphabet = "ab\0c\xff";
  const size_t len = rng() % 24;
  std::string k(len, 'a');
  for (auto& c : k) c = kAlphabet[rng() % 5];
  return k;
}

TEST_F(IndexTest, MatchesAnOrderedMapUnderRandomOperations) {
  Make(64 << 20);
  std::mt19937_64 rng(11);
  std::map<std::pair<uint32_t, std::string>, uint64_t> model;
  for (uint64_t i = 1; i <= 200000; ++i) {
    const uint32_t ks = 1 + static_cast<uint32_t>(rng() % 3);
    std::string key = RandomKey(rng) + std::to_string(rng() % 5000);
    if (rng() % 3 == 0) {
      Del(ks, key);
      model.erase({ks, key});
    } else {
      Put(ks, key, i);
      model[{ks, key}] = i;
    }
    if (i % 50000 == 0) {
      ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
    }
  }
  EXPECT_EQ(index_.entry_count(), model.size());
  for (const auto& [k, seq] : model) {
    EntrySnapshot s;
    ASSERT_TRUE(index_.Lookup(k.first, k.second, &s)) << k.second;
    EXPECT_EQ(s.fields.seq, seq);
    EXPECT_EQ(s.keyspace, k.first);
  }
  EntrySnapshot s;
  EXPECT_FALSE(index_.Lookup(2, "no such key", &s));
  // Whole-index and per-keyspace scans return exactly the model, in order.
  auto all = ScanAll(0, true);
  ASSERT_EQ(all.size(), model.size());
  size_t i = 0;
  for (const auto& [k, seq] : model) {
    ASSERT_EQ(all[i].first, k.first);
    ASSERT_EQ(all[i].second, k.second);
    ++i;
  }
  size_t in_ks2 = 0;
  for (const auto& [k, seq] : model) in_ks2 += k.first == 2;
  EXPECT_EQ(ScanAll(2, false).size(), in_ks2);
}

// Keys that share long prefixes: nodes search them from where their keys start to differ.
// Whole families are deleted and come back, so that emptied leaves go and their neighbours take
// over ranges whose keys do not share the neighbours' prefixes; every scan, from any key, and
// every lookup must still agree with an ordered map.
TEST_F(IndexTest, LongSharedPrefixesMatchAnOrderedMap) {
  Make(64 << 20);
  static const std::string kFamilies[] = {
      "myapp:prod:session:user:",
      "myapp:prod:session:",
      "myapp:prod:" + std::string(60, 'z'),  // shared beyond what a node keeps
      "myapp:prod:session:user:0000",
      "m",
      "",
  };
  std::mt19937_64 rng(17);
  std::map<std::pair<uint32_t, std::string>, uint64_t> model;
  auto make_key = [&](size_t family) {
    std::string k = kFamilies[family] + std::to_string(rng() % 20000);
    if (rng() % 8 == 0) k.append(1 + rng() % 30, static_cast<char>(rng() % 3 == 0 ? 0 : 0xff));
    return k;
  };
  uint64_t seq = 0;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 30000; ++i) {
      const uint32_t ks = 1 + static_cast<uint32_t>(rng() % 2);
      const std::string key = make_key(rng() % 6);
      if (rng() % 4 == 0) {
        Del(ks, key);
        model.erase({ks, key});
      } else {
        Put(ks, key, ++seq);
        model[{ks, key}] = seq;
      }
    }
    // Every key under one family's prefix goes, in one keyspace: its leaves empty and are
    // removed.
    const std::string& gone = kFamilies[round % 4];
    const uint32_t gone_ks = 1 + static_cast<uint32_t>(round % 2);
    for (auto it = model.begin(); it != model.end();) {
      const auto& [ks, key] = it->first;
      if (ks == gone_ks && key.rfind(gone, 0) == 0) {
        Del(ks, key);
        it = model.erase(it);
      } else {
        ++it;
      }
    }
    ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  }
  EXPECT_EQ(index_.entry_count(), model.size());
  for (const auto& [k, s] : model) {
    EntrySnapshot snap;
    ASSERT_TRUE(index_.Lookup(k.first, k.second, &snap));
    EXPECT_EQ(snap.fields.seq, s);
  }
  const auto all = ScanAll(0, true);
  ASSERT_EQ(all.size(), model.size());
  size_t i = 0;
  for (const auto& [k, s] : model) {
    ASSERT_EQ(all[i], k) << i;
    ++i;
  }
  // A scan from any key, present or not, sharing a node's prefix or not, starts at the first key
  // at or after it.
  for (int probe = 0; probe < 5000; ++probe) {
    const uint32_t ks = 1 + static_cast<uint32_t>(rng() % 2);
    std::string from = make_key(rng() % 6);
    from.resize(rng() % (from.size() + 1));  // often a prefix of many keys
    const std::vector<ScanItem> items = FirstAtOrAfter(ks, from);
    const auto expected = model.lower_bound({ks, from});
    if (expected == model.end()) {
      EXPECT_TRUE(items.empty()) << from;
    } else {
      ASSERT_FALSE(items.empty()) << from;
      EXPECT_EQ(std::make_pair(items[0].entry.keyspace, items[0].key), expected->first) << from;
    }
  }
}

// A keyspace emptied between two others: its neighbours' leaves take over its range, so a search
// in it reaches a node whose keys share a prefix from another keyspace, and must order by
// keyspace first.
TEST_F(IndexTest, SearchesInAnEmptiedKeyspaceOrderByKeyspaceFirst) {
  Make(64 << 20);
  for (int i = 0; i < 6000; i += 2) {
    Put(1, Numbered("myapp:prod:session:user:", i), 1);
    Put(2, Numbered("a", i), 1);
    Put(3, Numbered("zz:shared:by:every:key:", i), 1);
  }
  for (int i = 0; i < 6000; i += 2) Del(2, Numbered("a", i));
  // Splits after the delete: the leaves either side of the gap hold one keyspace and a prefix.
  for (int i = 1; i < 6000; i += 2) {
    Put(1, Numbered("myapp:prod:session:user:", i), 1);
    Put(3, Numbered("zz:shared:by:every:key:", i), 1);
  }
  for (int i = 0; i < 2000; ++i) {  // many, next to the gap on either side
    Put(1, Numbered("myapp:prod:session:user:", 5999) + std::to_string(i), 1);
    Put(3, Numbered("zz:shared:by:every:key:", 0) + std::to_string(i), 1);
  }
  ASSERT_TRUE(index_.CheckInvariants().ok());
  for (const std::string from : {"", "a5", "b", "myapp:prod:session:user:5", "zzz"}) {
    const std::vector<ScanItem> items = FirstAtOrAfter(2, from);
    ASSERT_FALSE(items.empty()) << from;
    EXPECT_EQ(items[0].entry.keyspace, 3u) << from;
    EXPECT_EQ(items[0].key, "zz:shared:by:every:key:000000") << from;
  }
  for (int i = 0; i < 6000; ++i) Put(2, Numbered("a", i), 2);
  ASSERT_TRUE(index_.CheckInvariants().ok());
  EXPECT_EQ(ScanAll(2, false).size(), 6000u);
}

TEST_F(IndexTest, DeletingEverythingFreesNodesAndCollapsesTheRoot) {
  Make(64 << 20);
  std::vector<std::string> keys;
  for (int i = 0; i < 100000; ++i) keys.push_back("key-" + std::to_string(i * 7919 % 100000));
  for (size_t i = 0; i < keys.size(); ++i) Put(1, keys[i], i + 1);
  EXPECT_GE(index_.height(), 3u);
  const uint64_t used = index_.used_bytes();
  for (const auto& k : keys) Del(1, k);
  EXPECT_EQ(index_.entry_count(), 0u);
  EXPECT_EQ(index_.height(), 1u);
  ASSERT_TRUE(index_.CheckInvariants().ok());
  // Freed nodes and entries are reused: the same load again needs no new memory.
  for (size_t i = 0; i < keys.size(); ++i) Put(1, keys[i], i + 1);
  EXPECT_EQ(index_.used_bytes(), used);
  ASSERT_TRUE(index_.CheckInvariants().ok());
}

TEST_F(IndexTest, MaximalKeysAndSequentialAppendsFillNodes) {
  Make(64 << 20);
  std::string big(kMaxKeySize, 'x');
  for (int i = 0; i < 300; ++i) {
    std::string k = big;
    k.replace(kMaxKeySize - 8, 8, std::to_string(10000000 + i));
    Put(5, k, static_cast<uint64_t>(i) + 1);
  }
  ASSERT_TRUE(index_.CheckInvariants().ok());
  EXPECT_EQ(ScanAll(5, false).size(), 300u);
  // Sequential keys: rightmost splits leave leaves ~90% full, so 1M keys need few pages.
  Make(256 << 20);
  for (int i = 0; i < 1000000; ++i) {
    char k[16];
    std::snprintf(k, sizeof(k), "%010d", i);
    Put(1, k, static_cast<uint64_t>(i) + 1);
  }
  ASSERT_TRUE(index_.CheckInvariants().ok());
  // 1M entries of 64 bytes (class 64+10 -> 80) plus ~4400 leaves, beside the fixed point hash.
  EXPECT_LT(index_.used_bytes() - index_.point_hash_bytes(), uint64_t{110} << 20);
}

TEST_F(IndexTest, ReportsFullBeforeChangingAnything) {
  Make(1 << 20);
  uint64_t i = 0;
  for (;; ++i) {
    const std::string k = "key-" + std::to_string(i);
    if (!index_.ReserveFor(1, k.size()).ok()) break;
    ASSERT_NE(index_.Insert(1, k, Fields(i + 1)), 0u);
  }
  EXPECT_GT(i, 1000u);
  EXPECT_TRUE(index_.ReserveFor(1, 10).IsIndexFull());
  EXPECT_EQ(index_.entry_count(), i);
  ASSERT_TRUE(index_.CheckInvariants().ok());
  EntrySnapshot s;
  EXPECT_TRUE(index_.Lookup(1, "key-0", &s));
}

// Insert without a reservation, past the end of memory: the insert that finds no room returns 0
// and leaves the tree whole (it used to split a leaf into page 0, the header). Random and long
// keys, so the last inserts need leaf and inner splits and separators of several classes.
TEST_F(IndexTest, InsertThatFindsNoRoomChangesNothing) {
  for (int shape = 0; shape < 2; ++shape) {
    Make(1 << 20);
    std::mt19937_64 rng(11 + shape);
    std::map<std::string, uint64_t> inserted;
    int refused = 0;
    for (uint64_t i = 0; refused < 200 && i < 1000000; ++i) {
      std::string k = std::to_string(rng());
      if (shape == 1) k.append(rng() % 300, static_cast<char>('a' + rng() % 26));
      if (inserted.count(k) != 0) continue;
      if (index_.Insert(1, k, Fields(i + 1)) == 0) {
        ++refused;
        continue;
      }
      inserted.emplace(k, i + 1);
    }
    ASSERT_EQ(refused, 200) << "memory never ran out";
    ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
    EXPECT_EQ(index_.entry_count(), inserted.size());
    const auto scanned = ScanAll(1, false);
    ASSERT_EQ(scanned.size(), inserted.size());
    auto it = inserted.begin();
    for (const auto& [ks, key] : scanned) {
      ASSERT_EQ(key, it->first);
      EntrySnapshot e;
      ASSERT_TRUE(index_.Lookup(1, key, &e)) << key;
      EXPECT_EQ(e.fields.seq, it->second);
      ++it;
    }
    // Room made by deletes is used again.
    for (int d = 0; d < 2000 && !inserted.empty(); ++d) {
      Del(1, inserted.begin()->first);
      inserted.erase(inserted.begin());
    }
    EXPECT_NE(index_.Insert(1, "after-deletes", Fields(1)), 0u);
    ASSERT_TRUE(index_.CheckInvariants().ok());
  }
}

// The write path's check: a batch of new keys that ReserveForKeys accepts always fits, from an
// empty index to a full one, for random keys (splits anywhere), growing ones (rightmost splits)
// and long ones (large entry and separator classes); the batch it refuses is refused before
// anything changed, and a smaller one may still fit.
TEST_F(IndexTest, BatchesReserveForKeysAcceptsAlwaysFit) {
  for (int shape = 0; shape < 3; ++shape) {
    Make(2 << 20);
    std::mt19937_64 rng(7 + shape);
    uint64_t seq = 0, accepted = 0;
    size_t batch = 512;
    while (batch > 0) {
      std::vector<std::string> keys;
      for (size_t i = 0; i < batch; ++i) {
        std::string k = shape == 1 ? std::to_string(1000000000 + seq + i) : std::to_string(rng());
        if (shape == 2) k.append(300 + rng() % 700, 'x');
        keys.push_back(std::move(k));
      }
      std::vector<Index::NewKey> nk;
      for (const auto& k : keys) nk.push_back({1, k});
      const uint64_t before = index_.entry_count();
      const Status s = index_.ReserveForKeys(nk);
      if (!s.ok()) {
        ASSERT_TRUE(s.IsIndexFull()) << s.ToString();
        EXPECT_EQ(index_.entry_count(), before);
        batch /= 2;
        continue;
      }
      for (const auto& k : keys) {
        EntryFields old;
        if (index_.Find(1, k, &old) != 0) continue;  // a random key drawn twice
        ASSERT_NE(index_.Insert(1, k, Fields(++seq)), 0u)
            << "shape " << shape << ": a batch of " << batch << " was accepted at " << before
            << " keys and did not fit";
      }
      accepted += keys.size();
    }
    ASSERT_TRUE(index_.CheckInvariants().ok());
    EXPECT_GT(accepted, 1000u) << "shape " << shape;
    EXPECT_TRUE(index_.ReserveForKeys({{1, "one more key that does not fit"}}).IsIndexFull());
  }
}

// A leaf split's separator is often far shorter than the longest key, so it comes from a small
// class, which may have no free block even when the long keys' class has many (deleted long
// keys leave them there). Found by review: the check counted those free blocks against the
// separators, accepted an insert whose split then found no page, and the tree got a separator
// without an entry (scans looped). Every accepted insert must keep the tree whole.
TEST_F(IndexTest, SeparatorsOfSmallClassesAreReservedNearFull) {
  // The numbers below build one state exactly and depend on the node capacities (168 slots a
  // leaf): without a page reserved for each separator, the odd short keys fail.
  Make(2 << 20);
  uint64_t seq = 0;
  auto insert = [&](const std::string& k) {
    if (!index_.ReserveForKeys({{1, k}}).ok()) return false;
    EXPECT_NE(index_.Insert(1, k, Fields(++seq)), 0u);
    return true;
  };
  auto pad = [](std::string k, size_t n, char c) { return k.append(n - k.size(), c); };
  char b[32];
  for (int i = 0; i < 2000; ++i) {
    std::snprintf(b, sizeof b, "BBBBBBBB%06d", i);
    ASSERT_TRUE(insert(pad(b, 204, 'x')));
  }
  // Sequential appends left the first leaf 152 keys (9/10 of the 169 slots at the split). It
  // keeps 85, and the 83 short keys below fill it: the split of an odd one cuts between
  // AAAAAAAB and B, a one-byte separator.
  for (int i = 85; i < 152; ++i) {
    std::snprintf(b, sizeof b, "BBBBBBBB%06d", i);
    Del(1, pad(b, 204, 'x'));
  }
  for (int i = 0; i < 150; i += 2) {
    std::snprintf(b, sizeof b, "AAAAAAAA%03d", i);
    ASSERT_TRUE(insert(pad(b, 80, 'y')));
  }
  for (int i = 0; i < 8; ++i) {
    std::snprintf(b, sizeof b, "AAAAAAAB%03d", i);
    ASSERT_TRUE(insert(pad(b, 150, 'y')));
  }
  // Long keys until the index is full, then gone again: their class has free blocks, the
  // short keys' classes none.
  int fillers = 0;
  for (; index_.unused_pages() > 1; ++fillers) {
    std::snprintf(b, sizeof b, "ZZZZZZZZ%06d", fillers);
    ASSERT_TRUE(insert(pad(b, 204, 'z')));
  }
  for (int i = 0; i < fillers; ++i) {
    std::snprintf(b, sizeof b, "ZZZZZZZZ%06d", i);
    Del(1, pad(b, 204, 'z'));
  }
  // Short keys into the leftmost leaves, each splitting off a one-byte separator at most.
  for (int i = 1; i < 150; i += 2) {
    std::snprintf(b, sizeof b, "AAAAAAAA%03d", i);
    if (!insert(pad(b, 80, 'y'))) break;
    ASSERT_TRUE(index_.CheckInvariants().ok()) << "after the insert of " << b;
  }
  ASSERT_TRUE(index_.CheckInvariants().ok());
}

// Readers run lock-free against a writer that splits, deletes and collapses nodes: keys that are
// never touched must always be found, and scans must stay ordered without duplicates.
TEST_F(IndexTest, OptimisticReadersSeeStableKeysDuringChurn) {
  Make(128 << 20);
  for (int i = 0; i < 20000; ++i) Put(1, "stable-" + std::to_string(i), static_cast<uint64_t>(i) + 1);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> misses{0}, disorder{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937_64 rng(100 + r);
      while (!stop.load()) {
        const int i = static_cast<int>(rng() % 20000);
        EntrySnapshot s;
        if (!index_.Lookup(1, "stable-" + std::to_string(i), &s) || s.fields.seq != uint64_t(i) + 1)
          misses.fetch_add(1);
        lookups.fetch_add(1);
        if (rng() % 64 == 0) {
          auto keys = ScanAll(1, false);
          size_t stable = 0;
          for (size_t k = 1; k < keys.size(); ++k)
            if (keys[k - 1].second >= keys[k].second) disorder.fetch_add(1);
          for (auto& k : keys) stable += k.second.rfind("stable-", 0) == 0;
          if (stable != 20000) misses.fetch_add(1);
        }
      }
    });
  }
  std::mt19937_64 rng(5);
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 20000; ++i) Put(1, "churn-" + std::to_string(rng() % 50000), 1000000 + i);
    for (int i = 0; i < 20000; ++i) Del(1, "churn-" + std::to_string(rng() % 50000));
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_GT(lookups.load(), 1000u);
  EXPECT_EQ(misses.load(), 0u);
  EXPECT_EQ(disorder.load(), 0u);
  ASSERT_TRUE(index_.CheckInvariants().ok());
}

// Erased buckets at the end of a run go back to empty: with every key deleted again, no bucket
// is left filled, whatever the order of the deletes.
TEST_F(IndexTest, PointHashEmptiesErasedBucketsThatEndARun) {
  Make(2 << 20);
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) keys.push_back("key-" + std::to_string(i));
  for (size_t i = 0; i < keys.size(); ++i) Put(1, keys[i], i + 1);
  EXPECT_EQ(index_.point_hash_filled(), keys.size());
  std::shuffle(keys.begin(), keys.end(), std::mt19937_64(3));
  for (size_t i = 0; i < keys.size(); ++i) {
    Del(1, keys[i]);
    if (i % 1000 == 0) ASSERT_TRUE(index_.CheckInvariants().ok());
  }
  EXPECT_EQ(index_.entry_count(), 0u);
  EXPECT_EQ(index_.point_hash_filled(), 0u);
  EXPECT_EQ(index_.point_hash_rebuilds(), 0u);
}

// Rebuilds (clearing the table and refilling it from the tree) while readers look up: readers
// that see one under way use the tree, so a key that stays is always found, a key never
// inserted never is.
TEST_F(IndexTest, PointHashRebuildsUnderChurnWithoutMissingKeys) {
  Make(4 << 20);
  constexpr int kStable = 5000;
  for (int i = 0; i < kStable; ++i) Put(1, "stable-" + std::to_string(i), uint64_t(i) + 1);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937_64 rng(200 + r);
      while (!stop.load()) {
        const int i = static_cast<int>(rng() % kStable);
        EntrySnapshot s;
        if (!index_.Lookup(1, "stable-" + std::to_string(i), &s) || s.fields.seq != uint64_t(i) + 1)
          wrong.fetch_add(1);
        if (index_.Lookup(1, "never-" + std::to_string(i), &s)) wrong.fetch_add(1);
        lookups.fetch_add(1);
      }
    });
  }
  std::map<std::string, uint64_t> churn;
  std::mt19937_64 rng(9);
  for (uint64_t i = 0; i < 100000; ++i) {
    const std::string k = "churn-" + std::to_string(i);
    Put(2, k, 1000000 + i);
    churn[k] = 1000000 + i;
    if (churn.size() > 500) {  // delete a random older key: erased buckets everywhere
      auto it = churn.begin();
      std::advance(it, rng() % churn.size());
      Del(2, it->first);
      churn.erase(it);
    }
    if (i % 500 == 0) index_.RebuildPointHash();
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_GE(index_.point_hash_rebuilds(), 200u);
  EXPECT_GT(lookups.load(), 1000u);
  EXPECT_EQ(wrong.load(), 0u);
  ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  EXPECT_EQ(index_.entry_count(), kStable + churn.size());
  for (const auto& [k, seq] : churn) {
    EntrySnapshot s;
    ASSERT_TRUE(index_.Lookup(2, k, &s)) << k;
    EXPECT_EQ(s.fields.seq, seq);
    EntryFields f;
    EXPECT_EQ(index_.Find(2, k, &f), s.ref);
    EXPECT_FALSE(index_.Lookup(1, k, &s)) << "another keyspace's key";
  }
}

// The leftmost leaf holds one long-prefix family with no ties after its prefix, is full, and
// then receives a key below the family (its range starts at -inf): the split must lower the
// prefix before the new key's slot is made (FitSkip does not repair it without ties).
TEST_F(IndexTest, FullLeafTakesAKeyWithoutItsPrefix) {
  Make(64 << 20);
  const std::string p = "shared-prefix-of-thirty-bytes:";
  auto fam = [&](int i) { return Numbered(p, i, 6); };
  for (int i = 0; i < 169; ++i) Put(1, fam(2 * i), 1);     // root leaf splits 152 / 17
  for (int i = 0; i < 16; ++i) Put(1, fam(2 * i + 1), 1);  // the left leaf is full (168)
  ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  Put(1, "A", 2);  // below every key: the full leftmost leaf splits
  ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  const auto items = FirstAtOrAfter(1, "");
  ASSERT_FALSE(items.empty());
  EXPECT_EQ(items[0].key, "A");
  EXPECT_EQ(ScanAll(1, false).size(), 169u + 16u + 1u);
}

// An inner node whose separators share a long prefix (a split half) takes a separator without
// it: keys below the family fill its leftmost leaf, whose splits carry short separators up.
TEST_F(IndexTest, InnerNodeTakesASeparatorWithoutItsPrefix) {
  Make(64 << 20);
  int n = 0;
  while (index_.height() < 3) Put(1, SessionKey(n++), 1);
  for (int i = 0; i < 5000; ++i) Put(1, SessionKey(n++), 1);
  ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  std::map<std::string, int> model;
  for (int i = 0; i < n; ++i) model[SessionKey(i)] = 1;
  for (int i = 0; i < 3000; ++i) {
    const std::string key = Numbered("A", i * 7 % 3000);
    Put(1, key, 1);
    model[key] = 1;
    if (i % 100 == 0)
      ASSERT_TRUE(index_.CheckInvariants().ok()) << i << " " << index_.CheckInvariants().ToString();
  }
  ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  const auto all = ScanAll(1, false);
  ASSERT_EQ(all.size(), model.size());
  for (const std::string from : {"A000100", "A0015", "B", "m", "myapp:prod:session:user:0000"}) {
    const auto items = FirstAtOrAfter(1, from);
    ASSERT_FALSE(items.empty()) << from;
    EXPECT_EQ(items[0].key, model.lower_bound(from)->first) << from;
  }
}

// The root collapses onto an inner node whose separators share a long prefix (skip > 0), which
// then splits: the new root's separator must be recomputed at the new root's skip (0).
TEST_F(IndexTest, CollapsedRootWithAPrefixSplitsAgain) {
  Make(64 << 20);
  int n = 0;
  while (index_.height() < 3) Put(1, SessionKey(n++), 1);
  while (index_.height() > 2) Del(1, SessionKey(--n));  // the root's right subtree goes
  ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  while (index_.height() < 3) Put(1, SessionKey(n++), 1);
  ASSERT_TRUE(index_.CheckInvariants().ok()) << index_.CheckInvariants().ToString();
  EXPECT_EQ(ScanAll(1, false).size(), static_cast<size_t>(n));
}

// Tree lookups (what readers use while the point hash is rebuilt) on nodes with a prefix:
// readers look up while the writer rebuilds the hash over and over.
TEST_F(IndexTest, TreeLookupsDuringRebuildsFindLongPrefixKeys) {
  Make(16 << 20);
  const std::string p = "myapp:prod:session:user:shared:";
  constexpr int kKeys = 20000;
  auto fam = [&](int i) { return p + std::to_string(i); };
  for (int i = 0; i < kKeys; ++i) Put(1, fam(i), uint64_t(i) + 1);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, lookups{0};
  std::thread reader([&] {
    std::mt19937_64 rng(1);
    while (!stop.load()) {
      const int i = static_cast<int>(rng() % kKeys);
      EntrySnapshot s;
      if (!index_.Lookup(1, fam(i), &s) || s.fields.seq != uint64_t(i) + 1) wrong.fetch_add(1);
      lookups.fetch_add(1);
    }
  });
  for (int r = 0; r < 300; ++r) index_.RebuildPointHash();
  stop.store(true);
  reader.join();
  EXPECT_GT(lookups.load(), 100u);
  EXPECT_EQ(wrong.load(), 0u);
}

}  // namespace
}  // namespace eloqkv
