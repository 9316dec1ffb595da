// Table rows over RESP, with a codec standing in for Postgres type I/O: routing by prefix, the
// hash and string views of a row, conversion errors that write nothing, and catalog reloads.
#include <string>
#include <vector>

#include "../engine/test_util.h"
#include "resp/commands.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

// Rows are EncodeHash of the value columns; a column named "n" takes only digits, and keys only
// digits, as an integer type would.
class FakeCodec final : public RowCodec {
 public:
  Status KeyFromText(const TableDesc&, std::string_view text, std::string* key) override {
    if (!Digits(text)) return Bad(text);
    key->assign(text);
    return Status::OK();
  }
  Status RowToFields(const TableDesc& t, std::string_view key, std::string_view row,
                     HashFields* fields) override {
    if (!DecodeHash(row, fields)) return Status::Corruption("bad row");
    fields->emplace(t.columns[0].name, std::string(key));
    return Status::OK();
  }
  Status FieldsToRow(const TableDesc& t, std::string_view key, const HashFields& fields,
                     std::string* row, int64_t* expire_at_ms) override {
    HashFields values;
    for (const auto& [name, text] : fields) {
      bool known = false;
      for (const TableColumn& c : t.columns) known = known || (c.name == name && !c.dropped);
      if (!known) return Status::InvalidArgument("column \"" + name + "\" does not exist");
      if (name == t.columns[0].name) {
        if (text != key) return Status::InvalidArgument("cannot change key column");
        continue;
      }
      if (name == "n" && !Digits(text)) return Bad(text);
      values.emplace(name, text);
    }
    *row = EncodeHash(values);
    *expire_at_ms = 0;
    ++rows_encoded;
    return Status::OK();
  }
  int rows_encoded = 0;

 private:
  static bool Digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
      if (c < '0' || c > '9') return false;
    return true;
  }
  static Status Bad(std::string_view s) {
    return Status::InvalidArgument("invalid input syntax for type integer: \"" + std::string(s) +
                                   "\"");
  }
};

TableDesc MakeTable(std::string prefix, std::string keyspace, std::vector<std::string> values) {
  TableDesc d;
  d.prefix = std::move(prefix);
  d.relname = "public." + keyspace;
  d.keyspace = std::move(keyspace);
  d.nkeys = 1;
  TableColumn id;
  id.name = "id";
  id.attnum = 1;
  id.key_index = 0;
  d.columns.push_back(id);
  for (const std::string& v : values) {
    TableColumn c;
    c.name = v;
    c.attnum = static_cast<int16_t>(d.columns.size() + 1);
    d.columns.push_back(c);
  }
  return d;
}

class TablesTest : public ::testing::Test {
 protected:
  TablesTest()
      : db_(TestOptions(dir_.path())),
        dispatcher_(&db_.engine(), {}, &stats_, &clients_, &codec_),
        other_(&db_.engine(), {}, &stats_, &clients_, &codec_) {
    session_.authenticated = true;
    other_session_.authenticated = true;
    EXPECT_TRUE(db_->CreateKeyspace(kTableCatalogKeyspace, &catalog_).ok());
    EXPECT_TRUE(db_->CreateKeyspace("wide", &wide_).ok());
    EXPECT_TRUE(db_->CreateKeyspace("narrow", &narrow_).ok());
    Publish(MakeTable("w:", "wide", {"a", "n"}));
    Publish(MakeTable("s:", "narrow", {"v"}));
  }

  void Publish(const TableDesc& d) {
    ASSERT_TRUE(db_->Put(catalog_, d.prefix, EncodeTableDesc(d)).ok());
    stats_.table_generation.fetch_add(1);
  }

  std::string Run(std::vector<std::string> argv, Dispatcher* d = nullptr, Session* s = nullptr) {
    return test::RunCommand(db_.engine(), d ? *d : dispatcher_, s ? *s : session_, argv);
  }

  bool Stored(uint32_t ks, const std::string& key, HashFields* fields = nullptr) {
    std::string row;
    if (!db_->Get(ks, key, &row).ok()) return false;
    if (fields != nullptr) EXPECT_TRUE(DecodeHash(row, fields));
    return true;
  }

  TempDir dir_;
  Instance db_;
  ListenerStats stats_;
  ClientRegistry clients_;
  FakeCodec codec_;
  Dispatcher dispatcher_;
  Dispatcher other_;
  Session session_{1, "peer", "local", -1};
  Session other_session_{2, "peer", "local", -1};
  uint32_t catalog_ = 0, wide_ = 0, narrow_ = 0;
};

TEST(TableDescTest, RoundTripsAndRejectsDamage) {
  TableDesc d = MakeTable("agent:", "agent_state", {"state", "hits"});
  d.ttl_ms = 3600000;
  d.columns[2].dropped = true;
  const std::string bytes = EncodeTableDesc(d);
  TableDesc back;
  ASSERT_TRUE(DecodeTableDesc(bytes, &back));
  EXPECT_EQ(back.prefix, "agent:");
  EXPECT_EQ(back.keyspace, "agent_state");
  EXPECT_EQ(back.ttl_ms, 3600000);
  ASSERT_EQ(back.columns.size(), 3u);
  EXPECT_TRUE(back.columns[2].dropped);
  EXPECT_EQ(back.value_column, 1);  // the only live value column
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(DecodeTableDesc(bytes.substr(0, n), &back)) << n;
  EXPECT_FALSE(DecodeTableDesc(bytes + "x", &back));
}

TEST(TableDescTest, CachesAndMirrorsAreFlaggedAndVersionOneMeansNeither) {
  TableDesc d = MakeTable("user:", "user_cache", {"name"});
  d.cache = true;
  std::string bytes = EncodeTableDesc(d);
  TableDesc back;
  ASSERT_TRUE(DecodeTableDesc(bytes, &back));
  EXPECT_TRUE(back.cache);
  EXPECT_FALSE(back.mirror);
  d.cache = false;
  d.mirror = true;
  ASSERT_TRUE(DecodeTableDesc(EncodeTableDesc(d), &back));
  EXPECT_FALSE(back.cache);
  EXPECT_TRUE(back.mirror);
  // Version 3 carries a cache's timings.
  d.mirror = false;
  d.cache = true;
  d.stale_ttl_ms = 30000;
  d.lease_timeout_ms = 2500;
  ASSERT_TRUE(DecodeTableDesc(EncodeTableDesc(d), &back));
  EXPECT_EQ(back.stale_ttl_ms, 30000);
  EXPECT_EQ(back.lease_timeout_ms, 2500);
  // A version 2 description has the flag but no timings (0: none).
  ASSERT_EQ(bytes.substr(bytes.size() - 2), std::string("\0\0", 2));
  bytes.resize(bytes.size() - 2);
  bytes[0] = 2;
  ASSERT_TRUE(DecodeTableDesc(bytes, &back));
  EXPECT_TRUE(back.cache);
  EXPECT_EQ(back.lease_timeout_ms, 0);
  // A version 1 description (written before caches) has no flag: not a cache.
  bytes[0] = 1;
  bytes.pop_back();
  ASSERT_TRUE(DecodeTableDesc(bytes, &back));
  EXPECT_FALSE(back.cache);
  bytes[0] = 4;  // from a future version: refused, not guessed at
  EXPECT_FALSE(DecodeTableDesc(bytes, &back));
}

TEST_F(TablesTest, CacheRowsAreReadOnlyAndNegativeEntriesReadAsNoRow) {
  uint32_t ks = 0;
  ASSERT_TRUE(db_->CreateKeyspace("cache", &ks).ok());
  TableDesc d = MakeTable("c:", "cache", {"v"});
  d.cache = true;
  Publish(d);
  ASSERT_TRUE(db_->Put(ks, "1", EncodeHash(HashFields{{"v", "one"}})).ok());
  ASSERT_TRUE(db_->Put(ks, "2", std::string(1, kCacheNegativeEntry)).ok());
  EXPECT_EQ(Run({"GET", "c:1"}), "$3\r\none\r\n");
  EXPECT_EQ(Run({"GET", "c:2"}), "$-1\r\n");
  EXPECT_EQ(Run({"EXISTS", "c:2"}), ":0\r\n");
  const std::string refused =
      "-ERR cannot write to public.cache: it is an eloqkv cache, filled by its source query\r\n";
  EXPECT_EQ(Run({"SET", "c:1", "x"}), refused);
  EXPECT_EQ(Run({"DEL", "c:1"}), refused);
  EXPECT_EQ(Run({"HSET", "c:2", "v", "x"}), refused);
  EXPECT_EQ(Run({"GET", "c:1"}), "$3\r\none\r\n");
  // Inside EXEC the refusal is that command's error; the others apply.
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "plain", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"SET", "c:1", "x"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"DEL", "c:1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"GET", "c:1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*4\r\n+OK\r\n" + refused + refused + "$3\r\none\r\n");
  EXPECT_EQ(Run({"GET", "plain"}), "$1\r\n1\r\n");
  EXPECT_EQ(Run({"GET", "c:1"}), "$3\r\none\r\n");
}

// Records the fills asked for; the test plays the filler by writing the rows.
class FakeFiller final : public CacheFiller {
 public:
  Status RequestFill(const TableDesc& t, std::string_view key, int64_t) override {
    if (!refuse.empty()) return Status::Unavailable(refuse);
    requests.push_back(t.relname + "/" + std::string(key));
    return Status::OK();
  }
  std::vector<std::string> requests;
  std::string refuse;
};

// A cache over a source, served with the prefix "c:" from the keyspace "cache" (its id in
// `keyspace`), and a worker whose reads that miss ask `filler` and wait.
class CacheTest : public TablesTest {
 protected:
  void SetUp() override { ASSERT_TRUE(db_->CreateKeyspace("cache", &keyspace).ok()); }
  void PublishCache(int64_t lease_timeout_ms, int64_t stale_ttl_ms = 0) {
    TableDesc t = MakeTable("c:", "cache", {"v"});
    t.cache = true;
    t.stale_ttl_ms = stale_ttl_ms;
    t.lease_timeout_ms = lease_timeout_ms;
    Publish(t);
  }
  FakeFiller filler;
  Dispatcher d{&db_.engine(), {}, &stats_, &clients_, &codec_, nullptr, &filler};
  uint32_t keyspace = 0;
};

TEST_F(CacheTest, ACacheMissWaitsForItsFillAndAStaleRowIsRefreshed) {
  PublishCache(/*lease_timeout_ms=*/1500, /*stale_ttl_ms=*/60000);
  const uint32_t ks = keyspace;
  // A miss asks for a fill and parks: no reply yet.
  const int64_t before = NowMillis();
  EXPECT_EQ(Run({"GET", "c:1"}, &d), "");
  EXPECT_TRUE(session_.park.parked);
  EXPECT_EQ(filler.requests, (std::vector<std::string>{"public.cache/1"}));
  ASSERT_EQ(session_.park.keys.size(), 1u);
  EXPECT_EQ(session_.park.keys[0], std::make_pair(ks, std::string("1")));
  const int64_t deadline = session_.park.deadline_ms;
  EXPECT_GE(deadline, before + 1500);
  // The server runs it again after kAskAgainMs even if nothing changed (its filler may be gone).
  EXPECT_GE(session_.park.ask_again_ms, before + Session::Park::kAskAgainMs);
  EXPECT_LT(session_.park.ask_again_ms, deadline);
  // What the server does when a parked command is due.
  auto resume = [&] {
    session_.park.parked = false;
    session_.park.resumed = true;
  };
  // Run again before the fill: parked again, with the same deadline, and it asked again.
  resume();
  EXPECT_EQ(Run({"GET", "c:1"}, &d), "");
  EXPECT_EQ(session_.park.deadline_ms, deadline);
  EXPECT_EQ(filler.requests, (std::vector<std::string>{"public.cache/1", "public.cache/1"}));
  // The fill lands: the command replies, and the wait is over.
  ASSERT_TRUE(db_->Put(ks, "1", EncodeHash(HashFields{{"v", "one"}})).ok());
  resume();
  EXPECT_EQ(Run({"GET", "c:1"}, &d), "$3\r\none\r\n");
  EXPECT_FALSE(session_.park.parked);
  EXPECT_EQ(session_.park.deadline_ms, 0);
  // Past the deadline with no fill: an error naming the cache, not "no such row".
  filler.requests.clear();
  EXPECT_EQ(Run({"HGET", "c:2", "v"}, &d), "");
  resume();
  session_.park.expired = true;
  EXPECT_EQ(Run({"HGET", "c:2", "v"}, &d),
            "-ERR the source of eloqkv cache public.cache did not fill the key within its "
            "lease_timeout (1500 ms); try again\r\n");
  EXPECT_FALSE(session_.park.parked);
  // A negative entry is an answer: nothing to wait for.
  ASSERT_TRUE(db_->Put(ks, "3", std::string(1, kCacheNegativeEntry)).ok());
  filler.requests.clear();
  EXPECT_EQ(Run({"GET", "c:3"}, &d), "$-1\r\n");
  EXPECT_TRUE(filler.requests.empty());
  // Past its ttl, within stale_ttl (its stored expiry is ttl + stale_ttl): served, refreshed.
  ASSERT_TRUE(db_->Put(ks, "4", EncodeHash(HashFields{{"v", "old"}}), NowMillis() + 30000).ok());
  EXPECT_EQ(Run({"GET", "c:4"}, &d), "$3\r\nold\r\n");
  EXPECT_EQ(filler.requests, (std::vector<std::string>{"public.cache/4"}));
  // Inside EXEC nothing waits: a miss reads as no row, and its fill is asked for.
  filler.requests.clear();
  Run({"MULTI"}, &d);
  Run({"GET", "c:5"}, &d);
  EXPECT_EQ(Run({"EXEC"}, &d), "*1\r\n$-1\r\n");
  EXPECT_EQ(filler.requests, (std::vector<std::string>{"public.cache/5"}));
  EXPECT_FALSE(session_.park.parked);
  // A filler that cannot take the request: its error, at once.
  filler.refuse = "the eloqkv cache fillers of this database are busy; try again";
  EXPECT_EQ(Run({"GET", "c:6"}, &d),
            "-ERR the eloqkv cache fillers of this database are busy; try again\r\n");
  // Without a filler (the default), a miss reads as no row, as before.
  EXPECT_EQ(Run({"GET", "c:6"}), "$-1\r\n");
}

// CLIENT UNBLOCK of a read waiting for its cache fill: as by its timeout it says it was
// unblocked (not that the lease ran out), also when a pause started meanwhile (a wait already
// under way is not held); with ERROR, Redis's error.
TEST_F(CacheTest, AnUnblockedCacheReadSaysSoEvenDuringAPause) {
  PublishCache(/*lease_timeout_ms=*/60000);
  other_session_.authenticated = true;
  clients_.Add(&session_);
  const std::string unblock = std::to_string(session_.id());
  auto resume = [&] {  // what the server's loop does with a park that is due
    EXPECT_TRUE(session_.park.parked);
    session_.park.parked = false;
    session_.park.resumed = true;
  };
  EXPECT_EQ(Run({"GET", "c:1"}, &d), "");
  ASSERT_TRUE(session_.park.parked);
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", unblock}, &d, &other_session_), ":1\r\n");
  stats_.client_pause.Pause(NowMillis() + 60'000, ClientPause::Mode::kAll);
  resume();
  EXPECT_EQ(Run({"GET", "c:1"}, &d),
            "-ERR the read of eloqkv cache public.cache was unblocked (CLIENT UNBLOCK) before "
            "its fill came; try again\r\n");
  EXPECT_FALSE(session_.park.parked);
  stats_.client_pause.Unpause();
  EXPECT_EQ(Run({"GET", "c:1"}, &d), "");
  EXPECT_EQ(Run({"CLIENT", "UNBLOCK", unblock, "ERROR"}, &d, &other_session_), ":1\r\n");
  resume();
  EXPECT_EQ(Run({"GET", "c:1"}, &d), "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
  EXPECT_FALSE(session_.park.parked);
  clients_.Remove(&session_);
}

TEST_F(TablesTest, RowsAreHashesStoredInTheTableKeyspace) {
  EXPECT_EQ(Run({"HSET", "w:1", "a", "x", "n", "5"}), ":2\r\n");
  HashFields row;
  ASSERT_TRUE(Stored(wide_, "1", &row));
  EXPECT_EQ(row, (HashFields{{"a", "x"}, {"n", "5"}}));
  uint32_t plain = 0;
  ASSERT_TRUE(db_->FindKeyspace("@resp", &plain).ok());
  EXPECT_FALSE(Stored(plain, "w:1"));
  EXPECT_EQ(Run({"HGETALL", "w:1"}),
            "*6\r\n$1\r\na\r\n$1\r\nx\r\n$2\r\nid\r\n$1\r\n1\r\n$1\r\nn\r\n$1\r\n5\r\n");
  EXPECT_EQ(Run({"HINCRBY", "w:1", "n", "10"}), ":15\r\n");
  EXPECT_EQ(Run({"TYPE", "w:1"}), "+hash\r\n");
  EXPECT_EQ(Run({"HDEL", "w:1", "a"}), ":1\r\n");
  ASSERT_TRUE(Stored(wide_, "1", &row));
  EXPECT_EQ(row, (HashFields{{"n", "15"}}));
  EXPECT_EQ(Run({"DEL", "w:1"}), ":1\r\n");
  EXPECT_FALSE(Stored(wide_, "1"));
}

TEST_F(TablesTest, StringsAddressTheOnlyValueColumn) {
  EXPECT_EQ(Run({"SET", "s:7", "hello"}), "+OK\r\n");
  HashFields row;
  ASSERT_TRUE(Stored(narrow_, "7", &row));
  EXPECT_EQ(row, (HashFields{{"v", "hello"}}));
  EXPECT_EQ(Run({"GET", "s:7"}), "$5\r\nhello\r\n");
  EXPECT_EQ(Run({"APPEND", "s:7", "!"}), ":6\r\n");
  EXPECT_EQ(Run({"HGET", "s:7", "v"}), "$6\r\nhello!\r\n");
  EXPECT_EQ(Run({"GET", "s:8"}), "$-1\r\n");
  // A row with several value columns is not a string.
  EXPECT_EQ(Run({"HSET", "w:1", "a", "x"}), ":1\r\n");
  EXPECT_EQ(Run({"GET", "w:1"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(Run({"SET", "w:2", "x"}),
            "-ERR table public.wide has several value columns: write its row with HSET, not as a "
            "string\r\n");
  EXPECT_FALSE(Stored(wide_, "2"));
}

TEST_F(TablesTest, ValuesThatDoNotConvertWriteNothing) {
  EXPECT_EQ(Run({"HSET", "w:1", "n", "5"}), ":1\r\n");
  EXPECT_EQ(Run({"HSET", "w:1", "a", "y", "n", "abc"}),
            "-ERR invalid input syntax for type integer: \"abc\"\r\n");
  EXPECT_EQ(Run({"HSET", "w:1", "nosuch", "1"}), "-ERR column \"nosuch\" does not exist\r\n");
  EXPECT_EQ(Run({"HSET", "w:1", "id", "2"}), "-ERR cannot change key column\r\n");
  EXPECT_EQ(Run({"GET", "w:abc"}), "-ERR invalid input syntax for type integer: \"abc\"\r\n");
  EXPECT_EQ(Run({"SET", "w:abc", "1"}), "-ERR invalid input syntax for type integer: \"abc\"\r\n");
  HashFields row;
  ASSERT_TRUE(Stored(wide_, "1", &row));
  EXPECT_EQ(row, (HashFields{{"n", "5"}}));
  // Inside EXEC a bad value fails its own command, which writes nothing; the others apply, as
  // after any other command's error in Redis.
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "plain", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"HSET", "w:1", "a", "z"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"HSET", "w:1", "a", "lost", "n", "bad"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"SET", "w:2", "x"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"HINCRBY", "w:1", "n", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}),
            "*5\r\n+OK\r\n:1\r\n-ERR invalid input syntax for type integer: \"bad\"\r\n"
            "-ERR table public.wide has several value columns: write its row with HSET, not as a "
            "string\r\n:6\r\n");
  EXPECT_EQ(Run({"GET", "plain"}), "$1\r\n1\r\n");
  ASSERT_TRUE(Stored(wide_, "1", &row));
  EXPECT_EQ(row, (HashFields{{"a", "z"}, {"n", "6"}}));
  EXPECT_FALSE(Stored(wide_, "2", &row));
}

TEST_F(TablesTest, SeveralBadValuesReportTheFirstInKeyOrderAloneOrInExec) {
  uint32_t ks = 0;
  ASSERT_TRUE(db_->CreateKeyspace("ints", &ks).ok());
  Publish(MakeTable("i:", "ints", {"n"}));
  std::vector<std::string> mset = {"MSET"};
  for (int i = 8; i >= 1; --i) {
    mset.push_back("i:" + std::to_string(i));
    mset.push_back("bad" + std::to_string(i));
  }
  const std::string first = "-ERR invalid input syntax for type integer: \"bad1\"\r\n";
  EXPECT_EQ(Run(mset), first);
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run(mset), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*1\r\n" + first);
  EXPECT_EQ(Run({"EXISTS", "i:1", "i:8"}), ":0\r\n");
}

TEST_F(TablesTest, FlushdbKeepsTableRowsAndWatchSeesTheirWriters) {
  EXPECT_EQ(Run({"SET", "s:1", "row"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "plain", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"FLUSHDB"}), "+OK\r\n");
  EXPECT_EQ(Run({"GET", "plain"}), "$-1\r\n");
  EXPECT_EQ(Run({"GET", "s:1"}), "$3\r\nrow\r\n");

  EXPECT_EQ(Run({"WATCH", "s:1"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "s:1", "theirs"}, &other_, &other_session_), "+OK\r\n");
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"SET", "s:1", "mine"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*-1\r\n");
  EXPECT_EQ(Run({"GET", "s:1"}), "$6\r\ntheirs\r\n");
}

TEST_F(TablesTest, TwoWorkersIncrementingOneColumnLoseNothing) {
  EXPECT_EQ(Run({"HSET", "w:9", "n", "0"}), ":1\r\n");
  for (int i = 0; i < 100; ++i) {
    Run({"HINCRBY", "w:9", "n", "1"});
    Run({"HINCRBY", "w:9", "n", "1"}, &other_, &other_session_);
  }
  EXPECT_EQ(Run({"HGET", "w:9", "n"}), "$3\r\n200\r\n");
}

TEST_F(TablesTest, CatalogChangesAreSeenAfterTheGenerationMoves) {
  EXPECT_EQ(Run({"SET", "s:1", "row"}), "+OK\r\n");
  // The table goes: its keys are plain keys again.
  ASSERT_TRUE(db_->Delete(catalog_, "s:").ok());
  stats_.table_generation.fetch_add(1);
  EXPECT_EQ(Run({"GET", "s:1"}), "$-1\r\n");
  EXPECT_EQ(Run({"SET", "s:1", "plain"}), "+OK\r\n");
  EXPECT_TRUE(Stored(narrow_, "1"));  // the table's row is untouched
  // A new table under another prefix.
  Publish(MakeTable("n:", "narrow", {"v"}));
  EXPECT_EQ(Run({"GET", "n:1"}), "$3\r\nrow\r\n");
  // A description this version cannot read is not served.
  ASSERT_TRUE(db_->Put(catalog_, "x:", "garbage").ok());
  stats_.table_generation.fetch_add(1);
  EXPECT_EQ(Run({"SET", "x:1", "v"}), "+OK\r\n");
  EXPECT_EQ(Run({"GET", "n:1"}), "$3\r\nrow\r\n");
}

}  // namespace
}  // namespace eloqkv::resp
