// WriteCoalescer, through the dispatcher: a round's plain SETs and MSETs are one engine batch,
// applied in arrival order with each client's origin; a batch that fails runs every command
// again alone, through the full path, and each reply is made right.
#include "resp/write_coalescer.h"

#include <algorithm>
#include <string>
#include <vector>

#include "../engine/test_util.h"
#include "resp/commands.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

using WriteCoalescerTest = test::GatheringTest;

TEST_F(WriteCoalescerTest, GatheredWritesAreOneBatchInArrivalOrderEachWithItsOrigin) {
  const uint32_t ks = dispatcher_.default_keyspace();
  uint64_t position = db_->SubscribeChanges();
  std::string out_a = "earlier reply\r\n", out_b;
  Gather(a_, &out_a, {"SET", "a", "1"});
  Gather(b_, &out_b, {"MSET", "b", "1", "a", "2"});
  EXPECT_EQ(out_a, "earlier reply\r\n+OK\r\n");
  EXPECT_EQ(out_b, "+OK\r\n");
  EXPECT_TRUE(db_->Get(ks, "a", nullptr).IsNotFound()) << "nothing is applied before the flush";
  const uint64_t batches = host_.appended.load();
  dispatcher_.FlushWrites();
  EXPECT_EQ(host_.appended.load(), batches + 1) << "one batch, one WAL record";
  EXPECT_EQ(Stored("a"), "2") << "the later command wins";
  EXPECT_EQ(Stored("b"), "1");
  EXPECT_GT(a_.coalesced_lsn, 0u);
  EXPECT_EQ(a_.coalesced_lsn, b_.coalesced_lsn) << "both replies wait for the one batch";
  std::vector<KeyChange> changes;
  ASSERT_TRUE(db_->ReadChanges(&position, &changes));
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].fingerprint, Engine::KeyFingerprint(ks, "a"));
  EXPECT_EQ(changes[0].origin, a_.id());
  EXPECT_EQ(changes[1].fingerprint, Engine::KeyFingerprint(ks, "b"));
  EXPECT_EQ(changes[1].origin, b_.id());
  EXPECT_EQ(changes[2].origin, b_.id());
  db_->UnsubscribeChanges();
}

TEST_F(WriteCoalescerTest, WritesTheEngineRefusesAreNotGathered) {
  const std::string long_key(kMaxKeySize + 1, 'k');
  std::string out;
  Gather(a_, &out, {"SET", "ok", "1"});
  const uint64_t batches = host_.appended.load();
  Gather(a_, &out, {"MSET", "fine", "1", long_key, "2"});  // runs alone: the SET is applied first
  EXPECT_EQ(host_.appended.load(), batches + 1);
  EXPECT_EQ(Stored("ok"), "1");
  const std::string refused = out.substr(5);
  ASSERT_EQ(out.substr(0, 5), "+OK\r\n");
  EXPECT_EQ(refused, Run(a_, {"MSET", "fine", "1", long_key, "2"})) << "the reply it has alone";
  ASSERT_EQ(refused.rfind("-ERR ", 0), 0u) << refused;
  EXPECT_TRUE(db_->Get(dispatcher_.default_keyspace(), "fine", nullptr).IsNotFound())
      << "the refused MSET's first pair neither";
  dispatcher_.FlushWrites();
  EXPECT_EQ(out, "+OK\r\n" + refused);
}

TEST_F(WriteCoalescerTest, AKeyspaceDroppedBeforeTheFlushIsResolvedAgain) {
  const uint32_t dropped = dispatcher_.default_keyspace();
  std::string out_a, out_b;
  Gather(a_, &out_a, {"SET", "k", "v"});
  Gather(b_, &out_b, {"MSET", "m1", "1", "m2", "2"});
  // Another worker or SQL drops the default keyspace between the gathering and the flush.
  ASSERT_TRUE(db_->DropKeyspace(dropped).ok());
  dispatcher_.FlushWrites();
  EXPECT_EQ(out_a, "+OK\r\n");
  EXPECT_EQ(out_b, "+OK\r\n");
  const uint32_t recreated = dispatcher_.default_keyspace();
  EXPECT_NE(recreated, dropped);
  EXPECT_FALSE(db_->KeyspaceExists(dropped));
  EXPECT_EQ(Stored("k"), "v");
  EXPECT_EQ(Stored("m1"), "1");
  EXPECT_EQ(Stored("m2"), "2");
  EXPECT_GT(a_.coalesced_lsn, 0u);
  EXPECT_GT(b_.coalesced_lsn, 0u);
  EXPECT_EQ(Run(a_, {"GET", "k"}), "$1\r\nv\r\n");
}

class FullIndexCoalescerTest : public test::GatheringTest {
 protected:
  FullIndexCoalescerTest() : GatheringTest(size_t{1} << 20) {}
};

TEST_F(FullIndexCoalescerTest, ABatchThatFailsRunsEachCommandAlone) {
  const uint32_t ks = dispatcher_.default_keyspace();
  Status full;
  int n = 0;
  for (int step = 256; step > 0; step /= 4) {  // big batches first: a sync each
    for (;; n += step) {
      WriteBatch b;
      for (int i = n; i < n + step; ++i)
        ASSERT_TRUE(b.Put(ks, "key-" + std::to_string(i), "\x01v").ok());
      full = db_->Write(b);
      if (!full.ok()) break;
    }
  }
  ASSERT_TRUE(full.IsIndexFull()) << full.ToString();
  const std::string refused = "key-" + std::to_string(n);

  std::string first_client, second_client;
  // Overwrites need no index memory; the key that did not fit still does not, and fails the
  // whole batch.
  Gather(a_, &first_client, {"SET", "key-0", "x"});
  Gather(a_, &first_client, {"SET", refused, "y"});
  Gather(b_, &second_client, {"SET", "key-1", "z"});
  Gather(a_, &first_client, {"SET", "key-2", "w"});
  dispatcher_.FlushWrites();
  EXPECT_GT(a_.coalesced_lsn, 0u);
  EXPECT_GT(b_.coalesced_lsn, 0u);
  const std::string alone = Run(a_, {"SET", refused, "y"});
  ASSERT_EQ(alone.rfind("-", 0), 0u) << alone;
  EXPECT_EQ(first_client, "+OK\r\n" + alone + "+OK\r\n");
  EXPECT_EQ(second_client, "+OK\r\n");
  EXPECT_EQ(Stored("key-0"), "x");
  EXPECT_EQ(Stored("key-1"), "z");
  EXPECT_EQ(Stored("key-2"), "w");
  EXPECT_TRUE(db_->Get(ks, refused, nullptr).IsNotFound());
}

}  // namespace
}  // namespace eloqkv::resp
