// Redis 7 compatibility details found by the redis-py client test (test/clients/): exact
// replies where the listener used to differ from Redis.
#include <algorithm>
#include <string>
#include <vector>

#include "../engine/test_util.h"
#include "resp/commands.h"

namespace eloqkv::resp {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

class CompatTest : public ::testing::Test {
 protected:
  CompatTest() : db_(TestOptions(dir_.path())), dispatcher_(&db_.engine(), {}, &stats_, &clients_) {
    session_.authenticated = true;
  }

  std::string Run(std::vector<std::string> argv) {
    std::vector<std::string_view> args(argv.begin(), argv.end());
    std::string out;
    ReplyWriter w(&out, session_.protocol);
    dispatcher_.Execute(session_, args, w);
    if (const uint64_t lsn = dispatcher_.TakePendingLsn(); lsn != 0)
      EXPECT_TRUE(db_->SyncTo(lsn).ok());
    return out;
  }

  TempDir dir_;
  Instance db_;
  ListenerStats stats_;
  ClientRegistry clients_;
  Dispatcher dispatcher_;
  Session session_{1, "127.0.0.1:5000", "127.0.0.1:6380", -1};
};

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

}  // namespace
}  // namespace eloqkv::resp
