// BackgroundSync: every signal wakes the loop, however it interleaves with the loop's Drain; a
// wake-up lost there would hold replies forever.
#include "resp/background_sync.h"

#include <poll.h>

#include <atomic>
#include <string>
#include <thread>

#include "../engine/test_util.h"

namespace eloqkv::resp {
namespace {

uint64_t WriteOne(Engine& db, uint32_t keyspace, const std::string& key) {
  WriteBatch batch;
  EXPECT_TRUE(batch.Put(keyspace, key, "v").ok());
  WriteResult result;
  EXPECT_TRUE(db.WriteDeferred(batch, &result).ok());
  return result.end_lsn;
}

TEST(BackgroundSyncTest, SignalsRacingTheDrainNeverLeaveTheLoopAsleep) {
  test::TempDir dir;
  test::Instance db(test::TestOptions(dir.path()));
  BackgroundSync sync(&db.engine());
  ASSERT_TRUE(sync.Start().ok());
  // A request at or below synced() signals at once, on the caller's thread: a second thread
  // signalling in a tight loop hits the narrow window inside Drain that a sync thread's signal
  // only rarely does. While signals keep coming, the eventfd must keep waking the loop.
  std::atomic<bool> stop{false};
  std::thread signaller([&] {
    while (!stop.load(std::memory_order_relaxed)) sync.Request(0);
  });
  const int64_t until = NowMillis() + 1000;
  int drains = 0;
  bool asleep = false;
  for (; NowMillis() < until && !asleep; ++drains) {
    pollfd ready{sync.event_fd(), POLLIN, 0};
    asleep = ::poll(&ready, 1, 2000) != 1;
    if (!asleep) sync.Drain();
  }
  stop = true;
  signaller.join();
  EXPECT_FALSE(asleep) << "after " << drains << " drains, the eventfd stayed silent for 2 s "
                       << "while signals kept coming";
  EXPECT_GT(drains, 100);
}

TEST(BackgroundSyncTest, RequestBelowSyncedStillWakesTheLoop) {
  test::TempDir dir;
  test::Instance db(test::TestOptions(dir.path()));
  uint32_t keyspace = 0;
  ASSERT_TRUE(db->CreateKeyspace("k", &keyspace).ok());
  BackgroundSync sync(&db.engine());
  ASSERT_TRUE(sync.Start().ok());
  const uint64_t lsn = WriteOne(db.engine(), keyspace, "a");
  sync.Request(lsn);
  pollfd ready{sync.event_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 5000), 1);
  sync.Drain();
  ASSERT_GE(sync.synced(), lsn);
  EXPECT_EQ(::poll(&ready, 1, 0), 0) << "drained";
  // The caller holds the reply until the loop sees the eventfd, even when nothing is left to sync.
  sync.Request(lsn);
  EXPECT_EQ(::poll(&ready, 1, 5000), 1);
}

TEST(BackgroundSyncTest, InlineRequestsWaitForTheLoopsDrainNotTheEventfd) {
  test::TempDir dir;
  test::Instance db(test::TestOptions(dir.path()));
  uint32_t keyspace = 0;
  ASSERT_TRUE(db->CreateKeyspace("k", &keyspace).ok());
  BackgroundSync sync(&db.engine());
  ASSERT_TRUE(sync.Start(/*inline_sync=*/true).ok());
  EXPECT_FALSE(sync.drain_due());
  const uint64_t lsn = WriteOne(db.engine(), keyspace, "a");
  sync.Request(lsn);
  EXPECT_TRUE(sync.drain_due());
  EXPECT_LT(sync.synced(), lsn) << "nothing syncs before the loop drains";
  pollfd ready{sync.event_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&ready, 1, 0), 0) << "an inline request costs no eventfd write";
  sync.Drain();
  EXPECT_FALSE(sync.drain_due());
  EXPECT_GE(sync.synced(), lsn);
  EXPECT_GE(db->SyncedLsn(), lsn);
  // Already durable: the caller still holds its reply until the next drain releases it.
  sync.Request(lsn);
  EXPECT_TRUE(sync.drain_due());
  sync.Drain();
  EXPECT_FALSE(sync.drain_due());
}

}  // namespace
}  // namespace eloqkv::resp
