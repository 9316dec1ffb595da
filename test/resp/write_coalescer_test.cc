// WriteCoalescer: gathered SETs are one engine batch, applied in arrival order with each
// client's origin; a batch that fails is applied command by command, each reply made right.
#include "resp/write_coalescer.h"

#include <string>
#include <vector>

#include "../engine/test_util.h"
#include "resp/commands.h"

namespace eloqkv::resp {
namespace {

using test::CountingHostLog;
using test::Instance;
using test::MakeKeyspace;
using test::TempDir;
using test::TestOptions;

class WriteCoalescerTest : public ::testing::Test {
 protected:
  explicit WriteCoalescerTest(size_t index_memory = 0) : db_(Opts(dir_.path(), index_memory)) {
    ks_ = MakeKeyspace(db_.engine(), "t");
  }
  Options Opts(const std::string& dir, size_t index_memory) {
    Options o = host_.With(TestOptions(dir));
    if (index_memory != 0) o.index_memory = index_memory;
    return o;
  }
  bool Add(WriteCoalescer& w, std::vector<std::string_view> pairs, uint64_t origin, uint64_t* lsn,
           std::string* out) {
    ReplyWriter reply(out, 2);
    return w.Add(ks_, pairs, origin, lsn, reply);
  }
  std::string Value(std::string_view key) {
    std::string v;
    const Status s = db_->Get(ks_, key, &v);
    return s.ok() ? v.substr(1) : s.ToString();  // [type byte][payload]
  }

  TempDir dir_;
  CountingHostLog host_;
  Instance db_;
  uint32_t ks_ = 0;
};

TEST_F(WriteCoalescerTest, GatheredWritesAreOneBatchInArrivalOrderEachWithItsOrigin) {
  uint64_t position = db_->SubscribeChanges();
  WriteCoalescer w(&db_.engine());
  std::string out7 = "earlier reply\r\n", out8;
  uint64_t lsn7 = 0, lsn8 = 0;
  ASSERT_TRUE(Add(w, {"a", "1"}, 7, &lsn7, &out7));
  ASSERT_TRUE(Add(w, {"b", "1", "a", "2"}, 8, &lsn8, &out8));  // an MSET
  EXPECT_EQ(out7, "earlier reply\r\n+OK\r\n");
  EXPECT_EQ(out8, "+OK\r\n");
  EXPECT_TRUE(db_->Get(ks_, "a", nullptr).IsNotFound()) << "nothing is applied before Flush";
  const uint64_t batches = host_.appended.load();
  w.Flush();
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(host_.appended.load(), batches + 1) << "one batch, one WAL record";
  EXPECT_EQ(Value("a"), "2") << "the later command wins";
  EXPECT_EQ(Value("b"), "1");
  EXPECT_GT(lsn7, 0u);
  EXPECT_EQ(lsn7, lsn8) << "both replies wait for the one batch";
  std::vector<KeyChange> changes;
  ASSERT_TRUE(db_->ReadChanges(&position, &changes));
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].fingerprint, Engine::KeyFingerprint(ks_, "a"));
  EXPECT_EQ(changes[0].origin, 7u);
  EXPECT_EQ(changes[1].fingerprint, Engine::KeyFingerprint(ks_, "b"));
  EXPECT_EQ(changes[1].origin, 8u);
  EXPECT_EQ(changes[2].origin, 8u);
  db_->UnsubscribeChanges();
}

TEST_F(WriteCoalescerTest, WritesTheEngineRefusesAreNotGathered) {
  WriteCoalescer w(&db_.engine());
  std::string out;
  uint64_t lsn = 0;
  const std::string long_key(kMaxKeySize + 1, 'k');
  ASSERT_TRUE(Add(w, {"ok", "1"}, 1, &lsn, &out));
  EXPECT_FALSE(Add(w, {"fine", "1", long_key, "2"}, 1, &lsn, &out));
  EXPECT_EQ(out, "+OK\r\n") << "no reply for what was not gathered";
  w.Flush();
  EXPECT_EQ(Value("ok"), "1");
  EXPECT_TRUE(db_->Get(ks_, "fine", nullptr).IsNotFound()) << "the refused MSET's first pair too";
}

class FullIndexCoalescerTest : public WriteCoalescerTest {
 protected:
  FullIndexCoalescerTest() : WriteCoalescerTest(size_t{1} << 20) {}
};

TEST_F(FullIndexCoalescerTest, ABatchThatFailsIsAppliedCommandByCommand) {
  Status full;
  int n = 0;
  for (int step = 256; step > 0; step /= 4) {  // big batches first: a sync each
    for (;; n += step) {
      WriteBatch b;
      for (int i = n; i < n + step; ++i)
        ASSERT_TRUE(b.Put(ks_, "key-" + std::to_string(i), "\x01v").ok());
      full = db_->Write(b);
      if (!full.ok()) break;
    }
  }
  ASSERT_TRUE(full.IsIndexFull()) << full.ToString();
  std::string expected_error;
  ReplyWriter expected(&expected_error, 2);
  ReplyEngineError(expected, full);

  WriteCoalescer w(&db_.engine());
  std::string first_client, second_client;
  uint64_t lsn1 = 0, lsn2 = 0;
  // Overwrites need no index memory; the key that did not fit still does not, and fails the
  // whole batch.
  const std::string refused = "key-" + std::to_string(n);
  ASSERT_TRUE(Add(w, {"key-0", "x"}, 1, &lsn1, &first_client));
  ASSERT_TRUE(Add(w, {refused, "y"}, 1, &lsn1, &first_client));
  ASSERT_TRUE(Add(w, {"key-1", "z"}, 2, &lsn2, &second_client));
  ASSERT_TRUE(Add(w, {"key-2", "w"}, 1, &lsn1, &first_client));
  w.Flush();
  EXPECT_EQ(first_client, "+OK\r\n" + expected_error + "+OK\r\n");
  EXPECT_EQ(second_client, "+OK\r\n");
  EXPECT_EQ(Value("key-0"), "x");
  EXPECT_EQ(Value("key-1"), "z");
  EXPECT_EQ(Value("key-2"), "w");
  EXPECT_TRUE(db_->Get(ks_, refused, nullptr).IsNotFound());
  EXPECT_GT(lsn1, 0u);
  EXPECT_GT(lsn2, 0u);
}

}  // namespace
}  // namespace eloqkv::resp
