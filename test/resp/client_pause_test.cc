// CLIENT PAUSE and UNPAUSE: which commands a pause holds, how pauses combine, and Redis 7's
// replies and errors.
#include <climits>
#include <string>
#include <vector>

#include "run_command.h"

namespace eloqkv::resp {
namespace {

TEST(ClientPause, KeepsTheLaterEndAndTheStricterModeUntilUnpaused) {
  ClientPause pause;
  int64_t end = 0;
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kNone);
  const int64_t now = NowMillis();
  pause.Pause(now + 60'000, ClientPause::Mode::kAll);
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kAll);
  EXPECT_EQ(end, now + 60'000);
  pause.Pause(now + 10, ClientPause::Mode::kWrite);
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kAll) << "WRITE does not relax ALL";
  EXPECT_EQ(end, now + 60'000) << "a shorter pause does not shorten it";
  pause.Unpause();
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kNone);
  pause.Pause(now + 60'000, ClientPause::Mode::kWrite);
  pause.Pause(now + 120'000, ClientPause::Mode::kAll);
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kAll) << "ALL tightens WRITE";
  EXPECT_EQ(end, now + 120'000);
  // A pause that ended leaves nothing behind: the next one starts from scratch.
  pause.Unpause();
  pause.Pause(now - 1, ClientPause::Mode::kAll);
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kNone);
  pause.Pause(now + 60'000, ClientPause::Mode::kWrite);
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kWrite);
  pause.Pause(0, ClientPause::Mode::kWrite);  // CLIENT PAUSE 0: changes nothing
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kWrite);
  EXPECT_EQ(end, now + 60'000);
  // An end too far to fit beside the mode is as far as fits, not wrapped to the past.
  pause.Unpause();
  pause.Pause(INT64_MAX, ClientPause::Mode::kWrite);
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kWrite);
  EXPECT_EQ(end, INT64_MAX >> 2);
  pause.Pause(int64_t{1} << 62, ClientPause::Mode::kAll);
  EXPECT_EQ(pause.InForce(&end), ClientPause::Mode::kAll);
}

class ClientPauseTest : public test::DispatcherTest {
 protected:
  // What the server does once a postponed command may run: run it again.
  std::string RunAgain(const std::vector<std::string>& argv, Session* s) {
    EXPECT_TRUE(s->park.parked);
    s->park.parked = false;
    s->park.resumed = true;
    return Run(argv, s);
  }
  Session writer_{2, "127.0.0.1:5001", "127.0.0.1:6380", -1};
  void SetUp() override { writer_.authenticated = true; }
};

TEST_F(ClientPauseTest, WriteHoldsWritesAndTransactionsThatWriteNotReads) {
  ASSERT_EQ(Run({"SET", "k", "before"}), "+OK\r\n");
  const uint64_t processed = stats_.commands_processed.load();
  ASSERT_EQ(Run({"CLIENT", "PAUSE", "60000", "WRITE"}), "+OK\r\n");
  EXPECT_EQ(Run({"GET", "k"}, &writer_), "$6\r\nbefore\r\n");
  EXPECT_EQ(Run({"PING"}, &writer_), "+PONG\r\n");
  EXPECT_EQ(Run({"SET", "k", "during"}, &writer_), "") << "held: no reply";
  ASSERT_TRUE(writer_.park.parked);
  EXPECT_TRUE(writer_.park.postponed_writes);
  EXPECT_GT(writer_.park.deadline_ms, NowMillis() + 50'000);
  EXPECT_EQ(Run({"GET", "k"}), "$6\r\nbefore\r\n") << "nothing was written";
  // Still paused: held again, not run.
  EXPECT_EQ(RunAgain({"SET", "k", "during"}, &writer_), "");
  ASSERT_EQ(Run({"CLIENT", "UNPAUSE"}), "+OK\r\n");
  EXPECT_EQ(RunAgain({"SET", "k", "during"}, &writer_), "+OK\r\n");
  EXPECT_FALSE(writer_.park.parked);
  EXPECT_FALSE(writer_.park.postponed) << "nothing of the pause is left for the next command";
  EXPECT_EQ(Run({"GET", "k"}), "$6\r\nduring\r\n");
  EXPECT_EQ(stats_.commands_processed.load(), processed + 7) << "a held command counts once";
  const std::string info = Run({"INFO", "commandstats"});
  EXPECT_NE(info.find("cmdstat_set:calls=2,"), std::string::npos) << info;

  // Transactions: a write is held where Redis holds it, when it is queued; an EXEC that
  // writes is held, one that only reads is not.
  ASSERT_EQ(Run({"MULTI"}, &writer_), "+OK\r\n");
  ASSERT_EQ(Run({"SET", "k", "in-multi"}, &writer_), "+QUEUED\r\n");
  ASSERT_EQ(Run({"CLIENT", "PAUSE", "60000", "WRITE"}), "+OK\r\n");
  EXPECT_EQ(Run({"EXEC"}, &writer_), "");
  EXPECT_TRUE(writer_.park.postponed_writes);
  Session reader{4, "127.0.0.1:5002", "127.0.0.1:6380", -1};
  reader.authenticated = true;
  ASSERT_EQ(Run({"MULTI"}, &reader), "+OK\r\n");
  ASSERT_EQ(Run({"GET", "k"}, &reader), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}, &reader), "*1\r\n$6\r\nduring\r\n");
  ASSERT_EQ(Run({"MULTI"}, &reader), "+OK\r\n");
  EXPECT_EQ(Run({"DEL", "k"}, &reader), "") << "held before it is queued";
  ASSERT_EQ(Run({"CLIENT", "UNPAUSE"}), "+OK\r\n");
  EXPECT_EQ(RunAgain({"EXEC"}, &writer_), "*1\r\n+OK\r\n");
  EXPECT_EQ(RunAgain({"DEL", "k"}, &reader), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}, &reader), "*1\r\n:1\r\n");
}

TEST_F(ClientPauseTest, AllHoldsEveryCommandUntilItEnds) {
  ASSERT_EQ(Run({"CLIENT", "PAUSE", "100", "ALL"}), "+OK\r\n");
  EXPECT_EQ(Run({"PING"}, &writer_), "");
  EXPECT_FALSE(writer_.park.postponed_writes);
  EXPECT_EQ(Run({"CLIENT", "UNPAUSE"}), "") << "as in Redis: ALL holds UNPAUSE too";
  // A WRITE pause meanwhile neither relaxes nor shortens it.
  stats_.client_pause.Pause(NowMillis() + 10, ClientPause::Mode::kWrite);
  int64_t end = 0;
  EXPECT_EQ(stats_.client_pause.InForce(&end), ClientPause::Mode::kAll);
  const int64_t wanted_end = writer_.park.deadline_ms;
  while (NowMillis() < wanted_end) {
  }
  EXPECT_EQ(RunAgain({"PING"}, &writer_), "+PONG\r\n");
  EXPECT_EQ(RunAgain({"CLIENT", "UNPAUSE"}, &session_), "+OK\r\n");
}

// As in Redis, a pause holds commands that have not started: a WAIT already waiting replies
// when its time comes, with its own deadline and position, pause or not.
class FixedReplicas : public ReplicaAcks {
 public:
  uint64_t Position() override { return 42; }
  int Acknowledged(uint64_t position) override { return position <= 42 ? acked : 0; }
  int acked = 0;
};

TEST_F(ClientPauseTest, AWaitAlreadyWaitingIsNotHeld) {
  FixedReplicas replicas;
  dispatcher_.set_replica_acks(&replicas);
  // Its replicas answer during the pause: it replies, from its own position.
  EXPECT_EQ(Run({"WAIT", "1", "60000"}, &writer_), "");
  ASSERT_TRUE(writer_.park.parked);
  const int64_t deadline = writer_.park.deadline_ms;
  ASSERT_EQ(Run({"CLIENT", "PAUSE", "60000"}), "+OK\r\n");
  EXPECT_EQ(RunAgain({"WAIT", "1", "60000"}, &writer_), "") << "not acknowledged yet";
  EXPECT_FALSE(writer_.park.postponed) << "waiting for its replicas, not held";
  EXPECT_EQ(writer_.park.deadline_ms, deadline);
  EXPECT_EQ(writer_.park.replicas_position, 42u);
  replicas.acked = 1;
  EXPECT_EQ(RunAgain({"WAIT", "1", "60000"}, &writer_), ":1\r\n");
  // Its timeout passes during the pause: it replies the count.
  replicas.acked = 0;
  stats_.client_pause.Unpause();
  EXPECT_EQ(Run({"WAIT", "1", "100"}, &writer_), "");
  ASSERT_EQ(Run({"CLIENT", "PAUSE", "60000"}), "+OK\r\n");
  writer_.park.expired = true;  // what the loop does once its deadline passed
  EXPECT_EQ(RunAgain({"WAIT", "1", "100"}, &writer_), ":0\r\n");
  EXPECT_FALSE(writer_.park.parked);
  EXPECT_EQ(Run({"PING"}, &writer_), "") << "a new command is held";
  EXPECT_EQ(Run({"WAIT", "0", "0"}, &session_), "") << "so is a new WAIT";
  stats_.client_pause.Unpause();
  dispatcher_.set_replica_acks(nullptr);
}

TEST_F(ClientPauseTest, RepliesRedisErrorsAndPausesNothingOnThem) {
  EXPECT_EQ(Run({"CLIENT", "PAUSE", "100", "READ"}),
            "-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n");
  EXPECT_EQ(Run({"CLIENT", "PAUSE", "abc"}), "-ERR timeout is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"CLIENT", "PAUSE", "-1"}), "-ERR timeout is negative\r\n");
  EXPECT_EQ(Run({"CLIENT", "PAUSE", std::to_string(LLONG_MAX)}),
            "-ERR timeout is out of range\r\n");
  EXPECT_EQ(Run({"CLIENT", "PAUSE", "100", "ALL", "x"}),
            "-ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT "
            "HELP.\r\n");
  EXPECT_EQ(Run({"CLIENT", "PAUSE"}),
            "-ERR wrong number of arguments for 'client|pause' command\r\n");
  EXPECT_EQ(Run({"CLIENT", "UNPAUSE", "x"}),
            "-ERR wrong number of arguments for 'client|unpause' command\r\n");
  int64_t end = 0;
  EXPECT_EQ(stats_.client_pause.InForce(&end), ClientPause::Mode::kNone);
  EXPECT_EQ(Run({"SET", "k", "v"}, &writer_), "+OK\r\n");
  EXPECT_EQ(Run({"CLIENT", "PAUSE", "0", "WRITE"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "k", "v"}, &writer_), "+OK\r\n") << "a pause of 0 ms holds nothing";
}

}  // namespace
}  // namespace eloqkv::resp
