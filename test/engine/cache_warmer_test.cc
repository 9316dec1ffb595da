// CacheWarmer: after a restart, live values come back into the value cache in slices, until the
// cache is nearly full, without harming writes made meanwhile.
#include "engine/cache_warmer.h"

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::MakeKeyspace;
using test::TempDir;
using test::TestOptions;

class CacheWarmerTest : public ::testing::Test {
 protected:
  // Writes `keys` values of `size` bytes into keyspaces "a" and "b", then restarts: the engine
  // comes back with an empty value cache.
  void Load(int keys, size_t size) {
    {
      Instance db(opts_);
      a_ = MakeKeyspace(db.engine(), "a");
      b_ = MakeKeyspace(db.engine(), "b");
      std::mt19937_64 rng(7);
      for (int i = 0; i < keys; ++i) {
        const std::string value = test::Value(rng, size);
        ASSERT_TRUE(db->Put(i % 2 ? a_ : b_, Key(i), value).ok());
        model_[Key(i)] = value;
      }
      ASSERT_TRUE(db->Put(a_, "gone", "x").ok());
      ASSERT_TRUE(db->Delete(a_, "gone").ok());
      ASSERT_TRUE(db->Put(a_, "expired", "x", NowMillis() + 200).ok());
      ASSERT_TRUE(db->Shutdown().ok());
    }
    SleepMs(300);  // "expired" is past its time by the restart
    db_ = std::make_unique<Instance>(opts_);
  }
  static std::string Key(int i) { return "key-" + std::to_string(i); }
  static void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
  uint32_t KeyspaceOf(int i) const { return i % 2 ? a_ : b_; }
  Engine* db() const { return &db_->engine(); }

  TempDir dir_;
  Options opts_ = TestOptions(dir_.path());
  std::unique_ptr<Instance> db_;
  uint32_t a_ = 0, b_ = 0;
  std::map<std::string, std::string> model_;
};

TEST_F(CacheWarmerTest, AfterARestartEveryLiveValueIsReadBackInSlices) {
  Load(2000, 1024);  // 2 MB: fits the 8 MB cache
  CacheWarmer warmer(&db_->engine());
  bool done = false;
  int steps = 0;
  while (!done) {
    ASSERT_TRUE(warmer.Step(300, 0, &done).ok());
    ASSERT_LT(++steps, 100);
  }
  EXPECT_GE(steps, 7) << "each slice visits at most 300 keys, and the next resumes after them";
  EXPECT_EQ(warmer.values_read(), 2000u) << "neither the deleted key nor the expired one is read";
  EXPECT_GE(warmer.keys_visited(), 2000u);
  EXPECT_LE(warmer.keys_visited(), 2001u);
  for (int i = 0; i < 2000; ++i) {
    std::string v;
    ReadInfo info;
    ASSERT_TRUE(db()->Get(KeyspaceOf(i), Key(i), &v, &info).ok());
    EXPECT_EQ(v, model_[Key(i)]);
    EXPECT_EQ(info.cache_hits, 1u) << Key(i);
    EXPECT_EQ(info.device_reads, 0u) << Key(i);
  }
  const uint64_t read = warmer.values_read();
  ASSERT_TRUE(warmer.Step(300, 0, &done).ok());
  EXPECT_TRUE(done);
  EXPECT_EQ(warmer.values_read(), read) << "once done it does nothing";
}

TEST_F(CacheWarmerTest, ItStopsWhenTheCacheIsNearlyFull) {
  opts_.cache_memory = size_t{2} << 20;
  Load(6000, 1024);  // 6 MB: three times the cache
  CacheWarmer warmer(&db_->engine());
  bool done = false;
  while (!done) ASSERT_TRUE(warmer.Step(1000, 0, &done).ok());
  EXPECT_LT(warmer.keys_visited(), 3000u) << "it stopped inside the first keyspace";
  const EngineInfo info = db()->Info();
  EXPECT_GE(static_cast<double>(info.cache_memory_used),
            CacheWarmer::kFullFraction * static_cast<double>(info.cache_memory_limit));
  // What it read is still cached: it pushed out little or nothing of its own. Read in its order
  // (keyspace "a" by key), so that a miss, which caches its value, evicts only what was checked.
  auto it = db()->NewIterator(a_, ScanOptions{});
  uint64_t hits = 0, checked = 0;
  for (; it->Valid() && checked < warmer.values_read(); it->Next()) {
    if (it->key() == "expired") continue;
    std::string v;
    ReadInfo read;
    ASSERT_TRUE(db()->Get(a_, it->key(), &v, &read).ok());
    hits += read.cache_hits;
    ++checked;
  }
  EXPECT_EQ(checked, warmer.values_read());
  EXPECT_GE(hits * 10, warmer.values_read() * 9) << hits << " of " << warmer.values_read();
}

TEST_F(CacheWarmerTest, WritesMadeWhileItWarmsAreWhatReadsSee) {
  Load(2000, 512);
  CacheWarmer warmer(&db_->engine());
  bool done = false;
  ASSERT_TRUE(warmer.Step(100, 0, &done).ok());
  ASSERT_FALSE(done);
  // Ahead of it, and behind it: overwritten, deleted, and a new key.
  ASSERT_TRUE(db()->Put(KeyspaceOf(1500), Key(1500), "new").ok());
  ASSERT_TRUE(db()->Delete(KeyspaceOf(1501), Key(1501)).ok());
  ASSERT_TRUE(db()->Put(b_, "key-0", "rewritten").ok());
  while (!done) ASSERT_TRUE(warmer.Step(100, 0, &done).ok());
  std::string v;
  ASSERT_TRUE(db()->Get(KeyspaceOf(1500), Key(1500), &v).ok());
  EXPECT_EQ(v, "new");
  EXPECT_TRUE(db()->Get(KeyspaceOf(1501), Key(1501), &v).IsNotFound());
  ASSERT_TRUE(db()->Get(b_, "key-0", &v).ok());
  EXPECT_EQ(v, "rewritten");
}

TEST_F(CacheWarmerTest, AKeyspaceDroppedWhileItWarmsIsSkipped) {
  Load(2000, 512);
  CacheWarmer warmer(&db_->engine());
  bool done = false;
  ASSERT_TRUE(warmer.Step(100, 0, &done).ok());  // inside "a", the first keyspace
  const uint64_t first_slice = warmer.values_read();
  EXPECT_GE(first_slice, 99u);
  ASSERT_TRUE(db()->DropKeyspace(a_).ok());
  while (!done) ASSERT_TRUE(warmer.Step(100, 0, &done).ok());
  EXPECT_EQ(warmer.values_read(), first_slice + 1000u) << "the first slice, then all of b";
  std::string v;
  ReadInfo info;
  ASSERT_TRUE(db()->Get(b_, Key(0), &v, &info).ok());
  EXPECT_EQ(info.cache_hits, 1u);
}

TEST_F(CacheWarmerTest, AStepEndsAfterTheBatchInWhichItsTimeRanOut) {
  Load(2000, 512);
  CacheWarmer warmer(&db_->engine());
  bool done = false;
  ASSERT_TRUE(warmer.Step(100000, NowMillis() - 1, &done).ok());
  EXPECT_FALSE(done);
  EXPECT_EQ(warmer.keys_visited(), CacheWarmer::kFirstBatchKeys) << "one batch, not 100000 keys";
  while (!done) ASSERT_TRUE(warmer.Step(100000, NowMillis() - 1, &done).ok());
  EXPECT_EQ(warmer.values_read(), 2000u) << "each step resumed where the last one ended";
  EXPECT_FALSE(warmer.interrupted());
}

TEST_F(CacheWarmerTest, AnEngineThatStopsBeingReadyInterruptsIt) {
  Load(2000, 512);
  CacheWarmer warmer(&db_->engine());
  bool done = false;
  ASSERT_TRUE(warmer.Step(100, 0, &done).ok());
  ASSERT_TRUE(db()->Shutdown().ok());
  ASSERT_TRUE(warmer.Step(100, 0, &done).ok());
  EXPECT_TRUE(done);
  EXPECT_TRUE(warmer.interrupted());
}

}  // namespace
}  // namespace eloqkv
