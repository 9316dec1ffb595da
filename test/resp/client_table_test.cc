// The client table the listener workers share: claims, consistent snapshots, kill requests,
// and the slots of a worker that died freed by the next one.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "resp/client_table.h"

namespace eloqkv::resp {
namespace {

class ClientTableTest : public ::testing::Test {
 protected:
  static constexpr size_t kSlots = 4;
  void SetUp() override {
    bytes_ = SharedClientTable::RequiredBytes(kSlots);
    region_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(region_, MAP_FAILED);
    SharedClientTable::Format(region_, kSlots);
    table_.Attach(region_);
  }
  void TearDown() override { ::munmap(region_, bytes_); }

  static ClientSnapshot Snapshot(uint64_t id, const char* name) {
    ClientSnapshot s;
    s.id = id;
    ClientSnapshot::Set(s.name, sizeof(s.name), name);
    return s;
  }
  std::vector<uint64_t> Ids() {
    std::vector<uint64_t> ids;
    table_.ForEach([&](int, const ClientSnapshot& s) { ids.push_back(s.id); });
    return ids;
  }

  size_t bytes_ = 0;
  void* region_ = nullptr;
  SharedClientTable table_;
};

TEST_F(ClientTableTest, ClaimedSlotsAreListedUntilReleased) {
  const int a = table_.Claim(7);
  const int b = table_.Claim(9);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_NE(a, b);
  table_.Publish(a, Snapshot(7, "seven"));
  table_.Publish(b, Snapshot(9, std::string(100, 'n').c_str()));
  std::vector<std::string> names;
  table_.ForEach([&](int, const ClientSnapshot& s) { names.push_back(s.name); });
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0], "seven");
  EXPECT_EQ(names[1], std::string(63, 'n'));  // cut to its field
  table_.Release(a);
  EXPECT_EQ(Ids(), std::vector<uint64_t>{9});
}

TEST_F(ClientTableTest, AFullTableRefusesAClaim) {
  for (uint64_t id = 1; id <= kSlots; ++id) EXPECT_GE(table_.Claim(id), 0);
  EXPECT_EQ(table_.Claim(99), -1);
}

TEST_F(ClientTableTest, KillRequestsReachTheOwnerAndClearOnReuse) {
  const int a = table_.Claim(1);
  table_.Publish(a, Snapshot(1, "x"));
  EXPECT_FALSE(table_.kill_requested(a));
  table_.RequestKill(a, 1);
  EXPECT_TRUE(table_.kill_requested(a));
  table_.Release(a);
  const int again = table_.Claim(2);
  EXPECT_FALSE(table_.kill_requested(again));
  table_.RequestKill(again, 1);  // aimed at the slot's previous client: not this one
  EXPECT_FALSE(table_.kill_requested(again));
}

// An UNBLOCK request reaches the wait it was made for, once; not an earlier client of the slot,
// nor a later wait of the same client.
TEST_F(ClientTableTest, UnblockRequestsReachTheWaitTheyAreFor) {
  const int a = table_.Claim(5);
  EXPECT_EQ(table_.TakeUnblock(a, 3), 0);
  ASSERT_TRUE(table_.RequestUnblock(a, 5, 3, 2));
  EXPECT_EQ(table_.TakeUnblock(a, 3), 2);
  EXPECT_EQ(table_.TakeUnblock(a, 3), 0) << "taken once";
  ASSERT_TRUE(table_.RequestUnblock(a, 5, 3, 1));  // its wait 3 ended before the owner looked
  EXPECT_EQ(table_.TakeUnblock(a, 4), 0) << "not for its next wait";
  EXPECT_EQ(table_.TakeUnblock(a, 4), 0);
  table_.Release(a);
  int again = -1;
  for (uint64_t id = 6; again != a && id < 6 + kSlots; ++id) again = table_.Claim(id);
  ASSERT_EQ(again, a);
  ASSERT_TRUE(table_.RequestUnblock(again, 5, 1, 1));  // the slot's previous client
  EXPECT_EQ(table_.TakeUnblock(again, 1), 0);
  EXPECT_FALSE(table_.RequestUnblock(again, uint64_t{1} << 41, 1, 1)) << "an id too large";
}

TEST_F(ClientTableTest, SlotsOfAProcessThatIsGoneAreFreed) {
  const int mine = table_.Claim(1);
  table_.Publish(mine, Snapshot(1, "mine"));
  const pid_t child = ::fork();
  if (child == 0) {  // a worker that claims and dies without releasing
    const int s = table_.Claim(2);
    table_.Publish(s, Snapshot(2, "orphan"));
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(Ids(), (std::vector<uint64_t>{1, 2}));
  table_.ReleaseOrphans();
  EXPECT_EQ(Ids(), std::vector<uint64_t>{1});  // ours stays
}

}  // namespace
}  // namespace eloqkv::resp
