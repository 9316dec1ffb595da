// WAIT numreplicas timeout: counted at once, or parked until the replicas acknowledge or the
// timeout passes; Redis 7's errors.
#include <climits>
#include <string>
#include <vector>

#include "run_command.h"

namespace eloqkv::resp {
namespace {

class FakeReplicas : public ReplicaAcks {
 public:
  uint64_t Position() override { return ++position_; }
  int Acknowledged(uint64_t position) override {
    asked.push_back(position);
    return acked;
  }
  bool Describe(ReplicationStatus* out) override {
    *out = status;
    return describes;
  }
  int acked = 0;
  std::vector<uint64_t> asked;
  ReplicationStatus status;
  bool describes = true;

 private:
  uint64_t position_ = 41;
};

class WaitTest : public test::DispatcherTest {
 protected:
  WaitTest() { dispatcher_.set_replica_acks(&replicas_); }
  // What the server does when a parked command is due: run it again.
  std::string RunAgain(const std::vector<std::string>& argv, bool expired, Session* s = nullptr) {
    Session& who = s != nullptr ? *s : session_;
    EXPECT_TRUE(who.park.parked);
    who.park.parked = false;
    who.park.resumed = true;
    who.park.expired = expired;
    return Run(argv, &who);
  }
  FakeReplicas replicas_;
};

TEST_F(WaitTest, RepliesAtOnceWhenEnoughReplicasAcknowledged) {
  replicas_.acked = 1;
  EXPECT_EQ(Run({"WAIT", "0", "0"}), ":1\r\n");
  EXPECT_EQ(Run({"WAIT", "1", "0"}), ":1\r\n");
  EXPECT_FALSE(session_.park.parked);
  EXPECT_EQ(replicas_.asked, (std::vector<uint64_t>{42, 43}))
      << "each WAIT waits for the log as it is when it runs";
}

TEST_F(WaitTest, ParksUntilTheReplicasCatchUpOrTheTimeoutPasses) {
  const uint64_t processed = stats_.commands_processed.load();
  const int64_t before = NowMillis();
  EXPECT_EQ(Run({"WAIT", "2", "100"}), "") << "no reply yet";
  ASSERT_TRUE(session_.park.parked);
  EXPECT_GE(session_.park.deadline_ms, before + 100);
  EXPECT_LE(session_.park.ask_again_ms, NowMillis() + Session::Park::kRecountMs);
  replicas_.acked = 1;
  EXPECT_EQ(RunAgain({"WAIT", "2", "100"}, false), "");
  replicas_.acked = 2;
  EXPECT_EQ(RunAgain({"WAIT", "2", "100"}, false), ":2\r\n");
  EXPECT_FALSE(session_.park.parked);
  EXPECT_EQ(replicas_.asked, (std::vector<uint64_t>{42, 42, 42}))
      << "the position is the one of the first run";
  EXPECT_EQ(stats_.commands_processed.load(), processed + 1) << "one command, run three times";
  // The timeout: it replies how many did.
  replicas_.acked = 0;
  EXPECT_EQ(Run({"WAIT", "1", "50"}), "");
  replicas_.acked = 0;
  EXPECT_EQ(RunAgain({"WAIT", "1", "50"}, true), ":0\r\n");
  EXPECT_EQ(session_.park.deadline_ms, 0) << "a later WAIT starts over";
  // Timeout 0: no deadline.
  EXPECT_EQ(Run({"WAIT", "1", "0"}), "");
  EXPECT_EQ(session_.park.deadline_ms, INT64_MAX);
  Session other{2, "127.0.0.1:5001", "127.0.0.1:6380", -1};
  other.authenticated = true;
  const std::string info = Run({"INFO", "commandstats"}, &other);
  EXPECT_NE(info.find("cmdstat_wait:calls=2,"), std::string::npos)
      << "counted when it replies: " << info;
}

// A park left behind by a command that ended without looking at it (a parked cache read run
// again after the engine became unavailable, say) does not make a later WAIT reply at once.
TEST_F(WaitTest, StartsFreshWhateverParkWasLeftBehind) {
  session_.park.deadline_ms = NowMillis() - 1;
  session_.park.expired = true;
  EXPECT_EQ(Run({"WAIT", "1", "100"}), "");
  EXPECT_TRUE(session_.park.parked);
  EXPECT_EQ(session_.park.replicas_position, 42u);
  EXPECT_GT(session_.park.deadline_ms, NowMillis());
}

TEST_F(WaitTest, DoesNotWaitInsideExecAndChecksItsArgumentsAsRedis) {
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"WAIT", "5", "0"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*1\r\n:0\r\n");
  EXPECT_EQ(Run({"WAIT", "1", "-1"}), "-ERR timeout is negative\r\n");
  EXPECT_EQ(Run({"WAIT", "1", "x"}), "-ERR timeout is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"WAIT", "x", "-1"}), "-ERR value is not an integer or out of range\r\n")
      << "numreplicas first, as Redis";
  EXPECT_EQ(Run({"WAIT", "1", "9223372036854775807"}), "-ERR timeout is out of range\r\n");
  EXPECT_EQ(Run({"WAIT", "1"}), "-ERR wrong number of arguments for 'wait' command\r\n");
  EXPECT_FALSE(session_.park.parked);
  // Without replicas to ask (a host that has none to offer) the count is 0.
  dispatcher_.set_replica_acks(nullptr);
  EXPECT_EQ(Run({"WAIT", "0", "0"}), ":0\r\n");
}

// INFO replication and ROLE, as Redis 7 prints them, from what the host says.
TEST_F(WaitTest, InfoReplicationAndRoleShowTheReplicasOrThePrimary) {
  replicas_.status.offset = 5000;
  replicas_.status.replicas = {{"10.0.0.2", 4096, 0, "online"},
                               {"10.0.0.3", 1024, 7, "online"},
                               {"10.0.0.4", 512, -1, "send_bulk"}};
  std::string info = Run({"INFO", "replication"});
  EXPECT_NE(info.find("role:master\r\nconnected_slaves:3\r\n"
                      "slave0:ip=10.0.0.2,port=6380,state=online,offset=4096,lag=0\r\n"
                      "slave1:ip=10.0.0.3,port=6380,state=online,offset=1024,lag=7\r\n"
                      "slave2:ip=10.0.0.4,port=6380,state=send_bulk,offset=512,lag=0\r\n"
                      "master_failover_state:no-failover\r\nmaster_repl_offset:5000\r\n"),
            std::string::npos)
      << info;
  // ROLE lists the online ones only, as Redis.
  EXPECT_EQ(Run({"ROLE"}),
            "*3\r\n$6\r\nmaster\r\n:5000\r\n*2\r\n"
            "*3\r\n$8\r\n10.0.0.2\r\n$4\r\n6380\r\n$4\r\n4096\r\n"
            "*3\r\n$8\r\n10.0.0.3\r\n$4\r\n6380\r\n$4\r\n1024\r\n");
  EXPECT_EQ(Run({"ROLE", "x"}), "-ERR wrong number of arguments for 'role' command\r\n");
  // A standby: its primary, and how far it got.
  dispatcher_.set_role(ServerRole::kStandby);
  replicas_.status = ReplicationStatus{};
  replicas_.status.standby = true;
  replicas_.status.offset = 3000;
  replicas_.status.received = 3500;
  replicas_.status.primary_host = "10.0.0.1";
  replicas_.status.link_state = "connected";
  replicas_.status.last_io_s = 1;
  info = Run({"INFO", "replication"});
  EXPECT_NE(info.find("role:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6380\r\n"
                      "master_link_status:up\r\nmaster_last_io_seconds_ago:1\r\n"
                      "master_sync_in_progress:0\r\nslave_read_repl_offset:3500\r\n"
                      "slave_repl_offset:3000\r\n"),
            std::string::npos)
      << info;
  EXPECT_NE(info.find("connected_slaves:0\r\n"), std::string::npos) << info;
  EXPECT_EQ(Run({"ROLE"}),
            "*5\r\n$5\r\nslave\r\n$8\r\n10.0.0.1\r\n:6380\r\n$9\r\nconnected\r\n:3000\r\n");
  EXPECT_EQ(info.find("master_link_down_since_seconds"), std::string::npos) << "it is up";
  replicas_.status.link_state = "connecting";
  replicas_.status.link_down_s = 12;
  EXPECT_EQ(Run({"ROLE"}),
            "*5\r\n$5\r\nslave\r\n$8\r\n10.0.0.1\r\n:6380\r\n$10\r\nconnecting\r\n:-1\r\n");
  info = Run({"INFO", "replication"});
  EXPECT_NE(info.find("master_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\n"),
            std::string::npos)
      << info;
  EXPECT_NE(info.find("slave_repl_offset:3000\r\nmaster_link_down_since_seconds:12\r\n"
                      "slave_priority:100\r\n"),
            std::string::npos)
      << info;
  // The role comes from the host's one view, not from what the listener last heard.
  dispatcher_.set_role(ServerRole::kPrimary);
  EXPECT_NE(Run({"INFO", "replication"}).find("role:slave\r\n"), std::string::npos);
  // A host that cannot say: no replicas, no position.
  dispatcher_.set_role(ServerRole::kPrimary);
  replicas_.describes = false;
  EXPECT_EQ(Run({"ROLE"}), "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
}

// CLIENT UNBLOCK: a WAIT woken as by its timeout replies the count, with ERROR it fails with
// Redis's error; a client not blocked, or held by a pause, is not unblocked.
TEST_F(WaitTest, ClientUnblockWakesAWaitAsItsTimeoutOrWithAnError) {
  Session waiter{7, "127.0.0.1:5007", "127.0.0.1:6380", -1};
  waiter.authenticated = true;
  clients_.Add(&waiter);
  clients_.Add(&session_);
  EXPECT_EQ(Run({"WAIT", "1", "0"}, &waiter), "");
  ASSERT_TRUE(waiter.park.parked);
  EXPECT_NE(Run({"CLIENT", "LIST", "ID", "7"}).find(" flags=b "), std::string::npos);
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7"}), ":1\r\n");
  EXPECT_EQ(waiter.park.unblocked, 1) << "due at the loop's next pass";
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7", "ERROR"}), ":0\r\n") << "unblocked already";
  EXPECT_EQ(RunAgain({"WAIT", "1", "0"}, false, &waiter), ":0\r\n") << "as by its timeout";
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7"}), ":0\r\n") << "no longer blocked";
  EXPECT_NE(Run({"CLIENT", "LIST", "ID", "7"}).find(" flags=N "), std::string::npos);

  EXPECT_EQ(Run({"WAIT", "1", "0"}, &waiter), "");
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7", "ERROR"}), ":1\r\n");
  EXPECT_EQ(RunAgain({"WAIT", "1", "0"}, false, &waiter),
            "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
  EXPECT_FALSE(waiter.park.parked);
  EXPECT_EQ(Run({"PING"}, &waiter), "+PONG\r\n") << "the next command runs as usual";
  const std::string stats = Run({"INFO", "commandstats"});
  const size_t line = stats.find("cmdstat_wait:");
  ASSERT_NE(line, std::string::npos) << stats;
  const std::string wait_line = stats.substr(line, stats.find("\r\n", line) - line);
  EXPECT_EQ(wait_line.find("cmdstat_wait:calls=2,"), 0u) << wait_line;
  EXPECT_NE(wait_line.find(",failed_calls=1"), std::string::npos) << wait_line;

  // Unblocked while a pause started: it replies, it is not held.
  EXPECT_EQ(Run({"WAIT", "1", "0"}, &waiter), "");
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7"}), ":1\r\n");
  stats_.client_pause.Pause(NowMillis() + 60'000, ClientPause::Mode::kAll);
  EXPECT_EQ(RunAgain({"WAIT", "1", "0"}, false, &waiter), ":0\r\n");
  stats_.client_pause.Unpause();

  // Held by a pause: not a blocking command.
  stats_.client_pause.Pause(NowMillis() + 60'000, ClientPause::Mode::kAll);
  EXPECT_EQ(Run({"PING"}, &waiter), "");
  stats_.client_pause.Unpause();
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7"}), ":0\r\n");
  EXPECT_NE(Run({"CLIENT", "LIST", "ID", "7"}).find(" flags=b "), std::string::npos);
  EXPECT_EQ(RunAgain({"PING"}, false, &waiter), "+PONG\r\n");

  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "999"}), ":0\r\n") << "no such client";
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7", "LATER"}),
            "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n");
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "x"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", "7", "ERROR", "x"}),
            "-ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT "
            "HELP.\r\n");
  clients_.Remove(&waiter);
  clients_.Remove(&session_);
}

}  // namespace
}  // namespace eloqkv::resp
