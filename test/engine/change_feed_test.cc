// The change feed: what a subscriber is told about writes (and is not), across processes,
// under a concurrent writer, and when it falls behind.
#include <chrono>
#include <set>
#include <thread>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::MakeKeyspace;
using test::TempDir;
using test::TestOptions;

class ChangeFeedTest : public ::testing::Test {
 protected:
  TempDir dir_;
  Options opts_ = TestOptions(dir_.path());
};

std::vector<KeyChange> ReadAll(Engine& e, uint64_t* pos, bool* complete = nullptr) {
  std::vector<KeyChange> out;
  const bool ok = e.ReadChanges(pos, &out);
  if (complete != nullptr) *complete = ok;
  return out;
}

TEST_F(ChangeFeedTest, ReportsEveryAppliedWriteAfterSubscribing) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "users");
  ASSERT_TRUE(db->Put(ks, "before", "1").ok());
  uint64_t pos = db->SubscribeChanges();
  EXPECT_TRUE(ReadAll(db.engine(), &pos).empty()) << "writes before subscribing are not reported";

  ASSERT_TRUE(db->Put(ks, "a", "1").ok());
  ASSERT_TRUE(db->Delete(ks, "before").ok());
  WriteBatch b;
  b.set_origin(42);
  ASSERT_TRUE(b.Put(ks, "b", "2").ok());
  ASSERT_TRUE(b.Put(ks, "a", "3", 0, WriteCondition::kIfAbsent, 0, OnConditionFailure::kSkip).ok());
  ASSERT_TRUE(b.Check(ks, "zzz", 0).ok());
  ASSERT_TRUE(db->Write(b).ok());
  bool complete = false;
  std::vector<KeyChange> got = ReadAll(db.engine(), &pos, &complete);
  EXPECT_TRUE(complete);
  ASSERT_EQ(got.size(), 3u) << "a skipped put and a check change nothing";
  EXPECT_EQ(got[0].fingerprint, Engine::KeyFingerprint(ks, "a"));
  EXPECT_EQ(got[1].fingerprint, Engine::KeyFingerprint(ks, "before"));
  EXPECT_EQ(got[2].fingerprint, Engine::KeyFingerprint(ks, "b"));
  EXPECT_EQ(got[0].origin, 0u);
  EXPECT_EQ(got[2].origin, 42u);
  for (const KeyChange& c : got) {
    EXPECT_EQ(c.keyspace, ks);
    EXPECT_FALSE(c.whole_keyspace);
  }

  // A batch whose condition fails changes nothing and reports nothing.
  WriteBatch fails;
  ASSERT_TRUE(fails.Put(ks, "c", "x").ok());
  ASSERT_TRUE(fails.Put(ks, "b", "x", 0, WriteCondition::kIfAbsent).ok());
  EXPECT_FALSE(db->Write(fails).ok());
  EXPECT_TRUE(ReadAll(db.engine(), &pos).empty());

  ASSERT_TRUE(db->TruncateKeyspace(ks).ok());
  got = ReadAll(db.engine(), &pos);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].whole_keyspace);
  EXPECT_EQ(got[0].keyspace, ks);
  EXPECT_EQ(got[0].fingerprint, 0u);

  db->UnsubscribeChanges();
  ASSERT_TRUE(db->Put(ks, "after", "1").ok());
  EXPECT_TRUE(ReadAll(db.engine(), &pos).empty()) << "nothing is appended without a subscriber";
}

TEST_F(ChangeFeedTest, CompactionCopiesAreNotChanges) {
  opts_.segment_size = size_t{1} << 20;
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  const std::string value(2000, 'v');
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), value).ok());
  uint64_t pos = db->SubscribeChanges();
  ASSERT_TRUE(db->Compact().ok());
  EXPECT_GT(db->Info().compactions, 0u) << "the test needs compaction to move records";
  EXPECT_TRUE(ReadAll(db.engine(), &pos).empty());
}

TEST_F(ChangeFeedTest, AReaderTooFarBehindIsToldItLostChanges) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  uint64_t pos = db->SubscribeChanges();
  const size_t total = 40000;  // more than the ring holds
  for (size_t done = 0; done < total;) {
    WriteBatch b;
    for (int i = 0; i < 500; ++i, ++done) ASSERT_TRUE(b.Put(ks, std::to_string(done), "v").ok());
    ASSERT_TRUE(db->Write(b).ok());
  }
  bool complete = true;
  EXPECT_TRUE(ReadAll(db.engine(), &pos, &complete).empty());
  EXPECT_FALSE(complete);
  // It starts again from the present.
  ASSERT_TRUE(db->Put(ks, "next", "v").ok());
  std::vector<KeyChange> got = ReadAll(db.engine(), &pos, &complete);
  EXPECT_TRUE(complete);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].fingerprint, Engine::KeyFingerprint(ks, "next"));
}

// A reader polling while a writer laps the ring: everything it is handed is a real change, in
// order, and whenever it is not told of a loss it has seen every change.
TEST_F(ChangeFeedTest, AConcurrentReaderSeesEveryChangeInOrderOrALoss) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  std::unique_ptr<Engine> reader = db.AttachAnother();
  uint64_t pos = reader->SubscribeChanges();
  const uint64_t n = 200000;
  std::thread writer([&] {
    for (uint64_t i = 0; i < n;) {
      WriteBatch b;
      for (int j = 0; j < 50; ++j, ++i) EXPECT_TRUE(b.Put(ks, std::to_string(i), "").ok());
      EXPECT_TRUE(db->Write(b).ok());
    }
  });
  uint64_t expect_next = 0;  // index of the key the next change must be for
  uint64_t seen = 0, losses = 0;
  std::vector<KeyChange> got;
  uint64_t reads = 0;
  while (expect_next < n) {
    got.clear();
    // Now and then a slow reader, so that the writer laps it while it copies.
    ++reads;
    if (reads % 40 == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    else if (reads % 8 == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const bool complete = reader->ReadChanges(&pos, &got);
    if (!complete) {
      ++losses;
      expect_next = UINT64_MAX;  // resynchronise on the next change
      continue;
    }
    for (const KeyChange& c : got) {
      if (expect_next == UINT64_MAX) {
        // after a loss: find which key this is, scanning forward is enough for the test
        for (uint64_t i = 0; i < n; ++i)
          if (Engine::KeyFingerprint(ks, std::to_string(i)) == c.fingerprint) {
            expect_next = i;
            break;
          }
        ASSERT_NE(expect_next, UINT64_MAX) << "a change for a key nobody wrote";
      }
      ASSERT_EQ(c.fingerprint, Engine::KeyFingerprint(ks, std::to_string(expect_next)))
          << "change " << seen << " is out of order or torn";
      ++expect_next;
      ++seen;
    }
    if (expect_next == UINT64_MAX) continue;
    if (got.empty()) std::this_thread::yield();
  }
  writer.join();
  EXPECT_GT(seen, 0u);
  std::printf("reader saw %llu changes with %llu losses\n", static_cast<unsigned long long>(seen),
              static_cast<unsigned long long>(losses));
}

TEST_F(ChangeFeedTest, ChangesOfAnotherProcessAreReported) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  uint64_t pos = db->SubscribeChanges();
  const pid_t child = test::Fork([&] {
    std::unique_ptr<Engine> e;
    if (!Engine::Attach(db.region(), opts_, &e).ok()) return false;
    return e->Put(ks, "from-child", "1").ok() && e->Delete(ks, "from-child").ok();
  });
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::vector<KeyChange> got = ReadAll(db.engine(), &pos);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].fingerprint, Engine::KeyFingerprint(ks, "from-child"));
  EXPECT_EQ(got[1].fingerprint, got[0].fingerprint);
}

TEST(KeyFingerprint, DependsOnKeyspaceAndEveryByte) {
  std::set<uint64_t> seen;
  for (uint32_t ks = 1; ks <= 3; ++ks)
    for (int i = 0; i < 20000; ++i)
      seen.insert(Engine::KeyFingerprint(ks, "key:" + std::to_string(i)));
  EXPECT_EQ(seen.size(), 60000u);
  EXPECT_NE(Engine::KeyFingerprint(1, std::string("a\0", 2)), Engine::KeyFingerprint(1, "a"));
  EXPECT_NE(Engine::KeyFingerprint(1, ""), 0u);
}

}  // namespace
}  // namespace eloqkv
