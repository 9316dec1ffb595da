// Resource limits and damaged checkpoints: a full index or a full disk refuses writes with a
// clear status and changes nothing, reads keep working, nothing acknowledged is lost, and writes
// resume once space is freed. A damaged checkpoint falls back to the previous one.
#include <fcntl.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

TEST(EngineLimits, FullIndexRefusesNewKeysButKeepsReadsUpdatesAndDeletes) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.index_memory = size_t{1} << 20;
  std::vector<std::string> stored;
  {
    Instance db(opts);
    const uint32_t ks = test::MakeKeyspace(db.engine(), "t");
    Status s;
    for (int i = 0;; ++i) {
      const std::string k = "key-" + std::to_string(i);
      s = db->Put(ks, k, "v" + std::to_string(i));
      if (!s.ok()) break;
      stored.push_back(k);
    }
    EXPECT_TRUE(s.IsIndexFull()) << s.ToString();
    EXPECT_NE(s.message().find("index memory"), std::string::npos) << s.message();
    EXPECT_GT(stored.size(), 1000u);
    KeyspaceStats st;
    ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
    EXPECT_EQ(st.keys, stored.size());
    std::string v;
    ASSERT_TRUE(db->Get(ks, stored.front(), &v).ok());
    EXPECT_EQ(v, "v0");
    // Overwrites need no new index memory; deletes free some, and inserts work again.
    ASSERT_TRUE(db->Put(ks, stored.front(), "updated").ok());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(db->Delete(ks, stored[stored.size() - 1 - i]).ok());
    db->SweepExpired(1000000);  // drops the (now durable) tombstones
    stored.resize(stored.size() - 100);
    ASSERT_TRUE(db->Put(ks, "fresh", "x").ok());
  }
  // A crash restart brings back exactly what was acknowledged.
  Instance db(opts);
  uint32_t ks;
  ASSERT_TRUE(db->FindKeyspace("t", &ks).ok());
  std::string v;
  ASSERT_TRUE(db->Get(ks, stored.front(), &v).ok());
  EXPECT_EQ(v, "updated");
  ASSERT_TRUE(db->Get(ks, stored.back(), &v).ok());
  ASSERT_TRUE(db->Get(ks, "fresh", &v).ok());
  KeyspaceStats st;
  ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
  EXPECT_EQ(st.keys, stored.size() + 1);
}

TEST(EngineLimits, IndexMemoryBeyondWhatItsReferencesAddressIsRefused) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.index_memory = size_t{32} << 30;
  const Status s = Engine::ValidateOptions(opts);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("index memory must be less than 32 GiB"), std::string::npos);
  opts.index_memory = (size_t{32} << 30) - (size_t{1} << 20);
  EXPECT_TRUE(Engine::ValidateOptions(opts).ok());
}

TEST(EngineLimits, TooSmallIndexForTheDataOnDiskFailsRecoveryClearly) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  {
    Instance db(opts);
    const uint32_t ks = test::MakeKeyspace(db.engine(), "t");
    WriteBatch b;
    for (int i = 0; i < 60000; ++i) ASSERT_TRUE(b.Put(ks, "key-" + std::to_string(i), "v").ok());
    ASSERT_TRUE(db->Write(b).ok());
  }
  opts.index_memory = size_t{1} << 20;
  Instance db(opts, /*recover=*/false);
  Status s = db->Recover();
  EXPECT_TRUE(s.IsIndexFull()) << s.ToString();
  EXPECT_NE(s.message().find("raise the index memory"), std::string::npos) << s.message();
  EXPECT_EQ(db->state(), EngineState::kFailed);
}

TEST(EngineLimits, DiskLimitRefusesWritesKeepsReadsAndRecoversAfterDeletes) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.segment_size = size_t{1} << 20;
  opts.max_disk_bytes = size_t{8} << 20;
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(1);
  {
    Instance db(opts);
    const uint32_t ks = test::MakeKeyspace(db.engine(), "t");
    Status s;
    for (int i = 0;; ++i) {
      const std::string k = "k" + std::to_string(i), v = test::Value(rng, 8000);
      s = db->Put(ks, k, v);
      if (!s.ok()) break;
      model[k] = v;
    }
    EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
    EXPECT_NE(s.message().find("disk limit"), std::string::npos) << s.message();
    EXPECT_LE(db->Info().disk_bytes, opts.max_disk_bytes);
    for (const auto& [k, v] : model) {
      std::string got;
      ASSERT_TRUE(db->Get(ks, k, &got).ok()) << k;
      ASSERT_EQ(got, v);
    }
    // Free space: delete most keys, let compaction reclaim, and writing works again.
    size_t n = 0;
    for (auto it = model.begin(); it != model.end();) {
      if (n++ % 10 != 0) {
        ASSERT_TRUE(db->Delete(ks, it->first).ok());
        it = model.erase(it);
      } else {
        ++it;
      }
    }
    ASSERT_TRUE(db->Compact().ok());
    ASSERT_TRUE(db->Put(ks, "after", "space").ok());
    model["after"] = "space";
  }
  Instance db(opts);
  uint32_t ks;
  ASSERT_TRUE(db->FindKeyspace("t", &ks).ok());
  for (const auto& [k, v] : model) {
    std::string got;
    ASSERT_TRUE(db->Get(ks, k, &got).ok()) << k;
    ASSERT_EQ(got, v);
  }
  std::string got;
  EXPECT_TRUE(db->Get(ks, "k1", &got).IsNotFound());
}

std::mutex g_log_mu;
std::string g_log;

TEST(EngineCheckpoint, ADamagedNewestCheckpointFallsBackToThePreviousOne) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.log = [](void*, LogLevel, const char* msg) {
    std::lock_guard<std::mutex> l(g_log_mu);
    g_log += msg;
    g_log += '\n';
  };
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(2);
  {
    Instance db(opts);
    const uint32_t ks = test::MakeKeyspace(db.engine(), "t");
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 2000; ++i) {
        const std::string k = "k" + std::to_string(rng() % 3000), v = test::Value(rng, 100);
        ASSERT_TRUE(db->Put(ks, k, v).ok());
        model[k] = v;
      }
      if (round < 2) ASSERT_TRUE(db->Checkpoint().ok());
    }
  }
  std::vector<std::string> ckpts;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().extension() == ".ckpt") ckpts.push_back(e.path().string());
  ASSERT_EQ(ckpts.size(), 2u);
  std::sort(ckpts.begin(), ckpts.end());
  const int fd = ::open(ckpts.back().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c;
  ASSERT_EQ(::pread(fd, &c, 1, 5000), 1);
  c ^= 0x10;
  ASSERT_EQ(::pwrite(fd, &c, 1, 5000), 1);
  ::close(fd);
  Instance db(opts);
  ASSERT_EQ(db->state(), EngineState::kReady);
  {
    std::lock_guard<std::mutex> l(g_log_mu);
    EXPECT_NE(g_log.find("is unusable"), std::string::npos) << g_log;
    EXPECT_NE(g_log.find(ckpts.back()), std::string::npos) << g_log;
  }
  uint32_t ks;
  ASSERT_TRUE(db->FindKeyspace("t", &ks).ok());
  for (const auto& [k, v] : model) {
    std::string got;
    ASSERT_TRUE(db->Get(ks, k, &got).ok()) << k;
    ASSERT_EQ(got, v);
  }
}

}  // namespace
}  // namespace eloqkv
