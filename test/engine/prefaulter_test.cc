// Prefaulter: shared anonymous memory is made resident slice by slice, in address order, whole
// pages inside the region only, without changing what the memory holds.
#include "engine/prefaulter.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace eloqkv {
namespace {

class PrefaulterTest : public ::testing::Test {
 protected:
  static constexpr size_t kBytes = size_t{8} << 20;

  PrefaulterTest() : page_(static_cast<size_t>(::sysconf(_SC_PAGESIZE))) {
    void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    base_ = static_cast<char*>(p);
  }
  ~PrefaulterTest() override { ::munmap(base_, kBytes); }

  // Which pages of the mapping are resident.
  std::vector<bool> Resident() const {
    std::vector<unsigned char> v(kBytes / page_);
    EXPECT_EQ(::mincore(base_, kBytes, v.data()), 0);
    std::vector<bool> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = (v[i] & 1) != 0;
    return out;
  }
  size_t ResidentPages() const {
    size_t n = 0;
    for (bool r : Resident()) n += r;
    return n;
  }

  size_t page_;
  char* base_ = nullptr;
};

TEST_F(PrefaulterTest, SlicesMakeTheRegionResidentInOrderAndKeepItsContents) {
  ASSERT_EQ(ResidentPages(), 0u) << "untouched shared memory has no pages yet";
  // A page already in use keeps what it holds.
  const size_t used = kBytes / 2 + 3 * page_;
  std::memcpy(base_ + used, "kept", 4);
  ASSERT_EQ(ResidentPages(), 1u);

  Prefaulter p(base_, kBytes);
  EXPECT_EQ(p.total_bytes(), kBytes);
  bool done = false;
  const Status first = p.Step(kBytes / 4, &done);
  if (first.ToString().find("needs Linux 5.14") != std::string::npos)
    GTEST_SKIP() << first.ToString();
  ASSERT_TRUE(first.ok()) << first.ToString();
  EXPECT_FALSE(done);
  EXPECT_EQ(p.populated_bytes(), kBytes / 4);
  std::vector<bool> r = Resident();
  for (size_t i = 0; i < r.size(); ++i)
    EXPECT_EQ(r[i], i < r.size() / 4 || i * page_ == used) << "page " << i;

  size_t steps = 1;
  while (!done) {
    ASSERT_TRUE(p.Step(kBytes / 4, &done).ok());
    ++steps;
  }
  EXPECT_EQ(steps, 4u);
  EXPECT_EQ(ResidentPages(), kBytes / page_);
  EXPECT_EQ(std::memcmp(base_ + used, "kept", 4), 0);
  for (size_t i = 0; i < kBytes; i += page_)
    if (i != used) ASSERT_EQ(base_[i], 0) << "a prefaulted page reads as zeros";

  ASSERT_TRUE(p.Step(kBytes, &done).ok()) << "once done, a step does nothing";
  EXPECT_TRUE(done);
}

TEST_F(PrefaulterTest, OnlyWholePagesInsideTheRegionAreTouched) {
  // A region that starts and ends inside a page: those two pages are shared with memory that is
  // not the region's, and are left alone.
  Prefaulter p(base_ + 100, 4 * page_);
  EXPECT_EQ(p.total_bytes(), 3 * page_);
  bool done = false;
  ASSERT_TRUE(p.Step(1, &done).ok()) << "a slice is at least a page";
  EXPECT_FALSE(done);
  EXPECT_EQ(p.populated_bytes(), page_);
  while (!done) ASSERT_TRUE(p.Step(page_, &done).ok());
  const std::vector<bool> r = Resident();
  EXPECT_FALSE(r[0]);
  EXPECT_TRUE(r[1] && r[2] && r[3]);
  EXPECT_FALSE(r[4]);
  EXPECT_EQ(ResidentPages(), 3u);

  Prefaulter empty(base_ + 100, 10);  // no whole page
  EXPECT_EQ(empty.total_bytes(), 0u);
  ASSERT_TRUE(empty.Step(page_, &done).ok());
  EXPECT_TRUE(done);
}

TEST(PrefaulterMemoryTest, AvailableMemoryIsTheKernelsEstimate) {
  const uint64_t available = Prefaulter::AvailableMemory();
  ASSERT_GT(available, 0u) << "this host has /proc/meminfo";
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  ASSERT_GT(pages, 0);
  EXPECT_LE(available, static_cast<uint64_t>(pages) * ::sysconf(_SC_PAGESIZE))
      << "never more than the physical memory";
}

// A fake cgroup file system: files under a temporary mount.
class CgroupHeadroomTest : public ::testing::Test {
 protected:
  void Write(std::string rel, const std::string& text) {
    while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);  // stays under the mount
    const std::filesystem::path p = std::filesystem::path(dir_.path()) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  // A cgroup directory (v2: under the mount, v1: under mount/memory).
  void Group(const std::string& rel, const std::string& limit, const std::string& usage,
             const std::string& stat, bool v2) {
    Write(rel + "/cgroup.procs", "1\n");
    Write(rel + (v2 ? "/memory.max" : "/memory.limit_in_bytes"), limit + "\n");
    Write(rel + (v2 ? "/memory.current" : "/memory.usage_in_bytes"), usage + "\n");
    if (!stat.empty()) Write(rel + "/memory.stat", stat);
  }
  uint64_t Headroom(const std::string& self) {
    return Prefaulter::CgroupHeadroom(self, dir_.path());
  }
  static constexpr uint64_t kMB = 1 << 20;
  test::TempDir dir_;
};

TEST_F(CgroupHeadroomTest, V2LimitLessItsUsageNotCountingInactivePageCache) {
  Group("a", "max", "0", "", true);
  Group("a/b", std::to_string(1024 * kMB), std::to_string(512 * kMB),
        "anon 1000\nactive_file 5\ninactive_file " + std::to_string(128 * kMB) + "\n", true);
  EXPECT_EQ(Headroom("0::/a/b\n"), 640 * kMB);
  // A parent with a closer limit decides.
  Group("a", std::to_string(600 * kMB), std::to_string(400 * kMB), "", true);
  EXPECT_EQ(Headroom("0::/a/b\n"), 200 * kMB);
  // Over its limit (the kernel is reclaiming): nothing left.
  Group("a/b", std::to_string(100 * kMB), std::to_string(300 * kMB), "", true);
  EXPECT_EQ(Headroom("0::/a/b\n"), 0u);
}

TEST_F(CgroupHeadroomTest, V2HighBelowMaxIsTheLimit) {
  Group("a", "max", std::to_string(100 * kMB), "", true);
  EXPECT_EQ(Headroom("0::/a\n"), UINT64_MAX);
  Write("a/memory.high", std::to_string(300 * kMB) + "\n");
  EXPECT_EQ(Headroom("0::/a\n"), 200 * kMB) << "memory.high alone limits";
  Group("a", std::to_string(250 * kMB), std::to_string(100 * kMB), "", true);
  EXPECT_EQ(Headroom("0::/a\n"), 150 * kMB) << "the lower of max and high";
  Write("a/memory.high", "max\n");
  EXPECT_EQ(Headroom("0::/a\n"), 150 * kMB);
}

TEST_F(CgroupHeadroomTest, V1MemoryControllerAndNoLimit) {
  Group("memory/x", "9223372036854771712", std::to_string(5 * kMB), "", false);
  EXPECT_EQ(Headroom("12:pids:/x\n4:memory:/x\n0::/\n"), UINT64_MAX) << "2^63 means no limit";
  Group("memory/x", std::to_string(100 * kMB), std::to_string(50 * kMB),
        "cache 9\ninactive_file 1\ntotal_inactive_file " + std::to_string(10 * kMB) + "\n", false);
  EXPECT_EQ(Headroom("12:pids:/x\n4:cpu,memory:/x\n0::/\n"), 60 * kMB)
      << "the memory controller may share its hierarchy with others";
  EXPECT_EQ(Headroom("12:pids:/x\n"), UINT64_MAX) << "no memory controller";
}

TEST_F(CgroupHeadroomTest, InsideACgroupNamespaceTheMountIsTheProcessCgroup) {
  // The path names the cgroup on the host; the container's mount shows it at its root.
  Group("", std::to_string(256 * kMB), std::to_string(56 * kMB), "", true);
  EXPECT_EQ(Headroom("0::/kubepods/pod1/abc\n"), 200 * kMB);
}

TEST(PrefaulterMemoryTest, AvailableMemoryHonoursThisHostsCgroup) {
  std::ifstream in("/proc/self/cgroup");
  const std::string self((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Live counters: the group's usage may move between the readings, so the bound is the larger
  // headroom of one reading before and one after, plus some slack.
  const uint64_t before = Prefaulter::CgroupHeadroom(self, "/sys/fs/cgroup");
  const uint64_t available = Prefaulter::AvailableMemory();
  const uint64_t after = Prefaulter::CgroupHeadroom(self, "/sys/fs/cgroup");
  const uint64_t bound = std::max(before, after);
  constexpr uint64_t kSlack = 64 << 20;
  EXPECT_LE(available, bound > UINT64_MAX - kSlack ? UINT64_MAX : bound + kSlack);
}

TEST_F(PrefaulterTest, MemoryThatIsNotMappedIsAnErrorAndEndsIt) {
  ASSERT_EQ(::munmap(base_ + kBytes / 2, kBytes / 2), 0);
  Prefaulter p(base_, kBytes);
  bool done = false;
  ASSERT_TRUE(p.Step(kBytes / 2, &done).ok());
  EXPECT_FALSE(done);
  const Status s = p.Step(kBytes / 2, &done);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(done);
  EXPECT_NE(s.ToString().find("prefault shared memory"), std::string::npos) << s.ToString();
  EXPECT_EQ(p.populated_bytes(), kBytes / 2);
  EXPECT_TRUE(p.Step(kBytes, &done).ok()) << "after an error, nothing more is tried";
  // Give the fixture a whole mapping to unmap again.
  void* again = ::mmap(base_ + kBytes / 2, kBytes / 2, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  ASSERT_NE(again, MAP_FAILED);
}

}  // namespace
}  // namespace eloqkv
