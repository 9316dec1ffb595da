// INFO commandstats, errorstats and total_error_replies, as Redis 7 counts them.
#include "resp/command_stats.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "run_command.h"

namespace eloqkv::resp {
namespace {

using CommandStatsTest = test::DispatcherTest;

// The value of `name:` in an INFO reply ("" when absent).
std::string Line(const std::string& info, const std::string& name) {
  const size_t at = info.find("\r\n" + name + ":");
  if (at == std::string::npos) return "";
  const size_t start = at + name.size() + 3;
  return info.substr(start, info.find("\r\n", start) - start);
}

// calls=..,usec=.. without the usec figures, which vary.
std::string Counts(const std::string& cmdstat) {
  if (cmdstat.empty()) return "";
  const size_t calls_end = cmdstat.find(',');
  return cmdstat.substr(0, calls_end) + cmdstat.substr(cmdstat.find(",rejected_calls"));
}

TEST_F(CommandStatsTest, CallsRejectionsAndFailuresAreCountedPerCommandAndSubcommand) {
  EXPECT_EQ(Run({"SET", "s", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"get", "s"}), "$1\r\nv\r\n");
  EXPECT_EQ(Run({"GET", "missing"}), "$-1\r\n");
  EXPECT_EQ(Run({"GET"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run({"HGET", "s", "f"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(Run({"NOSUCH", "x"}).substr(0, 22), "-ERR unknown command '");
  EXPECT_EQ(Run({"CLIENT", "NOSUCH"}).substr(0, 26), "-ERR unknown subcommand 'N");
  EXPECT_EQ(Run({"CLIENT", "GETNAME"}), "$-1\r\n");
  EXPECT_EQ(Run({"CLIENT", "GETNAME", "x"}),
            "-ERR wrong number of arguments for 'client|getname' command\r\n");
  // Inside EXEC each command counts, and so does EXEC; queueing counts nothing.
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"INCR", "s"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"GET", "s"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*2\r\n-ERR value is not an integer or out of range\r\n$1\r\nv\r\n");

  const std::string all = Run({"INFO", "commandstats"});
  EXPECT_EQ(Counts(Line(all, "cmdstat_get")), "calls=3,rejected_calls=1,failed_calls=0") << all;
  EXPECT_EQ(Counts(Line(all, "cmdstat_hget")), "calls=1,rejected_calls=0,failed_calls=1");
  EXPECT_EQ(Counts(Line(all, "cmdstat_incr")), "calls=1,rejected_calls=0,failed_calls=1");
  EXPECT_EQ(Counts(Line(all, "cmdstat_exec")), "calls=1,rejected_calls=0,failed_calls=0");
  EXPECT_EQ(Counts(Line(all, "cmdstat_multi")), "calls=1,rejected_calls=0,failed_calls=0");
  EXPECT_EQ(Counts(Line(all, "cmdstat_client|getname")), "calls=1,rejected_calls=1,failed_calls=0");
  EXPECT_EQ(Line(all, "cmdstat_client"), "") << "a container counts in its subcommands";
  EXPECT_EQ(Line(all, "cmdstat_nosuch"), "");
  EXPECT_EQ(Line(all, "cmdstat_hset"), "") << "only what was called is listed";
  const std::string get = Line(all, "cmdstat_get");
  EXPECT_NE(get.find(",usec="), std::string::npos) << get;
  EXPECT_NE(get.find(",usec_per_call="), std::string::npos) << get;
  // Names in order, as Redis's INFO lists them in no particular one but tools sort anyway.
  EXPECT_LT(all.find("cmdstat_client|getname"), all.find("cmdstat_exec"));

  const std::string errors = Run({"INFO", "errorstats"});
  EXPECT_EQ(Line(errors, "errorstat_ERR"), "count=5") << errors;
  EXPECT_EQ(Line(errors, "errorstat_WRONGTYPE"), "count=1");
  const std::string stats = Run({"INFO", "stats"});
  EXPECT_EQ(Line(stats, "total_error_replies"), "6");

  // The default set has errorstats, not commandstats; "all" has both.
  const std::string plain = Run({"INFO"});
  EXPECT_NE(plain.find("# Errorstats"), std::string::npos);
  EXPECT_EQ(plain.find("# Commandstats"), std::string::npos);
  EXPECT_EQ(Run({"INFO", "default"}).find("# Commandstats"), std::string::npos);
  EXPECT_NE(Run({"INFO", "all"}).find("# Commandstats"), std::string::npos);

  // CONFIG RESETSTAT starts them over.
  EXPECT_EQ(Run({"CONFIG", "RESETSTAT"}), "+OK\r\n");
  const std::string reset = Run({"INFO", "commandstats", "errorstats", "stats"});
  EXPECT_EQ(Line(reset, "cmdstat_get"), "");
  EXPECT_EQ(Line(reset, "errorstat_ERR"), "");
  EXPECT_EQ(Line(reset, "total_error_replies"), "0");
  EXPECT_EQ(Counts(Line(reset, "cmdstat_config|resetstat")),
            "calls=1,rejected_calls=0,failed_calls=0")
      << "RESETSTAT's own call counts after the reset, as in Redis";
}

// A refused EXEC is EXEC's rejection; an EXEC aborted by a queued command's refusal is its
// failure, and the refused command's rejection.
TEST_F(CommandStatsTest, AnAbortedTransactionCountsAsRedisCountsIt) {
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"GET"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
  EXPECT_EQ(Run({"EXEC", "x"}).substr(0, 11), "-EXECABORT ");
  const std::string info = Run({"INFO", "commandstats", "errorstats"});
  EXPECT_EQ(Counts(Line(info, "cmdstat_get")), "calls=0,rejected_calls=1,failed_calls=0") << info;
  EXPECT_EQ(Counts(Line(info, "cmdstat_exec")), "calls=1,rejected_calls=1,failed_calls=1");
  EXPECT_EQ(Line(info, "errorstat_EXECABORT"), "count=2");
  EXPECT_EQ(Line(info, "errorstat_ERR"), "count=1");
}

// Each worker counts in its own row; INFO from any worker adds them all up.
TEST_F(CommandStatsTest, EveryWorkersCallsAreSummed) {
  ListenerConfig second_worker;
  second_worker.worker_index = 1;
  Dispatcher other(&db_.engine(), second_worker, &stats_, &clients_);
  Session other_session{2, "127.0.0.1:5001", "127.0.0.1:6380", -1};
  other_session.authenticated = true;
  EXPECT_EQ(Run({"PING"}), "+PONG\r\n");
  EXPECT_EQ(Run({"PING"}, &other_session, &other), "+PONG\r\n");
  EXPECT_EQ(Run({"PING"}, &other_session, &other), "+PONG\r\n");
  EXPECT_EQ(stats_.commands.rows[0][other.Find("ping")->stats_index].calls.load(), 1u);
  EXPECT_EQ(stats_.commands.rows[1][other.Find("ping")->stats_index].calls.load(), 2u);
  EXPECT_EQ(Counts(Line(Run({"INFO", "commandstats"}), "cmdstat_ping")),
            "calls=3,rejected_calls=0,failed_calls=0");
}

// A round whose gathered INCR conflicts with another worker is run again alone, and its reply
// grows (":10" became ":100"): the next command's reply is found where it really starts.
TEST_F(CommandStatsTest, AFailureAfterARoundWasRewrittenIsCounted) {
  EXPECT_EQ(Run({"SET", "n", "9"}), "+OK\r\n");
  std::string out;
  ReplyWriter reply(&out, 2);
  const std::vector<std::string_view> incr{"INCR", "n"}, hget{"HGET", "n", "f"};
  dispatcher_.Execute(session_, incr, reply);
  EXPECT_EQ(out, ":10\r\n") << "gathered";
  test::SecondWorker other(db_);
  EXPECT_EQ(test::RunCommand(*other.engine, other.dispatcher, other.session, {"SET", "n", "99"}),
            "+OK\r\n");
  dispatcher_.Execute(session_, hget, reply);  // flushes the round first
  (void)dispatcher_.TakePendingLsn();
  EXPECT_EQ(out, ":100\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  const std::string info = Run({"INFO", "commandstats", "errorstats"});
  EXPECT_EQ(Counts(Line(info, "cmdstat_hget")), "calls=1,rejected_calls=0,failed_calls=1") << info;
  EXPECT_EQ(Counts(Line(info, "cmdstat_incr")), "calls=1,rejected_calls=0,failed_calls=0");
  EXPECT_EQ(Line(info, "errorstat_WRONGTYPE"), "count=1");
}

// The counts follow the reply the client gets: a gathered INCR that failed, run again alone
// after another worker's write, succeeds, and its error is never sent.
TEST_F(CommandStatsTest, AGatheredFailureThatSucceedsAloneIsNotCounted) {
  EXPECT_EQ(Run({"SET", "n", "abc"}), "+OK\r\n");
  std::string out;
  ReplyWriter reply(&out, 2);
  const std::vector<std::string_view> incr{"INCR", "n"};
  dispatcher_.Execute(session_, incr, reply);
  EXPECT_EQ(out, "-ERR value is not an integer or out of range\r\n") << "gathered";
  test::SecondWorker other(db_);
  EXPECT_EQ(test::RunCommand(*other.engine, other.dispatcher, other.session, {"SET", "n", "5"}),
            "+OK\r\n");
  dispatcher_.FlushWrites();
  (void)dispatcher_.TakePendingLsn();
  EXPECT_EQ(out, ":6\r\n");
  const std::string info = Run({"INFO", "commandstats", "errorstats", "stats"});
  EXPECT_EQ(Counts(Line(info, "cmdstat_incr")), "calls=1,rejected_calls=0,failed_calls=0") << info;
  EXPECT_EQ(Line(info, "errorstat_ERR"), "");
  EXPECT_EQ(Line(info, "total_error_replies"), "0");
}

TEST(CommandStatsCodes, CodesAreCountedByTheirFirstWordUpToTheTableSize) {
  auto shared = std::make_unique<CommandStatsShared>();
  CommandStats worker(shared.get(), 0), other(shared.get(), 1);
  worker.CountError("-ERR syntax error\r\n");
  other.CountError("-ERR wrong\r\n");
  worker.CountError("-NOPERM this user has no permissions\r\n");
  worker.CountError("-LOADING\r\n");  // no space in its first 32 bytes: ERR, as in Redis
  std::string codes;
  CommandStats::AppendErrorStats(*shared, &codes);
  EXPECT_EQ(codes, "errorstat_ERR:count=3\r\nerrorstat_NOPERM:count=1\r\n");
  for (int i = 0; i < CommandStatsShared::kMaxErrorCodes + 10; ++i)
    worker.CountError("-CODE" + std::to_string(i) + " x\r\n");
  EXPECT_EQ(CommandStats::ErrorReplies(*shared), CommandStatsShared::kMaxErrorCodes + 14u)
      << "past the table, errors count in the total only";
  codes.clear();
  CommandStats::AppendErrorStats(*shared, &codes);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), '\n'), CommandStatsShared::kMaxErrorCodes);
  EXPECT_NE(codes.find("errorstat_CODE125:count=1\r\n"), std::string::npos);
  EXPECT_EQ(codes.find("errorstat_CODE126:"), std::string::npos);
  CommandStats::Reset(shared.get());
  codes.clear();
  CommandStats::AppendErrorStats(*shared, &codes);
  EXPECT_EQ(codes, "");
  worker.CountError("-CODE70 x\r\n");
  EXPECT_EQ(CommandStats::ErrorReplies(*shared), 1u);
  // A worker index outside the rows counts no command, and does not crash.
  CommandStats stray(shared.get(), CommandStatsShared::kMaxWorkers);
  stray.Called(1, 10, true);
  stray.Rejected(1);
}

// Every command and subcommand has a row.
TEST_F(CommandStatsTest, TheRowsHoldEveryCommand) {
  EXPECT_LE(dispatcher_.stats_names().size(),
            static_cast<size_t>(CommandStatsShared::kMaxCommands));
  EXPECT_EQ(dispatcher_.stats_names()[dispatcher_.Find("client")->stats_index], "client");
  EXPECT_EQ(dispatcher_.stats_names()[dispatcher_.Find("client")->stats_index + 1],
            std::string("client|") + dispatcher_.Find("client")->subcommands[0].name);
}

}  // namespace
}  // namespace eloqkv::resp
