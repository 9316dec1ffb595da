// TxnCoalescer, through the dispatcher: a round's read-modify-write commands share one
// transaction and one engine batch; each sees the writes gathered before it; a batch that fails
// runs every command again alone, and each reply is made right.
#include "resp/txn_coalescer.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "../engine/test_util.h"
#include "resp/commands.h"
#include "resp/hash_value.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

class TxnCoalescerTest : public ::testing::Test {
 protected:
  TxnCoalescerTest()
      : db_(host_.With(test::TestOptions(dir_.path()))),
        dispatcher_(&db_.engine(), {}, &stats_, &clients_) {
    a_.authenticated = true;
    b_.authenticated = true;
    // The first command resolves the default keyspace; only then are commands gathered.
    EXPECT_EQ(Run(a_, {"SET", "warm", "1"}), "+OK\r\n");
  }

  // Runs a command the way a round does before its end: its reply may still be replaced, and
  // what it wrote may be gathered, not applied.
  void Gather(Session& s, std::string* out, std::vector<std::string> argv) {
    std::vector<std::string_view> args(argv.begin(), argv.end());
    ReplyWriter reply(out, s.protocol);
    dispatcher_.Execute(s, args, reply);
    ran_lsn_ = std::max(ran_lsn_, dispatcher_.TakePendingLsn());
  }
  // A whole round of one command.
  std::string Run(Session& s, std::vector<std::string> argv) {
    return test::RunCommand(db_.engine(), dispatcher_, s, argv);
  }
  std::string Stored(std::string_view key) {
    std::string v;
    const Status s = db_->Get(dispatcher_.default_keyspace(), key, &v);
    return s.ok() ? v.substr(1) : s.ToString();  // [type byte][payload]
  }

  test::TempDir dir_;
  test::CountingHostLog host_;
  test::Instance db_;
  ListenerStats stats_;
  ClientRegistry clients_;
  Dispatcher dispatcher_;
  Session a_{1, "127.0.0.1:5000", "127.0.0.1:6380", -1};
  Session b_{2, "127.0.0.1:5001", "127.0.0.1:6380", -1};
  uint64_t ran_lsn_ = 0;
};

TEST_F(TxnCoalescerTest, ARoundOfCountersHashesAndConditionalSetsIsOneBatch) {
  const uint32_t ks = dispatcher_.default_keyspace();
  ASSERT_NE(ks, 0u);
  uint64_t position = db_->SubscribeChanges();
  std::string out_a = "earlier\r\n", out_b;
  Gather(a_, &out_a, {"INCR", "c"});
  Gather(b_, &out_b, {"INCR", "c"});
  Gather(a_, &out_a, {"INCRBY", "c", "10"});
  Gather(b_, &out_b, {"HSET", "h", "f", "1"});
  Gather(a_, &out_a, {"HINCRBY", "h", "f", "5"});
  Gather(b_, &out_b, {"SET", "s", "v", "NX"});
  Gather(a_, &out_a, {"SET", "s", "w", "NX"});
  Gather(b_, &out_b, {"APPEND", "s", "x"});
  Gather(a_, &out_a, {"INCR", "s"});  // an error: nothing written, the round goes on
  EXPECT_EQ(
      out_a,
      "earlier\r\n:1\r\n:12\r\n:6\r\n$-1\r\n-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(out_b, ":2\r\n:1\r\n+OK\r\n:2\r\n");
  EXPECT_TRUE(db_->Get(ks, "c", nullptr).IsNotFound()) << "nothing is applied before the flush";

  const uint64_t batches = host_.appended.load();
  dispatcher_.FlushWrites();
  EXPECT_EQ(host_.appended.load(), batches + 1) << "one batch, one WAL record";
  EXPECT_GT(a_.coalesced_lsn, 0u);
  EXPECT_EQ(a_.coalesced_lsn, b_.coalesced_lsn) << "every reply waits for the one batch";
  EXPECT_EQ(Stored("c"), "12");
  EXPECT_EQ(Stored("s"), "vx");
  EXPECT_EQ(Run(b_, {"HGET", "h", "f"}), "$1\r\n6\r\n");
  EXPECT_EQ(out_a.substr(0, 13), "earlier\r\n:1\r\n") << "replies are not touched by a success";

  // Each key is reported as written by the client that wrote it last (CLIENT TRACKING NOLOOP).
  std::vector<KeyChange> changes;
  ASSERT_TRUE(db_->ReadChanges(&position, &changes));
  std::map<uint64_t, uint64_t> writer;
  for (const KeyChange& k : changes) writer[k.fingerprint] = k.origin;
  EXPECT_EQ(writer[Engine::KeyFingerprint(ks, "c")], a_.id());
  EXPECT_EQ(writer[Engine::KeyFingerprint(ks, "h")], a_.id());
  EXPECT_EQ(writer[Engine::KeyFingerprint(ks, "s")], b_.id());
  db_->UnsubscribeChanges();
}

TEST_F(TxnCoalescerTest, ALargeHashGrownByARoundOfHSetsKeepsEveryField) {
  std::string out;
  const size_t per_round = kMaxInlineFields * 3;
  // The first round makes the hash large (and the keyspace of field records); the second
  // grows it.
  for (size_t round = 0; round < 2; ++round) {
    for (size_t i = round * per_round; i < (round + 1) * per_round; ++i)
      Gather(i % 2 ? a_ : b_, &out, {"HSET", "big", "f" + std::to_string(i), std::to_string(i)});
    const uint64_t batches = host_.appended.load();
    dispatcher_.FlushWrites();
    if (round == 1) EXPECT_EQ(host_.appended.load(), batches + 1);
  }
  EXPECT_EQ(out, [&] {
    std::string ones;
    for (size_t i = 0; i < 2 * per_round; ++i) ones += ":1\r\n";
    return ones;
  }());
  EXPECT_EQ(Run(a_, {"HLEN", "big"}), ":" + std::to_string(2 * per_round) + "\r\n");
  EXPECT_EQ(Run(a_, {"HGET", "big", "f7"}), "$1\r\n7\r\n");
  EXPECT_EQ(Run(a_, {"HGET", "big", "f500"}), "$3\r\n500\r\n");
}

TEST_F(TxnCoalescerTest, AWriteByAnotherWorkerMakesEachCommandRunAgainAlone) {
  std::string out_a = "earlier\r\n", out_b;
  Gather(a_, &out_a, {"INCR", "c"});
  Gather(a_, &out_a, {"INCR", "d"});
  Gather(b_, &out_b, {"INCR", "c"});
  Gather(b_, &out_b, {"SET", "c", "x", "GET"});
  EXPECT_EQ(out_a, "earlier\r\n:1\r\n:1\r\n");
  EXPECT_EQ(out_b, ":2\r\n$1\r\n2\r\n");

  // Another listener process writes c between the reads and the commit.
  test::SecondWorker other(db_);
  EXPECT_EQ(test::RunCommand(*other.engine, other.dispatcher, other.session, {"SET", "c", "100"}),
            "+OK\r\n");
  dispatcher_.FlushWrites();
  // Run again in arrival order on what is there now: the first reply grows, and what follows
  // it in the same buffer moves with it.
  EXPECT_EQ(out_a, "earlier\r\n:101\r\n:1\r\n");
  EXPECT_EQ(out_b, ":102\r\n$3\r\n102\r\n");
  EXPECT_EQ(Stored("c"), "x");
  EXPECT_EQ(Stored("d"), "1");
  EXPECT_GT(a_.coalesced_lsn, 0u);
  EXPECT_GT(b_.coalesced_lsn, 0u);
}

TEST_F(TxnCoalescerTest, AWriteTheEngineRefusesFailsOnlyItsOwnCommand) {
  const std::string long_key(kMaxKeySize + 1, 'k');
  std::string out_a, out_b;
  Gather(a_, &out_a, {"INCR", "c"});
  Gather(b_, &out_b, {"SETEX", long_key, "100", "v"});  // written blind: refused at commit
  Gather(a_, &out_a, {"INCR", "c"});
  EXPECT_EQ(out_b, "+OK\r\n");
  dispatcher_.FlushWrites();
  EXPECT_EQ(out_a, ":1\r\n:2\r\n");
  ASSERT_EQ(out_b.rfind("-ERR ", 0), 0u) << out_b;
  EXPECT_EQ(out_b, Run(b_, {"SETEX", long_key, "100", "v"})) << "the reply it has when alone";
  EXPECT_EQ(Stored("c"), "2");
  EXPECT_FALSE(db_->Get(dispatcher_.default_keyspace(), long_key, nullptr).ok());
}

TEST_F(TxnCoalescerTest, ACommandNotGatheredObservesEveryWriteGatheredBeforeIt) {
  std::string out_a, out_b;
  Gather(a_, &out_a, {"INCR", "k"});
  Gather(b_, &out_b, {"GET", "k"});       // a read runs alone: the round is flushed first
  Gather(b_, &out_b, {"SET", "k", "5"});  // a plain SET goes to the other coalescer
  Gather(a_, &out_a, {"INCR", "k"});      // which is flushed before this reads k
  Gather(b_, &out_b, {"MSET", "k", "7", "j", "1"});
  Gather(a_, &out_a, {"DEL", "j"});
  dispatcher_.FlushWrites();
  EXPECT_EQ(out_a, ":1\r\n:6\r\n:1\r\n");
  EXPECT_EQ(out_b, "$1\r\n1\r\n+OK\r\n+OK\r\n");
  EXPECT_EQ(Stored("k"), "7");
  EXPECT_TRUE(db_->Get(dispatcher_.default_keyspace(), "j", nullptr).IsNotFound());
}

TEST_F(TxnCoalescerTest, ARoundIsCommittedEveryMaxCommands) {
  std::string out;
  for (size_t i = 0; i <= TxnCoalescer::kMaxCommands; ++i) Gather(a_, &out, {"INCR", "n"});
  EXPECT_EQ(Stored("n"), std::to_string(TxnCoalescer::kMaxCommands))
      << "the first kMaxCommands were committed when one more came";
  dispatcher_.FlushWrites();
  EXPECT_EQ(Stored("n"), std::to_string(TxnCoalescer::kMaxCommands + 1));
}

TEST_F(TxnCoalescerTest, CommandsInMultiAreNotGathered) {
  std::string out;
  Gather(a_, &out, {"MULTI"});
  Gather(a_, &out, {"INCR", "m"});
  Gather(a_, &out, {"EXEC"});
  EXPECT_EQ(out, "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n");
  EXPECT_EQ(Stored("m"), "1") << "EXEC committed on its own";
}

}  // namespace
}  // namespace eloqkv::resp
