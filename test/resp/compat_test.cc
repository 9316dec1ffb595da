// Redis 7 compatibility details found by the redis-py client test (test/clients/): exact
// replies where the listener used to differ from Redis.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "resp/commands.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

using CompatTest = test::DispatcherTest;

// INFO memory prints sizes as Redis's bytesToHuman does: "1023B", "1.50K", "57.03M".
TEST_F(CompatTest, InfoMemoryPrintsHumanSizesAsRedis) {
  const std::string info = Run({"INFO", "memory"});
  auto field = [&](const std::string& name) {
    const size_t at = info.find("\r\n" + name + ":");
    if (at == std::string::npos) return std::string();
    const size_t start = at + name.size() + 3;
    return info.substr(start, info.find("\r\n", start) - start);
  };
  for (const char* name : {"used_memory", "maxmemory", "total_system_memory"}) {
    const std::string bytes = field(name), human = field(std::string(name) + "_human");
    ASSERT_FALSE(bytes.empty()) << name << " in " << info;
    const double n = std::stod(bytes);
    ASSERT_GT(n, 1024) << name;
    const size_t unit = std::string("KMGTP").find(human.back());
    ASSERT_NE(unit, std::string::npos) << human;
    EXPECT_EQ(human.size() - human.find('.'), 4u) << "two decimals: " << human;
    const double scaled = n / std::pow(1024.0, static_cast<double>(unit + 1));
    EXPECT_GE(scaled, 1.0) << human;
    EXPECT_LT(scaled, 1024.0) << human;
    EXPECT_NEAR(std::stod(human), scaled, 0.006) << name << "=" << bytes << " " << human;
  }
}

// Redis replies (ms + 500) / 1000 for EXPIRETIME, as for TTL; it used to truncate.
TEST_F(CompatTest, ExpireTimeRoundsToTheNearestSecond) {
  const int64_t at_ms = (NowMillis() / 1000 + 3600) * 1000 + 700;
  EXPECT_EQ(Run({"SET", "k", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"PEXPIREAT", "k", std::to_string(at_ms)}), ":1\r\n");
  EXPECT_EQ(Run({"PEXPIRETIME", "k"}), ":" + std::to_string(at_ms) + "\r\n");
  EXPECT_EQ(Run({"EXPIRETIME", "k"}), ":" + std::to_string(at_ms / 1000 + 1) + "\r\n");
  EXPECT_EQ(Run({"PEXPIREAT", "k", std::to_string(at_ms - 400)}), ":1\r\n");  // .300: down
  EXPECT_EQ(Run({"EXPIRETIME", "k"}), ":" + std::to_string(at_ms / 1000) + "\r\n");
}

// Redis parses EXPIRE's options before its time: a bad option wins over a bad number.
TEST_F(CompatTest, ExpireChecksOptionsBeforeTheTime) {
  EXPECT_EQ(Run({"SET", "k", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"EXPIRE", "k", "ten", "FOO"}), "-ERR Unsupported option FOO\r\n");
  EXPECT_EQ(Run({"PEXPIRE", "k", "ten", "NX", "XX"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
  EXPECT_EQ(Run({"EXPIREAT", "k", "ten", "GT", "LT"}),
            "-ERR GT and LT options at the same time are not compatible\r\n");
  EXPECT_EQ(Run({"EXPIRE", "k", "ten", "NX"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"TTL", "k"}), ":-1\r\n");
}

// As Redis's string2ld: an overflow or an underflow to zero is not a float; a denormal is.
TEST_F(CompatTest, FloatArgumentsFollowRedisRangeRules) {
  EXPECT_EQ(Run({"SET", "f", "1"}), "+OK\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", "1e5000"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", "-1e5000"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", "1e-5000"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", "nan"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", "inf"}), "-ERR increment would produce NaN or Infinity\r\n");
  EXPECT_EQ(Run({"GET", "f"}), "$1\r\n1\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "tiny", "1e-4940"}), "$1\r\n0\r\n");  // denormal: accepted
  EXPECT_EQ(Run({"SET", "big", "1e5000"}), "+OK\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "big", "1"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"HSET", "h", "f", "1e5000"}), ":1\r\n");
  EXPECT_EQ(Run({"HINCRBYFLOAT", "h", "f", "1"}), "-ERR hash value is not a float\r\n");
  EXPECT_EQ(Run({"HINCRBYFLOAT", "h", "g", "1e5000"}), "-ERR value is not a valid float\r\n");
}

// Redis's MAX_LONG_DOUBLE_CHARS is 5120: a longer float is refused, a shorter one read.
TEST_F(CompatTest, FloatTextUpTo5119CharactersIsANumber) {
  const std::string longest = "1." + std::string(5117, '0');  // 5119 characters
  EXPECT_EQ(Run({"SET", "f", "1"}), "+OK\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", longest}), "$1\r\n2\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", longest + "0"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"HINCRBYFLOAT", "h", "g", "1." + std::string(4998, '0')}), "$1\r\n1\r\n");
  EXPECT_EQ(Run({"SET", "f", longest + "0"}), "+OK\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "f", "1"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"GET", "f"}).size(), 5120 + 9u);  // unchanged
}

// A refused EXEC ends the transaction there, as Redis's rejectCommand does: -EXECABORT with
// the reason, the queued commands dropped and the WATCHes too.
TEST_F(CompatTest, ARefusedExecAbortsTheTransaction) {
  EXPECT_EQ(Run({"WATCH", "w"}), "+OK\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "k", "queued"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC", "x"}),
            "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' "
            "command\r\n");
  EXPECT_EQ(Run({"EXEC"}), "-ERR EXEC without MULTI\r\n");
  EXPECT_EQ(Run({"EXISTS", "k"}), ":0\r\n");
  EXPECT_TRUE(session_.watched.empty());
  // Outside MULTI too, and other commands' refusals inside MULTI still only flag it.
  EXPECT_EQ(Run({"EXEC", "x"}),
            "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' "
            "command\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"GET"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Run({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
}

// HSCAN checks its cursor (strtoul's rules), then the key, then its options, as Redis does; a
// small hash comes whole for any cursor, as a listpack does.
TEST_F(CompatTest, HScanChecksCursorThenKeyThenOptions) {
  const std::string empty_scan = "*2\r\n$1\r\n0\r\n*0\r\n";
  EXPECT_EQ(Run({"HSCAN", "missing", "0", "COUNT", "0"}), empty_scan);
  EXPECT_EQ(Run({"HSCAN", "missing", "7", "MATCH"}), empty_scan);
  EXPECT_EQ(Run({"HSCAN", "missing", "x"}), "-ERR invalid cursor\r\n");
  EXPECT_EQ(Run({"HSCAN", "missing", " 0"}), "-ERR invalid cursor\r\n");
  EXPECT_EQ(Run({"HSCAN", "missing", "99999999999999999999"}), "-ERR invalid cursor\r\n");
  EXPECT_EQ(Run({"SET", "s", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"HSCAN", "s", "0", "COUNT", "0"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(Run({"HSET", "h", "f1", "v1", "f2", "v2"}), ":2\r\n");
  const std::string whole =
      "*2\r\n$1\r\n0\r\n*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n";
  for (const char* cursor : {"0", "00", "+0", "", "1", "5", "-1", "18446744073709551615"})
    EXPECT_EQ(Run({"HSCAN", "h", cursor}), whole) << "cursor '" << cursor << "'";
  EXPECT_EQ(Run({"HSCAN", "h", "0", "COUNT", "0"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"HSCAN", "h", "0", "FOO", "bar"}), "-ERR syntax error\r\n");
  // SCAN reads its cursor by the same rules.
  EXPECT_EQ(Run({"SCAN", "+0", "COUNT", "1000"}).substr(0, 12), "*2\r\n$1\r\n0\r\n*");
  EXPECT_EQ(Run({"SCAN", "0x1"}), "-ERR invalid cursor\r\n");
}

// A time already past deletes the key for the commands after it in the same EXEC, as in Redis
// (it used to stay alive to them with its dead TTL, and come back for good after a PERSIST).
TEST_F(CompatTest, APastExpiryInsideExecDeletesTheKeyForTheCommandsAfter) {
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  for (const char* queued :
       {"SET p v PXAT 1", "PERSIST p", "EXISTS p", "SET q 5", "GETEX q PXAT 1", "EXPIRE q 100",
        "INCR q", "SET r 6 PXAT 1", "SET r 7 KEEPTTL", "TTL r", "SET h v EXAT 1", "HSET h f v"}) {
    std::vector<std::string> argv;
    std::string word;
    for (std::istringstream in(queued); in >> word;) argv.push_back(word);
    EXPECT_EQ(Run(argv), "+QUEUED\r\n") << queued;
  }
  EXPECT_EQ(
      Run({"EXEC"}),
      "*12\r\n+OK\r\n:0\r\n:0\r\n+OK\r\n$1\r\n5\r\n:0\r\n:1\r\n+OK\r\n+OK\r\n:-1\r\n+OK\r\n:1\r\n");
  EXPECT_EQ(Run({"EXISTS", "p"}), ":0\r\n");
  EXPECT_EQ(Run({"GET", "q"}), "$1\r\n1\r\n");
  EXPECT_EQ(Run({"TTL", "q"}), ":-1\r\n");
  EXPECT_EQ(Run({"GET", "r"}), "$1\r\n7\r\n");
  EXPECT_EQ(Run({"TYPE", "h"}), "+hash\r\n");
}

// SETRANGE past the size limits is refused before anything is built: an offset whose end
// overflows used to throw in the worker (which the postmaster then restarted).
TEST_F(CompatTest, SetRangeRefusesAnEndBeyondTheLimits) {
  const std::string too_big = "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n";
  EXPECT_EQ(Run({"SETRANGE", "k", "9223372036854775807", "X"}), too_big);
  EXPECT_EQ(Run({"SETRANGE", "k", "536870912", "X"}), too_big);
  EXPECT_EQ(Run({"SET", "k", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"SETRANGE", "k", "9223372036854775800", "XXXXXXXXXXXX"}), too_big);
  EXPECT_EQ(Run({"SETRANGE", "k", "67108863", "X"}),
            "-ERR value is 67108865 bytes; the limit is 67108864\r\n");
  EXPECT_EQ(Run({"GET", "k"}), "$1\r\nv\r\n");
  EXPECT_EQ(Run({"SETRANGE", "k", "3", "X"}), ":4\r\n");
  EXPECT_EQ(Run({"GET", "k"}), std::string("$4\r\nv\0\0X\r\n", 10));
}

// GETEX looks the key up before it reads the time, as Redis 7 does.
TEST_F(CompatTest, GetExChecksTheKeyBeforeTheTime) {
  EXPECT_EQ(Run({"GETEX", "missing", "EX", "0"}), "$-1\r\n");
  EXPECT_EQ(Run({"GETEX", "missing", "PX", "abc"}), "$-1\r\n");
  EXPECT_EQ(Run({"HSET", "h", "f", "v"}), ":1\r\n");
  EXPECT_EQ(Run({"GETEX", "h", "EX", "-1"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(Run({"SET", "s", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"GETEX", "s", "EX", "0"}), "-ERR invalid expire time in 'getex' command\r\n");
  EXPECT_EQ(Run({"GETEX", "s", "EX", "1", "FOO"}), "-ERR syntax error\r\n");
}

// A SCAN cursor can be used again (a client that lost the reply asks again), as in Redis: the
// same keys (under a cursor of its own for the page after).
TEST_F(CompatTest, AScanCursorCanBeUsedAgain) {
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Run({"SET", "s" + std::to_string(i), "v"}), "+OK\r\n");
  // "*2\r\n$<n>\r\n<cursor>\r\n<keys>": the cursor is the third line.
  auto split = [](const std::string& reply) {
    const size_t at = reply.find("\r\n", 4) + 2;
    const size_t end = reply.find("\r\n", at);
    return std::make_pair(reply.substr(at, end - at), reply.substr(end + 2));
  };
  const auto [cursor, first_keys] = split(Run({"SCAN", "0", "COUNT", "2"}));
  ASSERT_NE(cursor, "0");
  const auto [next, keys] = split(Run({"SCAN", cursor, "COUNT", "2"}));
  EXPECT_EQ(keys.substr(0, 4), "*2\r\n");
  EXPECT_EQ(split(Run({"SCAN", cursor, "COUNT", "2"})).second, keys);
  EXPECT_NE(next, "0");
}

// Used cursors are kept apart: a scan paused while another on the same connection runs through
// more pages than the cursor limit still goes on (clients that share one connection interleave
// scans).
TEST_F(CompatTest, APausedScanSurvivesALongOneOnTheSameConnection) {
  for (int i = 0; i < 1100; ++i)
    ASSERT_EQ(Run({"SET", "k" + std::to_string(10000 + i), "v"}), "+OK\r\n");
  auto cursor_of = [](const std::string& reply) {
    const size_t at = reply.find("\r\n", 4) + 2;
    return reply.substr(at, reply.find("\r\n", at) - at);
  };
  const std::string paused = cursor_of(Run({"SCAN", "0", "COUNT", "1"}));
  std::string cursor = "0";
  int pages = 0;
  do {
    cursor = cursor_of(Run({"SCAN", cursor, "COUNT", "1"}));
    ++pages;
  } while (cursor != "0" && pages < 2000);
  EXPECT_GT(pages, 1024);
  EXPECT_EQ(Run({"SCAN", paused, "COUNT", "1"}).substr(0, 4), "*2\r\n");
}

// Containers' subcommands are checked before they run, with Redis 7's errors: inside MULTI a
// wrong one is refused at once and makes EXEC abort (it used to be queued and fail in EXEC).
TEST_F(CompatTest, SubcommandsAreCheckedBeforeTheyRun) {
  EXPECT_EQ(Run({"CLIENT", "FOO"}), "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n");
  EXPECT_EQ(Run({"CONFIG", "foo"}), "-ERR unknown subcommand 'foo'. Try CONFIG HELP.\r\n");
  EXPECT_EQ(Run({"COMMAND", "FOO"}), "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n");
  EXPECT_EQ(Run({"CLIENT", "SETNAME"}),
            "-ERR wrong number of arguments for 'client|setname' command\r\n");
  EXPECT_EQ(Run({"CONFIG", "GET"}), "-ERR wrong number of arguments for 'config|get' command\r\n");
  EXPECT_EQ(Run({"COMMAND", "COUNT", "x"}),
            "-ERR wrong number of arguments for 'command|count' command\r\n");
  EXPECT_EQ(Run({"CLIENT"}), "-ERR wrong number of arguments for 'client' command\r\n");
  EXPECT_EQ(Run({"CLIENT", "HELP"}).substr(0, 5), "*19\r\n");
  EXPECT_EQ(Run({"CLIENT", "REPLY"}),
            "-ERR wrong number of arguments for 'client|reply' command\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"CLIENT", "FOO"}), "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n");
  EXPECT_EQ(Run({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
  // CLIENT LIST names the last command with its subcommand, NULL before any.
  EXPECT_EQ(Run({"CLIENT", "SETNAME", "me"}), "+OK\r\n");
  const std::string info = Run({"CLIENT", "INFO"});
  EXPECT_NE(info.find(" cmd=client|info "), std::string::npos) << info;
}

TEST_F(CompatTest, ClientOptionsAreCheckedAsRedisDoes) {
  EXPECT_EQ(Run({"CLIENT", "NO-EVICT", "maybe"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"CLIENT", "NO-EVICT", "on"}), "+OK\r\n");
  EXPECT_EQ(Run({"CLIENT", "KILL", "TYPE", "foo"}), "-ERR Unknown client type 'foo'\r\n");
  EXPECT_EQ(Run({"CLIENT", "KILL", "TYPE", "pubsub"}), ":0\r\n");
  EXPECT_EQ(Run({"CLIENT", "KILL", "USER", "nosuch"}), "-ERR No such user 'nosuch'\r\n");
  EXPECT_EQ(Run({"CLIENT", "LIST", "FOO"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"CLIENT", "LIST", "TYPE", "foo"}), "-ERR Unknown client type 'foo'\r\n");
  EXPECT_EQ(Run({"CLIENT", "LIST", "ID", "abc"}), "-ERR Invalid client ID\r\n");
  EXPECT_EQ(Run({"CLIENT", "LIST", "TYPE", "pubsub"}), "$0\r\n\r\n");
  EXPECT_EQ(Run({"CLIENT", "LIST", "ID", "999", "1000"}), "$0\r\n\r\n");
}

// CONFIG GET answers an exact name under the name as asked, and the names clients ask for.
TEST_F(CompatTest, ConfigGetEchoesExactNamesAndKnowsWhatClientsAsk) {
  EXPECT_EQ(Run({"CONFIG", "GET", "MAXMEMORY-POLICY"}),
            "*2\r\n$16\r\nMAXMEMORY-POLICY\r\n$10\r\nnoeviction\r\n");
  EXPECT_EQ(Run({"CONFIG", "GET", "maxmemory", "cluster-enabled", "slave-read-only"}),
            "*6\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n$15\r\ncluster-enabled\r\n$2\r\nno\r\n"
            "$15\r\nslave-read-only\r\n$3\r\nyes\r\n");
  EXPECT_EQ(Run({"CONFIG", "GET", "maxmemory-pol*", "maxmemory-policy"}),
            "*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n");
  EXPECT_EQ(Run({"CONFIG", "GET", "nosuch"}), "*0\r\n");
}

TEST_F(CompatTest, CommandIntrospectionFollowsRedis) {
  EXPECT_EQ(Run({"COMMAND", "INFO", "nosuch"}), "*1\r\n$-1\r\n");
  EXPECT_EQ(Run({"COMMAND", "INFO"}).substr(0, 2), Run({"COMMAND"}).substr(0, 2));
  EXPECT_NE(Run({"COMMAND", "INFO"}), "*0\r\n");
  EXPECT_EQ(Run({"COMMAND", "LIST", "x"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"COMMAND", "LIST", "FILTERBY", "PATTERN", "hincrby*"}),
            "*2\r\n$7\r\nhincrby\r\n$12\r\nhincrbyfloat\r\n");
  EXPECT_EQ(Run({"COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"}),
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
  EXPECT_EQ(Run({"COMMAND", "GETKEYS", "GET"}),
            "-ERR Invalid number of arguments specified for command\r\n");
  EXPECT_EQ(Run({"COMMAND", "GETKEYS", "PING", "x"}), "-ERR The command has no key arguments\r\n");
  EXPECT_EQ(Run({"COMMAND", "GETKEYS", "NOSUCH", "x"}), "-ERR Invalid command specified\r\n");
}

// The unknown-command error quotes arguments within 128 characters counted before each quote,
// and stops at a NUL, as Redis's "%.*s" does.
TEST_F(CompatTest, UnknownCommandQuotesArgumentsAsRedis) {
  const std::string reply = Run({"FOOBAR", std::string(100, 'a') + std::string(100, 'b'), "c"});
  EXPECT_EQ(reply, "-ERR unknown command 'FOOBAR', with args beginning with: '" +
                       std::string(100, 'a') + std::string(28, 'b') + "' \r\n");
  EXPECT_EQ(Run({"FOO", std::string("a\0b", 3)}),
            "-ERR unknown command 'FOO', with args beginning with: 'a' \r\n");
}

// Redis 7 refuses an infinite HINCRBYFLOAT increment with its own message, before the key.
TEST_F(CompatTest, HIncrByFloatRefusesAnInfiniteIncrement) {
  EXPECT_EQ(Run({"HINCRBYFLOAT", "h", "f", "inf"}), "-ERR value is NaN or Infinity\r\n");
  EXPECT_EQ(Run({"HINCRBYFLOAT", "h", "f", "-inf"}), "-ERR value is NaN or Infinity\r\n");
  EXPECT_EQ(Run({"EXISTS", "h"}), ":0\r\n");
  EXPECT_EQ(Run({"SET", "s", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"HINCRBYFLOAT", "s", "f", "inf"}), "-ERR value is NaN or Infinity\r\n");
  EXPECT_EQ(Run({"HINCRBYFLOAT", "h", "f", "1.5"}), "$3\r\n1.5\r\n");
}

// CLIENT INFO/LIST carry every field of Redis 7's line; redis-py's client_info() converts
// qbuf, qbuf-free, argv-mem, obl, oll, omem and tot-mem and fails when one is missing.
TEST_F(CompatTest, ClientInfoHasTheFieldsClientsParse) {
  const std::string reply = Run({"CLIENT", "INFO"});
  ASSERT_EQ(reply.substr(0, 1), "$");
  const std::string line = reply.substr(reply.find("\r\n") + 2);
  for (const char* field :
       {" id=",        " addr=",     " laddr=",     " fd=",   " name=", " age=",   " idle=",
        " flags=",     " db=",       " sub=",       " psub=", " ssub=", " multi=", " qbuf=",
        " qbuf-free=", " argv-mem=", " multi-mem=", " rbs=",  " rbp=",  " obl=",   " oll=",
        " omem=",      " tot-mem=",  " events=",    " cmd=",  " user=", " redir=", " resp="}) {
    EXPECT_NE((" " + line).find(field), std::string::npos) << field << " in " << line;
  }
  EXPECT_NE(line.find(" user=default redir=-1 resp=2\n"), std::string::npos) << line;
  // Every item is key=value (clients split on spaces, then on '=').
  const std::string content = line.substr(0, line.find('\n'));
  size_t items = 0;
  for (size_t pos = 0; pos <= content.size();) {
    size_t end = content.find(' ', pos);
    if (end == std::string::npos) end = content.size();
    const std::string item = content.substr(pos, end - pos);
    EXPECT_EQ(std::count(item.begin(), item.end(), '='), 1) << item;
    ++items;
    pos = end + 1;
  }
  EXPECT_GE(items, 28u);
}

// Redis 7.0 accepts an expiry form repeated (the last wins) but not two different ones, and
// reports a syntax error before a bad time.
TEST_F(CompatTest, SetAndGetExTakeOneExpiryFormPossiblyRepeated) {
  EXPECT_EQ(Run({"SET", "k", "v", "EX", "10", "EX", "2000"}), "+OK\r\n");
  EXPECT_EQ(Run({"TTL", "k"}), ":2000\r\n");
  EXPECT_EQ(Run({"SET", "k", "v", "EX", "10", "PX", "20"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"SET", "k", "v", "EX", "abc", "NX", "XX"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"SET", "k", "v", "EX", "abc"}),
            "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"SET", "k", "v", "KEEPTTL", "EX", "5"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"GETEX", "k", "PX", "5000", "PX", "9000"}), "$1\r\nv\r\n");
  const int64_t pttl = std::stoll(Run({"PTTL", "k"}).substr(1));  // 9000 ms less what elapsed
  EXPECT_GT(pttl, 8000);
  EXPECT_LE(pttl, 9000);
  EXPECT_EQ(Run({"GETEX", "k", "PERSIST", "EX", "5"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"GETEX", "k", "EX", "0"}), "-ERR invalid expire time in 'getex' command\r\n");
}

// INCRBYFLOAT checks the key's type, then its value, then the increment.
TEST_F(CompatTest, IncrByFloatReportsTheWrongTypeFirst) {
  EXPECT_EQ(Run({"HSET", "h", "f", "1"}), ":1\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "h", "abc"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(Run({"SET", "s", "abc"}), "+OK\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "s", "1"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"INCRBYFLOAT", "n", "x"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Run({"EXISTS", "n"}), ":0\r\n");
}

// A relative time far in the past is not an overflow in milliseconds: the key goes.
TEST_F(CompatTest, PExpireWithTheSmallestIntegerDeletesTheKey) {
  EXPECT_EQ(Run({"SET", "s", "1"}), "+OK\r\n");
  EXPECT_EQ(Run({"EXPIRE", "s", "-9223372036854775808"}),
            "-ERR invalid expire time in 'expire' command\r\n");
  EXPECT_EQ(Run({"PEXPIRE", "s", "-9223372036854775808"}), ":1\r\n");
  EXPECT_EQ(Run({"EXISTS", "s"}), ":0\r\n");
}

TEST_F(CompatTest, CopyFollowsRedis) {
  EXPECT_EQ(Run({"SET", "m", "abc", "EX", "100"}), "+OK\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m"}), "-ERR source and destination objects are the same\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m2"}), ":1\r\n");
  EXPECT_EQ(Run({"GET", "m2"}), "$3\r\nabc\r\n");
  EXPECT_EQ(Run({"TTL", "m2"}), ":100\r\n");
  EXPECT_EQ(Run({"SET", "m", "new"}), "+OK\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m2"}), ":0\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m2", "REPLACE"}), ":1\r\n");
  EXPECT_EQ(Run({"GET", "m2"}), "$3\r\nnew\r\n");
  EXPECT_EQ(Run({"TTL", "m2"}), ":-1\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m3", "DB", "x"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m3", "DB", "1"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m3", "DB", "0"}), ":1\r\n");
  EXPECT_EQ(Run({"COPY", "m", "m4", "FOO"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"COPY", "nope", "m4"}), ":0\r\n");
  EXPECT_EQ(Run({"HSET", "h", "f", "1"}), ":1\r\n");
  EXPECT_EQ(Run({"COPY", "h", "h2"}), ":1\r\n");
  EXPECT_EQ(Run({"HGET", "h2", "f"}), "$1\r\n1\r\n");
}

TEST_F(CompatTest, ObjectReportsRedisEncodings) {
  EXPECT_EQ(Run({"SET", "i", "12"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "e", "abc"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "r", std::string(45, 'a')}), "+OK\r\n");
  EXPECT_EQ(Run({"HSET", "small", "f", "1"}), ":1\r\n");
  EXPECT_EQ(Run({"HSET", "big", "f", std::string(65, 'a')}), ":1\r\n");
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "i"}), "$3\r\nint\r\n");
  EXPECT_EQ(Run({"OBJECT", "encoding", "e"}), "$6\r\nembstr\r\n");
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "r"}), "$3\r\nraw\r\n");
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "small"}), "$8\r\nlistpack\r\n");
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "big"}), "$9\r\nhashtable\r\n");
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "nope"}), "$-1\r\n");
  EXPECT_EQ(Run({"OBJECT", "REFCOUNT", "e"}), ":1\r\n");
  EXPECT_EQ(Run({"OBJECT", "REFCOUNT", "i"}), ":2147483647\r\n");
  EXPECT_EQ(Run({"OBJECT", "FOO", "x"}), "-ERR unknown subcommand 'FOO'. Try OBJECT HELP.\r\n");
  EXPECT_EQ(Run({"OBJECT", "ENCODING"}),
            "-ERR wrong number of arguments for 'object|encoding' command\r\n");
  EXPECT_EQ(Run({"OBJECT", "FREQ", "e"}).substr(0, 38), "-ERR An LFU maxmemory policy is not se");
  EXPECT_EQ(Run({"OBJECT", "HELP"}).substr(0, 4), "*15\r");
}

// Every read command's lookup counts, hit or miss, as Redis counts them; writes do not.
TEST_F(CompatTest, KeyspaceHitsCountEveryReadLookup) {
  EXPECT_EQ(Run({"SET", "a", "1"}), "+OK\r\n");
  EXPECT_EQ(Run({"HSET", "h", "f", "1"}), ":1\r\n");
  Run({"GET", "a"});          // hit
  Run({"GET", "nope"});       // miss
  Run({"HGET", "h", "f"});    // hit
  Run({"EXISTS", "a", "x"});  // hit, miss
  Run({"MGET", "a", "y"});    // hit, miss
  Run({"TYPE", "h"});         // hit
  Run({"COPY", "a", "b"});    // the source: hit
  Run({"INCR", "a"});         // a write: not counted
  EXPECT_EQ(stats_.keyspace_hits.load(), 6u);
  EXPECT_EQ(stats_.keyspace_misses.load(), 3u);
}

}  // namespace
}  // namespace eloqkv::resp
