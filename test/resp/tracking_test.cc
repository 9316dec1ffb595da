// CLIENT TRACKING: the per-worker table of remembered keys over the engine's change feed, the
// mailbox between workers, and the commands with Redis's replies and errors.
#include <chrono>
#include <thread>

#include "resp/redirect_mailbox.h"
#include "resp/tracking.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

using test::DispatcherTest;
using test::Instance;
using test::MakeKeyspace;
using test::TempDir;
using test::TestOptions;

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest() : db_(TestOptions(dir_.path())) { ks_ = MakeKeyspace(db_.engine(), "t"); }

  // Reads nothing: what a read would have seen is irrelevant to the table.
  void Remember(Tracker& t, uint64_t client, const std::string& key, int64_t expire_at_ms = 0) {
    t.Remember(client, key, ks_, key, expire_at_ms, db_->ChangePosition());
  }
  std::vector<Tracker::Invalidation> Collect(Tracker& t, bool* flush_all = nullptr,
                                             int64_t now_ms = 0) {
    Tracker::Collected c;
    t.Collect(now_ms == 0 ? NowMillis() : now_ms, flushed_, &c);
    if (flush_all != nullptr) *flush_all = c.flush_all;
    woken_ = c.woken;
    return c.invalidations;
  }
  static std::vector<std::string> Keys(const std::vector<Tracker::Invalidation>& inv) {
    std::vector<std::string> keys;
    for (const auto& i : inv) keys.push_back(std::to_string(i.client) + ":" + i.key);
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  TempDir dir_;
  Instance db_;
  uint32_t ks_ = 0;
  uint32_t flushed_ = 0;         // the keyspace FLUSHDB empties
  std::vector<uint64_t> woken_;  // by the last Collect
};

TEST_F(TrackerTest, AChangeInvalidatesEveryReaderOnceThenTheKeyIsForgotten) {
  Tracker t(&db_.engine());
  t.AddClient();
  Remember(t, 1, "a");
  Remember(t, 2, "a");
  Remember(t, 1, "b");
  EXPECT_EQ(t.keys(), 2u);
  EXPECT_EQ(t.items(), 3u);
  EXPECT_TRUE(Collect(t).empty()) << "nothing changed";
  WriteBatch w;
  w.set_origin(7);
  ASSERT_TRUE(w.Put(ks_, "a", "x").ok());
  ASSERT_TRUE(db_->Write(w).ok());
  std::vector<Tracker::Invalidation> inv = Collect(t);
  EXPECT_EQ(Keys(inv), (std::vector<std::string>{"1:a", "2:a"}));
  for (const auto& i : inv) EXPECT_EQ(i.origin, 7u) << "the writer is passed on (NOLOOP)";
  EXPECT_EQ(t.keys(), 1u);
  ASSERT_TRUE(db_->Put(ks_, "a", "y").ok());
  EXPECT_TRUE(Collect(t).empty()) << "a key is reported once, until it is read again";
  ASSERT_TRUE(db_->Delete(ks_, "b").ok());
  EXPECT_EQ(Keys(Collect(t)), (std::vector<std::string>{"1:b"})) << "a delete is a change too";
  EXPECT_EQ(t.keys(), 0u);
}

TEST_F(TrackerTest, AChangeTheReadAlreadySawDoesNotInvalidateIt) {
  Tracker t(&db_.engine());
  t.AddClient();
  const uint64_t before = db_->ChangePosition();
  ASSERT_TRUE(db_->Put(ks_, "k", "1").ok());
  // A read that began after the write saw it.
  t.Remember(1, "k", ks_, "k", 0, db_->ChangePosition());
  // One that began before it may have missed it.
  t.Remember(2, "k", ks_, "k", 0, before);
  EXPECT_EQ(Keys(Collect(t)), (std::vector<std::string>{"2:k"}));
  EXPECT_EQ(t.keys(), 1u) << "client 1 still holds a fresh value";
  ASSERT_TRUE(db_->Put(ks_, "k", "2").ok());
  EXPECT_EQ(Keys(Collect(t)), (std::vector<std::string>{"1:k"}));
}

TEST_F(TrackerTest, ATruncateInvalidatesTheKeysOfItsKeyspaceOnly) {
  const uint32_t other = MakeKeyspace(db_.engine(), "other");
  Tracker t(&db_.engine());
  t.AddClient();
  Remember(t, 1, "a");
  Remember(t, 1, "b");
  t.Remember(1, "elsewhere", other, "a", 0, db_->ChangePosition());
  ASSERT_TRUE(db_->TruncateKeyspace(ks_).ok());
  bool flush_all = true;
  EXPECT_EQ(Keys(Collect(t, &flush_all)), (std::vector<std::string>{"1:a", "1:b"}));
  EXPECT_FALSE(flush_all);
  EXPECT_EQ(t.keys(), 1u);
  // FLUSHDB of the default keyspace: every client drops everything, as Redis tells them.
  flushed_ = other;
  ASSERT_TRUE(db_->TruncateKeyspace(other).ok());
  EXPECT_TRUE(Collect(t, &flush_all).empty());
  EXPECT_TRUE(flush_all);
  EXPECT_EQ(t.keys(), 0u);
}

TEST_F(TrackerTest, ARememberedKeyIsInvalidatedWhenItExpires) {
  Tracker t(&db_.engine());
  t.AddClient();
  const int64_t now = NowMillis();
  Remember(t, 1, "soon", now + 1000);
  Remember(t, 1, "never");
  EXPECT_TRUE(Collect(t, nullptr, now + 999).empty());
  EXPECT_EQ(Keys(Collect(t, nullptr, now + 1000)), (std::vector<std::string>{"1:soon"}));
  // Read again with a later expiry: the earlier one no longer applies.
  Remember(t, 1, "later", now + 2000);
  Remember(t, 1, "later", now + 5000);
  EXPECT_TRUE(Collect(t, nullptr, now + 3000).empty());
  EXPECT_EQ(Keys(Collect(t, nullptr, now + 5000)), (std::vector<std::string>{"1:later"}));
}

TEST_F(TrackerTest, LostChangesFlushEveryClient) {
  Tracker t(&db_.engine());
  t.AddClient();
  Remember(t, 1, "a");
  for (int done = 0; done < 40000;) {  // more than the feed holds
    WriteBatch b;
    for (int i = 0; i < 1000; ++i, ++done) ASSERT_TRUE(b.Put(ks_, std::to_string(done), "").ok());
    ASSERT_TRUE(db_->Write(b).ok());
  }
  bool flush_all = false;
  EXPECT_TRUE(Collect(t, &flush_all).empty());
  EXPECT_TRUE(flush_all);
  EXPECT_EQ(t.keys(), 0u);
  // Back in step afterwards.
  Remember(t, 1, "a");
  ASSERT_TRUE(db_->Put(ks_, "a", "1").ok());
  EXPECT_EQ(Keys(Collect(t, &flush_all)), (std::vector<std::string>{"1:a"}));
  EXPECT_FALSE(flush_all);
}

TEST_F(TrackerTest, TheTableIsBoundedByInvalidatingOtherKeys) {
  Tracker t(&db_.engine(), 2);
  t.AddClient();
  Remember(t, 1, "a");
  Remember(t, 1, "b");
  Remember(t, 1, "c");
  EXPECT_EQ(t.keys(), 2u);
  std::vector<Tracker::Invalidation> inv = Collect(t);
  ASSERT_EQ(inv.size(), 1u);
  EXPECT_NE(inv[0].key, "c") << "the key just read stays";
}

TEST_F(TrackerTest, WithoutTrackingClientsNothingIsRememberedOrRead) {
  Tracker t(&db_.engine());
  Remember(t, 1, "a");
  EXPECT_EQ(t.keys(), 0u);
  t.AddClient();
  Remember(t, 1, "a");
  t.RemoveClient();
  EXPECT_EQ(t.keys(), 0u);
  ASSERT_TRUE(db_->Put(ks_, "a", "1").ok());
  EXPECT_TRUE(Collect(t).empty());
}

TEST_F(TrackerTest, WaitersAreWokenByTheirKeysChange) {
  Tracker t(&db_.engine());
  EXPECT_TRUE(t.AddWaiter(7, ks_, "a")) << "the first waiter subscribes: the caller reads again";
  EXPECT_FALSE(t.AddWaiter(7, ks_, "b"));
  EXPECT_FALSE(t.AddWaiter(8, ks_, "b"));
  EXPECT_TRUE(t.active());
  ASSERT_TRUE(db_->Put(ks_, "other", "1").ok());
  EXPECT_TRUE(Collect(t).empty());
  EXPECT_TRUE(woken_.empty());
  ASSERT_TRUE(db_->Put(ks_, "b", "1").ok());
  Collect(t);
  std::sort(woken_.begin(), woken_.end());
  EXPECT_EQ(woken_, (std::vector<uint64_t>{7, 8})) << "each once";
  EXPECT_FALSE(t.active()) << "nobody waits: the feed is left";
  ASSERT_TRUE(db_->Put(ks_, "a", "1").ok());
  EXPECT_FALSE(t.AddWaiter(9, ks_, "c") && false);
  Collect(t);
  EXPECT_TRUE(woken_.empty()) << "7 no longer waits for a";
  ASSERT_TRUE(db_->TruncateKeyspace(ks_).ok());
  Collect(t);
  EXPECT_EQ(woken_, (std::vector<uint64_t>{9})) << "a truncate changes every key";
  t.AddWaiter(10, ks_, "d");
  t.RemoveWaiter(10);
  ASSERT_TRUE(db_->Put(ks_, "d", "1").ok());
  Collect(t);
  EXPECT_TRUE(woken_.empty());
}

TEST(RedirectMailboxTest, MessagesLongKeysAndLoss) {
  std::vector<char> region(RedirectMailbox::RequiredBytes());
  RedirectMailbox::Format(region.data());
  RedirectMailbox poster, reader;
  poster.Attach(region.data());
  reader.Attach(region.data());
  uint64_t pos = reader.Position();
  const std::string key = "user:42";
  const std::string long_key(300, 'k');
  poster.Post(5, &key);
  poster.Post(6, nullptr);
  poster.Post(7, &long_key);
  std::vector<RedirectMailbox::Message> got;
  ASSERT_TRUE(reader.Read(&pos, &got));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].target, 5u);
  EXPECT_FALSE(got[0].everything);
  EXPECT_EQ(got[0].key, key);
  EXPECT_TRUE(got[1].everything);
  EXPECT_EQ(got[2].target, 7u);
  EXPECT_TRUE(got[2].everything) << "a key too long for a slot travels as 'everything'";
  got.clear();
  for (size_t i = 0; i < RedirectMailbox::kSlots + 1; ++i) poster.Post(1, &key);
  EXPECT_FALSE(reader.Read(&pos, &got));
  EXPECT_TRUE(got.empty());
  poster.Post(9, &key);
  ASSERT_TRUE(reader.Read(&pos, &got));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].target, 9u);
}

class TrackingCommandsTest : public DispatcherTest {
 protected:
  TrackingCommandsTest() { clients_.Add(&session_); }
  ~TrackingCommandsTest() override { clients_.Remove(&session_); }
};

TEST_F(TrackingCommandsTest, OptionsAndErrorsAreRedis) {
  EXPECT_EQ(Run({"CLIENT", "GETREDIR"}), ":-1\r\n");
  EXPECT_EQ(Run({"CLIENT", "CACHING", "yes"}),
            "-ERR CLIENT CACHING can be called only when the client is in tracking mode with "
            "OPTIN or OPTOUT mode enabled\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "on", "REDIRECT", "999"}),
            "-ERR The client ID you want redirect to does not exist\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"}),
            "-ERR You can't specify both OPTIN mode and OPTOUT mode\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "on", "PREFIX", "a:"}),
            "-ERR PREFIX option requires BCAST mode to be enabled\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "on", "BCAST"}),
            "-ERR eloqkv does not support BCAST tracking; use the default mode, which reports "
            "every change of the keys the client read\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "maybe"}), "-ERR syntax error\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "on", "SIDEWAYS"}), "-ERR syntax error\r\n");
  EXPECT_EQ(stats_.tracking_clients.load(), 0u) << "refused options change nothing";

  EXPECT_EQ(Run({"CLIENT", "TRACKING", "on", "REDIRECT", "1", "NOLOOP", "OPTIN"}), "+OK\r\n");
  EXPECT_EQ(stats_.tracking_clients.load(), 1u);
  EXPECT_EQ(Run({"CLIENT", "GETREDIR"}), ":1\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "on", "OPTOUT"}),
            "-ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, "
            "and then re-enabling it with a different mode.\r\n");
  EXPECT_EQ(Run({"CLIENT", "CACHING", "no"}),
            "-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.\r\n");
  EXPECT_EQ(Run({"CLIENT", "CACHING", "yes"}), "+OK\r\n");
  session_.protocol = 3;
  EXPECT_EQ(Run({"CLIENT", "TRACKINGINFO"}),
            "%3\r\n$5\r\nflags\r\n~4\r\n$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes\r\n"
            "$6\r\nnoloop\r\n$8\r\nredirect\r\n:1\r\n$8\r\nprefixes\r\n*0\r\n");
  EXPECT_EQ(Run({"CLIENT", "TRACKING", "off"}), "+OK\r\n");
  EXPECT_EQ(stats_.tracking_clients.load(), 0u);
  EXPECT_EQ(Run({"CLIENT", "GETREDIR"}), ":-1\r\n");
}

TEST_F(TrackingCommandsTest, ReadCommandsRememberTheirKeys) {
  Run({"SET", "s", "1"});
  Run({"HSET", "h", "f", "v"});
  ASSERT_EQ(Run({"CLIENT", "TRACKING", "on"}), "+OK\r\n");
  Run({"GET", "s"});
  Run({"MGET", "m1", "m2"});
  Run({"HGET", "h", "f"});
  Run({"SET", "w", "1"});  // a write remembers nothing
  EXPECT_EQ(dispatcher_.tracker().keys(), 4u);
  Run({"GET", "h"});  // WRONGTYPE: refused reads are not remembered
  EXPECT_EQ(dispatcher_.tracker().keys(), 4u);
  Run({"MULTI"});
  Run({"TTL", "t"});
  Run({"EXEC"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 5u) << "reads inside EXEC count";
  Run({"RESET"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 0u) << "RESET turns tracking off";
  EXPECT_EQ(stats_.tracking_clients.load(), 0u);
}

TEST_F(TrackingCommandsTest, OptInTracksOnlyTheCommandAfterCachingYes) {
  ASSERT_EQ(Run({"CLIENT", "TRACKING", "on", "OPTIN"}), "+OK\r\n");
  Run({"GET", "a"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 0u);
  Run({"CLIENT", "CACHING", "yes"});
  Run({"GET", "b"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 1u);
  Run({"GET", "c"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 1u) << "CACHING yes covers one command";
  Run({"CLIENT", "CACHING", "yes"});
  Run({"MULTI"});
  Run({"GET", "d"});
  Run({"GET", "e"});
  Run({"EXEC"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 3u) << "... or one transaction";
  Run({"CLIENT", "TRACKING", "off"});
  ASSERT_EQ(Run({"CLIENT", "TRACKING", "on", "OPTOUT"}), "+OK\r\n");
  Run({"CLIENT", "CACHING", "no"});
  Run({"GET", "f"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 0u);
  Run({"GET", "g"});
  EXPECT_EQ(dispatcher_.tracker().keys(), 1u);
}

TEST_F(TrackingCommandsTest, SubscribeServesOnlyTheInvalidationChannel) {
  EXPECT_EQ(Run({"SUBSCRIBE", "__redis__:invalidate", "news"}),
            "-ERR eloqkv serves pub/sub only for client-side caching: SUBSCRIBE "
            "__redis__:invalidate is the one channel available\r\n");
  EXPECT_FALSE(session_.subscribed_invalidate) << "nothing was subscribed";
  EXPECT_EQ(Run({"UNSUBSCRIBE"}), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
  EXPECT_EQ(Run({"SUBSCRIBE", "__redis__:invalidate"}),
            "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n");
  EXPECT_EQ(Run({"GET", "a"}),
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
            "RESET are allowed in this context\r\n");
  EXPECT_EQ(Run({"CLIENT", "ID"}),
            "-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
            "QUIT / RESET are allowed in this context\r\n");
  EXPECT_EQ(Run({"PING"}), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
  EXPECT_EQ(Run({"UNSUBSCRIBE", "__redis__:invalidate"}),
            "*3\r\n$11\r\nunsubscribe\r\n$20\r\n__redis__:invalidate\r\n:0\r\n");
  EXPECT_EQ(Run({"PING"}), "+PONG\r\n");
  // RESP3 clients may run anything while subscribed.
  session_.protocol = 3;
  EXPECT_EQ(Run({"SUBSCRIBE", "__redis__:invalidate"}),
            ">3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n");
  EXPECT_EQ(Run({"GET", "a"}), "_\r\n");
}

TEST_F(TrackingCommandsTest, CommandInfoGivesKeyPositions) {
  const std::string mget = Run({"COMMAND", "INFO", "mget"});
  EXPECT_NE(mget.find("\r\n:1\r\n:-1\r\n:1\r\n"), std::string::npos) << mget;
  const std::string mset = Run({"COMMAND", "INFO", "mset"});
  EXPECT_NE(mset.find("\r\n:1\r\n:-1\r\n:2\r\n"), std::string::npos) << mset;
  const std::string ping = Run({"COMMAND", "INFO", "ping"});
  EXPECT_NE(ping.find("\r\n:0\r\n:0\r\n:0\r\n"), std::string::npos) << ping;
}

}  // namespace
}  // namespace eloqkv::resp
