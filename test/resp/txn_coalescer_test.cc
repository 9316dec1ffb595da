// TxnCoalescer, through the dispatcher: a round's read-modify-write commands share one
// transaction and one engine batch; each sees the writes gathered before it; a batch that fails
// runs every command again alone, and each reply is made right.
#include "resp/txn_coalescer.h"

#include <algorithm>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "../engine/test_util.h"
#include "resp/commands.h"
#include "resp/hash_value.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

using TxnCoalescerTest = test::GatheringTest;

// A key given a time already past is gone for every command after it in the round, whoever
// sent them: client b's SETNX used to find a's expired key still there.
TEST_F(TxnCoalescerTest, AKeyGivenAPastTimeIsGoneForTheRestOfTheRound) {
  std::string out_a, out_b;
  Gather(a_, &out_a, {"SET", "p", "v", "PXAT", "1"});
  Gather(b_, &out_b, {"SETNX", "p", "x"});
  Gather(a_, &out_a, {"INCR", "q"});
  Gather(a_, &out_a, {"GETEX", "q", "PXAT", "1"});
  Gather(b_, &out_b, {"INCR", "q"});
  EXPECT_EQ(out_a, "+OK\r\n:1\r\n$1\r\n1\r\n");
  EXPECT_EQ(out_b, ":1\r\n:1\r\n");
  dispatcher_.FlushWrites();
  EXPECT_EQ(Stored("p"), "x");
  EXPECT_EQ(Stored("q"), "1");
  EXPECT_EQ(Run(a_, {"TTL", "q"}), ":-1\r\n");
}

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

  // A key is reported as its writer's, or as nobody's when both wrote it, so that a NOLOOP
  // tracker still hears of the other's write (CLIENT TRACKING).
  std::vector<KeyChange> changes;
  ASSERT_TRUE(db_->ReadChanges(&position, &changes));
  std::map<uint64_t, uint64_t> writer;
  for (const KeyChange& k : changes) writer[k.fingerprint] = k.origin;
  ASSERT_EQ(writer.count(Engine::KeyFingerprint(ks, "c")), 1u);
  EXPECT_EQ(writer[Engine::KeyFingerprint(ks, "c")], 0u);
  EXPECT_EQ(writer[Engine::KeyFingerprint(ks, "h")], 0u);
  EXPECT_EQ(writer[Engine::KeyFingerprint(ks, "s")], b_.id()) << "a's SET NX wrote nothing";
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

TEST_F(TxnCoalescerTest, AnExecObservesTheWritesGatheredBeforeIt) {
  std::string out_a, out_b;
  Gather(b_, &out_b, {"INCR", "m"});
  Gather(a_, &out_a, {"MULTI"});
  Gather(a_, &out_a, {"INCR", "m"});  // queued, not gathered
  Gather(b_, &out_b, {"INCR", "m"});
  Gather(a_, &out_a, {"EXEC"});
  Gather(b_, &out_b, {"INCR", "m"});
  dispatcher_.FlushWrites();
  EXPECT_EQ(out_a, "+OK\r\n+QUEUED\r\n*1\r\n:3\r\n");
  EXPECT_EQ(out_b, ":1\r\n:2\r\n:4\r\n");
  EXPECT_EQ(Stored("m"), "4");
}

TEST_F(TxnCoalescerTest, AKeyOnlyReadIsCheckedAtTheCommitToo) {
  EXPECT_EQ(Run(a_, {"SET", "lock", "held"}), "+OK\r\n");
  std::string out;
  Gather(a_, &out, {"SETNX", "lock", "mine"});  // reads lock: it exists, nothing written
  test::SecondWorker other(db_);
  EXPECT_EQ(test::RunCommand(*other.engine, other.dispatcher, other.session, {"DEL", "lock"}),
            ":1\r\n");
  EXPECT_EQ(test::RunCommand(*other.engine, other.dispatcher, other.session, {"SET", "n", "100"}),
            "+OK\r\n");
  Gather(a_, &out, {"INCR", "n"});              // sees the write made after the DEL
  Gather(a_, &out, {"SETNX", "lock", "mine"});  // so it must not see lock as it was before
  EXPECT_EQ(out, ":0\r\n:101\r\n:0\r\n");
  dispatcher_.FlushWrites();
  // The check of lock failed the batch; run again alone, the commands see the DEL.
  EXPECT_EQ(out, ":1\r\n:101\r\n:0\r\n");
  EXPECT_EQ(Stored("lock"), "mine");
  EXPECT_EQ(Stored("n"), "101");
}

TEST_F(TxnCoalescerTest, ARoundHoldingManyValueBytesIsCommittedEarly) {
  std::string out;
  const std::string offset = std::to_string(TxnCoalescer::kMaxBytes / 2 + 1);
  Gather(a_, &out, {"SETRANGE", "big1", offset, "x"});
  EXPECT_FALSE(db_->Get(dispatcher_.default_keyspace(), "big1", nullptr).ok());
  Gather(a_, &out, {"SETRANGE", "big2", offset, "x"});  // a few bytes of arguments, 2 MiB of value
  EXPECT_EQ(Stored("big1").size(), TxnCoalescer::kMaxBytes / 2 + 2)
      << "committed once the values held passed kMaxBytes";
  EXPECT_EQ(Stored("big2").size(), TxnCoalescer::kMaxBytes / 2 + 2);
}

// A command that replies an error after writing into the shared transaction (a read failing
// halfway through a large hash's fields) must not have those writes committed by the others.
TEST_F(TxnCoalescerTest, ACommandThatFailsAfterWritingMakesEveryCommandRunAlone) {
  std::vector<std::string> ran_alone;
  TxnCoalescer coalescer(&db_.engine(), nullptr, nullptr,
                         [&](Session&, std::span<const std::string_view> args, std::string_view,
                             ReplyWriter& reply, uint64_t* lsn) {
                           ran_alone.emplace_back(args[0]);
                           reply.SimpleString("ALONE");
                           *lsn = 1;
                         });
  const uint32_t ks = dispatcher_.default_keyspace();
  std::string out;
  ReplyWriter reply(&out, 2);
  uint64_t lsn = 0;
  size_t mark = 0;
  const std::vector<std::string_view> ok_args{"ok"}, failing_args{"failing"};
  auto put = [](Txn& txn, std::string_view key, std::string_view value) {
    Txn::Entry* e;
    ASSERT_TRUE(txn.Blind(key, &e).ok());
    txn.Put(e, ValueType::kString, std::string(value), 0);
  };
  coalescer.Add(ks, a_, a_.id(), &lsn, ok_args, reply, &mark, [&](Txn& txn) {
    put(txn, "fine", "1");
    reply.SimpleString("OK");
  });
  coalescer.Add(ks, b_, b_.id(), &lsn, failing_args, reply, &mark, [&](Txn& txn) {
    put(txn, "half", "written");
    reply.Error("ERR the second half failed");
  });
  coalescer.Flush();
  EXPECT_EQ(ran_alone, (std::vector<std::string>{"ok", "failing"}));
  EXPECT_EQ(out, "+ALONE\r\n+ALONE\r\n");
  EXPECT_FALSE(db_->Get(ks, "half", nullptr).ok()) << "the shared batch was not committed";
  EXPECT_FALSE(db_->Get(ks, "fine", nullptr).ok());

  // A command that fails without writing leaves the others' batch alone.
  ran_alone.clear();
  out.clear();
  coalescer.Add(ks, a_, a_.id(), &lsn, ok_args, reply, &mark, [&](Txn& txn) {
    put(txn, "fine", "2");
    reply.SimpleString("OK");
  });
  coalescer.Add(ks, b_, b_.id(), &lsn, failing_args, reply, &mark,
                [&](Txn&) { reply.Error("ERR refused before writing"); });
  coalescer.Flush();
  EXPECT_TRUE(ran_alone.empty());
  EXPECT_EQ(out, "+OK\r\n-ERR refused before writing\r\n");
  EXPECT_EQ(Stored("fine"), "2");
}

TEST_F(TxnCoalescerTest, AKeyspaceDroppedBeforeTheCommitIsResolvedAgain) {
  const uint32_t dropped = dispatcher_.default_keyspace();
  std::string out_a, out_b;
  Gather(a_, &out_a, {"INCR", "c"});
  Gather(b_, &out_b, {"INCRBY", "c", "5"});
  Gather(a_, &out_a, {"SET", "s", "v", "NX"});
  ASSERT_TRUE(db_->DropKeyspace(dropped).ok());
  dispatcher_.FlushWrites();
  EXPECT_EQ(out_a, ":1\r\n+OK\r\n");
  EXPECT_EQ(out_b, ":6\r\n");
  EXPECT_NE(dispatcher_.default_keyspace(), dropped);
  EXPECT_EQ(Stored("c"), "6");
  EXPECT_EQ(Stored("s"), "v");
  EXPECT_EQ(Stored("warm"), "not found") << "the dropped keyspace's keys went with it";
}

}  // namespace
}  // namespace eloqkv::resp
