// Io::ReadBatch: every request of a batch larger than the ring gets its own bytes and result.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/io.h"
#include "test_util.h"

namespace eloqkv {
namespace {

class IoTest : public ::testing::TestWithParam<IoMode> {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/data";
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd_, 0);
    // Each 4 KiB block is filled with a byte derived from its number, so a read that lands on
    // the wrong block or the wrong buffer shows.
    std::string block(kBlock, '\0');
    for (size_t b = 0; b < kBlocks; ++b) {
      block.assign(kBlock, ByteOf(b));
      ASSERT_EQ(::pwrite(fd_, block.data(), block.size(), static_cast<off_t>(b * kBlock)),
                static_cast<ssize_t>(kBlock));
    }
    std::string why;
    io_ = Io::ForThread(GetParam(), &why);
    ASSERT_NE(io_, nullptr);
    if (GetParam() == IoMode::kIoUring && !io_->uses_io_uring())
      GTEST_SKIP() << "io_uring refused here: " << why;
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }

  static char ByteOf(size_t block) { return static_cast<char>('a' + block % 23); }

  static constexpr size_t kBlock = 4096;
  static constexpr size_t kBlocks = 2048;
  test::TempDir dir_;
  std::string path_;
  int fd_ = -1;
  Io* io_ = nullptr;
};

TEST_P(IoTest, ABatchLargerThanTheRingReadsEveryRequest) {
  constexpr size_t kReads = 1000;  // several rings' worth
  std::vector<std::string> bufs(kReads);
  std::vector<ReadRequest> batch(kReads);
  std::vector<size_t> blocks(kReads);
  std::mt19937 rng(7);
  for (size_t i = 0; i < kReads; ++i) {
    blocks[i] = rng() % kBlocks;
    const size_t len = (i % 3 == 0) ? 2 * kBlock : 100 + i % 500;  // whole blocks and parts
    bufs[i].assign(len, '\0');
    batch[i] = ReadRequest{fd_, bufs[i].data(), len, blocks[i] * kBlock, -12345};
  }
  io_->ReadBatch(batch);
  for (size_t i = 0; i < kReads; ++i) {
    const size_t len = bufs[i].size();
    // A two-block read of the last block stops at the end of the file.
    const size_t want = std::min(len, (kBlocks - blocks[i]) * kBlock);
    ASSERT_EQ(batch[i].result, static_cast<ssize_t>(want)) << "request " << i;
    for (size_t k = 0; k < want; ++k) {
      ASSERT_EQ(bufs[i][k], ByteOf(blocks[i] + k / kBlock)) << "request " << i << " byte " << k;
    }
  }
}

TEST_P(IoTest, EachRequestOfABatchGetsItsOwnError) {
  std::string a(kBlock, '\0'), b(kBlock, '\0'), c(kBlock, '\0');
  std::vector<ReadRequest> batch = {
      {fd_, a.data(), kBlock, 5 * kBlock, 0},
      {-1, b.data(), kBlock, 0, 0},                         // not a descriptor
      {fd_, c.data(), kBlock, (kBlocks + 10) * kBlock, 0},  // past the end of the file
  };
  io_->ReadBatch(batch);
  EXPECT_EQ(batch[0].result, static_cast<ssize_t>(kBlock));
  EXPECT_EQ(a, std::string(kBlock, ByteOf(5)));
  EXPECT_EQ(batch[1].result, -EBADF);
  EXPECT_EQ(batch[2].result, 0);
}

TEST_P(IoTest, AnEmptyBatchAndBatchesAfterItWork) {
  io_->ReadBatch({});
  for (int round = 0; round < 3; ++round) {
    std::string a(kBlock, '\0');
    ReadRequest r{fd_, a.data(), kBlock, 9 * kBlock, 0};
    io_->ReadBatch(std::span<ReadRequest>(&r, 1));
    ASSERT_EQ(r.result, static_cast<ssize_t>(kBlock));
    EXPECT_EQ(a, std::string(kBlock, ByteOf(9)));
  }
}

std::string ModeName(const ::testing::TestParamInfo<IoMode>& mode) {
  return mode.param == IoMode::kPosix ? "Pread" : "IoUring";
}

INSTANTIATE_TEST_SUITE_P(Modes, IoTest, ::testing::Values(IoMode::kIoUring, IoMode::kPosix),
                         ModeName);

}  // namespace
}  // namespace eloqkv
