// SLOWLOG: what an entry keeps of a command, the shared ring, and the commands' replies.
#include "resp/slow_log.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "run_command.h"

namespace eloqkv::resp {
namespace {

std::vector<std::string> ShownOf(const std::vector<std::string>& argv) {
  std::vector<std::string_view> args(argv.begin(), argv.end());
  return SlowLog::Shown(args);
}

// As Redis's slowlogCreateEntry: 32 arguments at most, the last then counting the rest; each
// cut to 128 bytes, counting the rest; AUTH's and HELLO AUTH's secrets redacted.
TEST(SlowLogShown, ArgumentsAreBoundedAndSecretsRedactedAsInRedis) {
  EXPECT_EQ(ShownOf({"GET", "k"}), (std::vector<std::string>{"GET", "k"}));
  const std::string long_arg(200, 'x');
  EXPECT_EQ(ShownOf({"SET", "k", long_arg}),
            (std::vector<std::string>{"SET", "k", std::string(128, 'x') + "... (72 more bytes)"}));
  EXPECT_EQ(ShownOf({"SET", "k", std::string(128, 'y')})[2], std::string(128, 'y'));
  std::vector<std::string> many{"MSET"};
  for (int i = 0; i < 40; ++i) many.push_back("a" + std::to_string(i));
  const std::vector<std::string> shown = ShownOf(many);
  ASSERT_EQ(shown.size(), SlowLog::kMaxArgs);
  EXPECT_EQ(shown[30], "a29");
  EXPECT_EQ(shown[31], "... (10 more arguments)");
  std::vector<std::string> exactly(many.begin(), many.begin() + 32);
  EXPECT_EQ(ShownOf(exactly), exactly) << "32 arguments are kept whole";
  EXPECT_EQ(ShownOf({"auth", "pw"}), (std::vector<std::string>{"auth", "(redacted)"}));
  EXPECT_EQ(ShownOf({"AUTH", "user", "pw"}),
            (std::vector<std::string>{"AUTH", "(redacted)", "(redacted)"}));
  EXPECT_EQ(ShownOf({"HELLO", "3", "SETNAME", "auth", "AUTH", "u", "p"}),
            (std::vector<std::string>{"HELLO", "3", "SETNAME", "auth", "AUTH", "(redacted)",
                                      "(redacted)"}))
      << "a client named 'auth' is a name";
  EXPECT_EQ(ShownOf({"config", "set", "requirepass", "pw", "timeout", "5"}),
            (std::vector<std::string>{"config", "set", "requirepass", "(redacted)", "timeout",
                                      "(redacted)"}))
      << "refused, but a value may be a password";
  EXPECT_EQ(ShownOf({"HELLO", "3", "AUTH", "u"}),
            (std::vector<std::string>{"HELLO", "3", "AUTH", "u"}))
      << "HELLO refuses an AUTH without both values; there is nothing to hide";
}

class SlowLogRing : public ::testing::Test {
 protected:
  void Make(size_t capacity) {
    region_ = std::make_unique<char[]>(SlowLog::RequiredBytes(capacity) + 64);
    void* aligned = region_.get() + (64 - reinterpret_cast<uintptr_t>(region_.get()) % 64);
    SlowLog::Format(aligned, capacity);
    log_.Attach(aligned);
  }
  void Add(const std::string& arg, uint64_t us) {
    const std::string_view args[] = {"CMD", arg};
    log_.Add(args, us, "127.0.0.1:1234", "named", 1700000000);
  }
  std::unique_ptr<char[]> region_;
  SlowLog log_;
};

TEST_F(SlowLogRing, KeepsTheNewestEntriesNewestFirst) {
  Make(3);
  EXPECT_EQ(log_.Length(), 0u);
  for (int i = 0; i < 5; ++i) Add(std::to_string(i), 100 + i);
  EXPECT_EQ(log_.Length(), 3u);
  const auto all = log_.Newest(SIZE_MAX);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, 4u);
  EXPECT_EQ(all[0].args, (std::vector<std::string>{"CMD", "4"}));
  EXPECT_EQ(all[0].duration_us, 104u);
  EXPECT_EQ(all[0].unix_time_s, 1700000000);
  EXPECT_EQ(all[0].peer, "127.0.0.1:1234");
  EXPECT_EQ(all[0].name, "named");
  EXPECT_EQ(all[2].id, 2u);
  EXPECT_EQ(log_.Newest(2).size(), 2u);
  EXPECT_EQ(log_.Newest(0).size(), 0u);
  log_.Reset();
  EXPECT_EQ(log_.Length(), 0u);
  Add("after", 1);
  ASSERT_EQ(log_.Newest(10).size(), 1u);
  EXPECT_EQ(log_.Newest(10)[0].id, 5u) << "ids go on after a reset, as in Redis";
}

TEST_F(SlowLogRing, AZeroCapacityLogKeepsNothing) {
  Make(0);
  Add("x", 1);
  EXPECT_EQ(log_.Length(), 0u);
  SlowLog detached;
  const std::string_view args[] = {"GET"};
  detached.Add(args, 1, "", "", 0);
  EXPECT_TRUE(detached.Newest(10).empty());
}

// Writers on many threads (workers are processes; the ring is the same) and a reader: every
// entry read is whole, never parts of two.
TEST_F(SlowLogRing, AReaderNeverSeesHalfAnEntry) {
  Make(2);  // small: writers come back to the slot a reader is copying
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string v(1 + (i * 7 + t) % 120, static_cast<char>('a' + t));
        const std::string_view args[] = {"SET", v, v};
        log_.Add(args, v.size(), v, v, t);
      }
    });
  }
  size_t seen = 0;
  std::string torn;  // the first entry that mixed two
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (torn.empty() && std::chrono::steady_clock::now() < until) {
    for (const SlowLog::Entry& e : log_.Newest(SIZE_MAX)) {
      const bool whole =
          e.args.size() == 3 && e.args[1] == e.args[2] && e.peer == e.args[1].substr(0, 63) &&
          e.duration_us == e.args[1].size() &&
          e.args[1] == std::string(e.args[1].size(), static_cast<char>('a' + e.unix_time_s));
      if (!whole) {
        torn = "entry " + std::to_string(e.id) + ": " + (e.args.size() > 1 ? e.args[1] : "");
        break;
      }
      ++seen;
    }
  }
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_EQ(torn, "");
  EXPECT_GT(seen, 0u);
}

class SlowLogCommands : public test::DispatcherTest {
 protected:
  SlowLogCommands() {
    region_ = std::make_unique<char[]>(SlowLog::RequiredBytes(4) + 64);
    void* aligned = region_.get() + (64 - reinterpret_cast<uintptr_t>(region_.get()) % 64);
    SlowLog::Format(aligned, 4);
    log_.Attach(aligned);
    dispatcher_.set_slow_log(&log_);
    SlowerThan(0);
  }
  void SlowerThan(int64_t us) {
    ListenerConfig c = dispatcher_.config();
    c.slowlog_log_slower_than_us = us;
    dispatcher_.set_config(c);
  }
  std::unique_ptr<char[]> region_;
  SlowLog log_;
};

TEST_F(SlowLogCommands, GetLenResetAndTheThreshold) {
  session_.name = "worker-7";
  EXPECT_EQ(Run({"SET", "k", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"GET", "k"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*1\r\n$1\r\nv\r\n");
  // Newest first: the GET that EXEC ran (EXEC itself is not logged), MULTI, SET.
  const std::string got = Run({"SLOWLOG", "GET", "2"});
  ASSERT_EQ(got.substr(0, 9), "*2\r\n*6\r\n:") << got;
  EXPECT_NE(got.find("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n$14\r\n127.0.0.1:5000\r\n$8\r\nworker-7\r\n"),
            std::string::npos)
      << got;
  EXPECT_NE(got.find("*1\r\n$5\r\nMULTI\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("EXEC"), std::string::npos) << got;
  EXPECT_EQ(Run({"SLOWLOG", "LEN"}), ":4\r\n") << "SET, MULTI, GET and the SLOWLOG GET";
  EXPECT_EQ(Run({"SLOWLOG", "GET", "x"}), "-ERR count should be greater than or equal to -1\r\n");
  EXPECT_EQ(Run({"SLOWLOG", "GET", "-2"}), "-ERR count should be greater than or equal to -1\r\n");
  EXPECT_EQ(Run({"SLOWLOG", "GET", "0"}), "*0\r\n");
  EXPECT_EQ(
      Run({"SLOWLOG", "get", "1", "x"}),
      "-ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP.\r\n");
  EXPECT_EQ(Run({"SLOWLOG", "GET", "-1"}).substr(0, 4), "*4\r\n") << "all that is kept";
  EXPECT_EQ(Run({"SLOWLOG", "LEN", "x"}),
            "-ERR wrong number of arguments for 'slowlog|len' command\r\n");
  EXPECT_EQ(Run({"SLOWLOG", "NOPE"}).substr(0, 26), "-ERR unknown subcommand 'N");
  EXPECT_EQ(Run({"SLOWLOG", "HELP"}).substr(0, 5), "*12\r\n");
  // AUTH's password never reaches the log.
  EXPECT_EQ(Run({"AUTH", "hunter2"}).substr(0, 5), "-ERR ");
  EXPECT_EQ(Run({"SLOWLOG", "GET", "1"}).find("hunter2"), std::string::npos);
  EXPECT_NE(Run({"SLOWLOG", "GET", "2"}).find("(redacted)"), std::string::npos);
  // Above the threshold only; negative: nothing.
  EXPECT_EQ(Run({"SLOWLOG", "RESET"}), "+OK\r\n");
  EXPECT_EQ(Run({"SLOWLOG", "LEN"}), ":1\r\n") << "the RESET itself, logged after it ran";
  SlowerThan(60'000'000);
  EXPECT_EQ(Run({"GET", "k"}), "$1\r\nv\r\n");
  SlowerThan(-1);
  EXPECT_EQ(Run({"GET", "k"}), "$1\r\nv\r\n");
  EXPECT_EQ(Run({"SLOWLOG", "LEN"}), ":2\r\n") << "the RESET and the LEN after it, no GET";
  const std::string config = Run({"CONFIG", "GET", "slowlog-*"});
  EXPECT_NE(config.find("$23\r\nslowlog-log-slower-than\r\n$2\r\n-1\r\n"), std::string::npos)
      << config;
  EXPECT_NE(config.find("$15\r\nslowlog-max-len\r\n$1\r\n4\r\n"), std::string::npos) << config;
}

}  // namespace
}  // namespace eloqkv::resp
