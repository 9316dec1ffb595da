// Commands over a real engine: Redis semantics, atomic MULTI/EXEC, WATCH, and no lost updates
// when two dispatchers (two workers) write the same key.
#include <string>
#include <vector>

#include "resp/commands.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

using CommandsTest = test::DispatcherTest;

TEST_F(CommandsTest, StringsCountersAndErrors) {
  EXPECT_EQ(Run({"SET", "k", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"get", "k"}), "$1\r\nv\r\n");
  EXPECT_EQ(Run({"GET", "missing"}), "$-1\r\n");
  EXPECT_EQ(Run({"INCR", "k"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"INCRBY", "n", "5"}), ":5\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "n", "0.25"}), "$4\r\n5.25\r\n");
  EXPECT_EQ(Run({"SET", "k", "v", "EX", "abc"}),
            "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"GET"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run({"NOPE", "a"}), "-ERR unknown command 'NOPE', with args beginning with: 'a' \r\n");
  EXPECT_EQ(Run({"HSET", "h", "f", "1"}), ":1\r\n");
  EXPECT_EQ(Run({"GET", "h"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(Run({"APPEND", "h", "x"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(Run({"HGET", "h", "f"}), "$1\r\n1\r\n");
}

TEST_F(CommandsTest, ACommandThatFailsHalfwayWritesNothing) {
  EXPECT_EQ(Run({"SET", "k1", "v"}), "+OK\r\n");
  const uint32_t ks = dispatcher_.default_keyspace();
  // A value RESP cannot read: the DEL's read of k2 fails after it removed k1 in its transaction.
  ASSERT_TRUE(db_->Put(ks, "k2", std::string("\x7fnot RESP's")).ok());
  const std::string refused = Run({"DEL", "k1", "k2"});
  EXPECT_EQ(refused.rfind("-", 0), 0u) << refused;
  EXPECT_NE(refused.find("not written by RESP"), std::string::npos) << refused;
  EXPECT_EQ(Run({"GET", "k1"}), "$1\r\nv\r\n") << "the removal of k1 was not committed";
  EXPECT_EQ(Run({"UNLINK", "k1", "k2"}), refused);
  EXPECT_EQ(Run({"EXISTS", "k1"}), ":1\r\n");
}

TEST_F(CommandsTest, InsideExecACommandThatFailsHalfwayWritesNothingAndTheOthersDo) {
  EXPECT_EQ(Run({"SET", "k1", "v"}), "+OK\r\n");
  const uint32_t ks = dispatcher_.default_keyspace();
  ASSERT_TRUE(db_->Put(ks, "k2", std::string("\x7fnot RESP's")).ok());
  const std::string refused = Run({"DEL", "k1", "k2"});
  ASSERT_EQ(refused.rfind("-", 0), 0u) << refused;
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "a", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"DEL", "a", "k1", "k2"}), "+QUEUED\r\n");  // removes a and k1, then fails
  EXPECT_EQ(Run({"APPEND", "a", "2"}), "+QUEUED\r\n");      // sees a as before the DEL
  EXPECT_EQ(Run({"DEL", "k1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*4\r\n+OK\r\n" + refused + ":2\r\n:1\r\n");
  EXPECT_EQ(Run({"GET", "a"}), "$2\r\n12\r\n");
  EXPECT_EQ(Run({"EXISTS", "k1"}), ":0\r\n") << "removed by the last command, not the failed one";

  // FLUSHDB in the same EXEC as a failing command keeps its effect.
  EXPECT_EQ(Run({"SET", "k1", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"INCR", "k1"}), "+QUEUED\r\n");  // fails without writing
  EXPECT_EQ(Run({"FLUSHDB"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"SET", "b", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*3\r\n-ERR value is not an integer or out of range\r\n+OK\r\n+OK\r\n");
  EXPECT_EQ(Run({"DBSIZE"}), ":1\r\n");
}

TEST_F(CommandsTest, ExecIsAtomicAndWatchDetectsAnotherWriter) {
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "a", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"INCR", "a"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*2\r\n+OK\r\n:2\r\n");
  EXPECT_EQ(Run({"EXEC"}), "-ERR EXEC without MULTI\r\n");

  Session other(2, "p2", "l", -1);
  other.authenticated = true;
  EXPECT_EQ(Run({"WATCH", "a"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "a", "changed"}, &other), "+OK\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "a", "mine"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*-1\r\n");
  EXPECT_EQ(Run({"GET", "a"}), "$7\r\nchanged\r\n");
}

TEST_F(CommandsTest, StandbyServesReadsAndRefusesWritesWithRedisReadOnlyError) {
  EXPECT_EQ(Run({"SET", "k", "v"}), "+OK\r\n");
  dispatcher_.set_role(ServerRole::kStandby);
  const std::string readonly = "-READONLY You can't write against a read only replica.\r\n";
  EXPECT_EQ(Run({"SET", "k", "other"}), readonly);
  EXPECT_EQ(Run({"DEL", "k"}), readonly);
  EXPECT_EQ(Run({"HSET", "h", "f", "1"}), readonly);
  EXPECT_EQ(Run({"FLUSHDB"}), readonly);
  EXPECT_EQ(Run({"GET", "k"}), "$1\r\nv\r\n");
  EXPECT_EQ(Run({"DBSIZE"}), ":1\r\n");
  // Arity and unknown commands keep their own errors; the connection commands still work.
  EXPECT_EQ(Run({"SET", "k"}), "-ERR wrong number of arguments for 'set' command\r\n");
  EXPECT_EQ(Run({"PING"}), "+PONG\r\n");
  EXPECT_NE(Run({"INFO", "replication"}).find("role:slave\r\n"), std::string::npos);
  // In MULTI the refused command discards the transaction, as on a Redis replica; reads queue.
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "k", "x"}), readonly);
  EXPECT_EQ(Run({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"GET", "k"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*1\r\n$1\r\nv\r\n");
  // A standby whose replay stopped refuses reads with the host's reason.
  dispatcher_.set_role(ServerRole::kStandby, "ERR replay stopped: because");
  EXPECT_EQ(Run({"GET", "k"}), "-ERR replay stopped: because\r\n");
  EXPECT_EQ(Run({"SET", "k", "x"}), readonly);
  // Replaying WAL after a crash: key commands wait for it, as Redis does while loading.
  dispatcher_.set_role(ServerRole::kReplaying);
  EXPECT_EQ(Run({"GET", "k"}),
            "-LOADING eloqkv is replaying the write-ahead log after a restart\r\n");
  EXPECT_EQ(Run({"PING"}), "+PONG\r\n");
  // Promoted after its replay stopped: key commands, writes too, keep the host's reason.
  dispatcher_.set_role(ServerRole::kPrimary, "ERR replay stopped: because");
  EXPECT_EQ(Run({"GET", "k"}), "-ERR replay stopped: because\r\n");
  EXPECT_EQ(Run({"INCR", "n"}), "-ERR replay stopped: because\r\n");
  EXPECT_EQ(Run({"PING"}), "+PONG\r\n");
  // Promoted: writes and reads are served again, and nothing was changed meanwhile.
  dispatcher_.set_role(ServerRole::kPrimary);
  EXPECT_EQ(Run({"GET", "k"}), "$1\r\nv\r\n");
  EXPECT_NE(Run({"INFO", "replication"}).find("role:master\r\n"), std::string::npos);
  EXPECT_EQ(Run({"SET", "k", "w"}), "+OK\r\n");
}

TEST_F(CommandsTest, TwoWorkersInterleavingIncrementsLoseNothing) {
  test::SecondWorker second(db_);
  for (int i = 0; i < 200; ++i) {
    Run({"INCR", "counter"});
    Run({"INCR", "counter"}, &second.session, &second.dispatcher);
  }
  EXPECT_EQ(Run({"GET", "counter"}), "$3\r\n400\r\n");
}

TEST_F(CommandsTest, ExpiryFollowsRedisRules) {
  EXPECT_EQ(Run({"SET", "t", "v", "PX", "100000"}), "+OK\r\n");
  EXPECT_EQ(Run({"EXPIRE", "t", "10", "GT"}), ":0\r\n");
  EXPECT_EQ(Run({"EXPIRE", "t", "1000", "GT"}), ":1\r\n");
  EXPECT_EQ(Run({"EXPIRE", "t", "10", "NX", "XX"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
  EXPECT_EQ(Run({"PERSIST", "t"}), ":1\r\n");
  EXPECT_EQ(Run({"TTL", "t"}), ":-1\r\n");
  EXPECT_EQ(Run({"PEXPIRE", "t", "-5"}), ":1\r\n");
  EXPECT_EQ(Run({"EXISTS", "t"}), ":0\r\n");
}

// MEMORY USAGE: the key's record and index entry, a large hash's field records sampled (or all
// of them with SAMPLES 0); the other subcommands as Redis answers them without jemalloc.
TEST_F(CommandsTest, MemoryUsageCountsTheKeysRecordsAndSamplesLargeHashes) {
  const std::string value(300, 'v');
  ASSERT_EQ(Run({"SET", "str", value}), "+OK\r\n");
  const auto integer = [](const std::string& reply) { return std::stoll(reply.substr(1)); };
  EXPECT_EQ(integer(Run({"MEMORY", "USAGE", "str"})),
            static_cast<int64_t>(Engine::KeyFootprint(3, 1 + value.size())))
      << "the index entry, the record header, the key, the type byte and the value";
  EXPECT_EQ(Run({"MEMORY", "USAGE", "missing"}), "$-1\r\n");
  // A large hash: its header, and its field records.
  std::vector<std::string> hset = {"HSET", "big"};
  for (int i = 0; i < 200; ++i) {
    hset.push_back("field:" + std::to_string(i));
    hset.push_back(std::string(100 + i % 2, 'x'));
  }
  ASSERT_EQ(Run(hset), ":200\r\n");
  ASSERT_EQ(Run({"OBJECT", "ENCODING", "big"}), "$9\r\nhashtable\r\n");
  const int64_t all = integer(Run({"MEMORY", "USAGE", "big", "SAMPLES", "0"}));
  const int64_t sampled = integer(Run({"MEMORY", "USAGE", "big"}));
  EXPECT_GT(all, 200 * (100 + 8)) << "every field record counts";
  EXPECT_NEAR(static_cast<double>(sampled), static_cast<double>(all), all * 0.05)
      << "five fields sampled, scaled to 200";
  const int64_t one = integer(Run({"MEMORY", "USAGE", "big", "SAMPLES", "1"}));
  EXPECT_NEAR(static_cast<double>(one), static_cast<double>(all), all * 0.05);
  EXPECT_EQ(Run({"MEMORY", "USAGE", "big", "SAMPLES"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"MEMORY", "USAGE", "big", "SAMPLES", "-1"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"MEMORY", "USAGE", "big", "SAMPLES", "x"}),
            "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"MEMORY", "USAGE", "big", "FOO", "1"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"MEMORY", "USAGE"}),
            "-ERR wrong number of arguments for 'memory|usage' command\r\n");
  EXPECT_EQ(Run({"MEMORY", "STATS"}), "-ERR unknown subcommand 'STATS'. Try MEMORY HELP.\r\n");
  EXPECT_EQ(Run({"MEMORY", "MALLOC-STATS"}),
            "$45\r\nStats not supported for the current allocator\r\n");
  EXPECT_EQ(Run({"MEMORY", "PURGE"}), "+OK\r\n");
  EXPECT_EQ(Run({"MEMORY", "HELP"}).substr(0, 5), "*12\r\n");
  EXPECT_NE(Run({"MEMORY", "DOCTOR"}).find("I can't find any memory issue"), std::string::npos);
}

}  // namespace
}  // namespace eloqkv::resp
