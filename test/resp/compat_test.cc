// Redis 7 compatibility details found by the redis-py client test (test/clients/): exact
// replies where the listener used to differ from Redis.
#include <algorithm>
#include <string>
#include <vector>

#include "resp/commands.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

using CompatTest = test::DispatcherTest;

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
