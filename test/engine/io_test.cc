// Io::ReadBatch: every request of a batch larger than the ring gets its own bytes and result.
// SequentialFileReader: exact ranges at any offset, and O_DIRECT reads that leave no pages in
// the page cache.
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

using test::ResidentPages;

// The fixture's file; the reader does its own reads, so one I/O mode is enough.
class SequentialFileReaderTest : public IoTest {};

TEST_P(SequentialFileReaderTest, ReadsExactRangesAtAnyOffsetAndStopsAtTheEnd) {
  for (const bool direct : {true, false}) {
    AlignedBuffer buffer;
    SequentialFileReader reader(&buffer, "test file");
    ASSERT_TRUE(reader.Open(path_, direct).ok());
    std::string_view got;
    // Inside a block, across several block boundaries, one byte, then the file's last bytes.
    const std::vector<std::pair<uint64_t, size_t>> ranges = {
        {5, 100}, {kBlock - 3, 2 * kBlock + 7}, {17 * kBlock, 1}, {kBlocks * kBlock - 10, 10}};
    for (const auto& [offset, n] : ranges) {
      ASSERT_TRUE(reader.Read(offset, n, &got).ok());
      ASSERT_EQ(got.size(), n) << offset << " direct " << direct;
      for (size_t k = 0; k < n; ++k)
        ASSERT_EQ(got[k], ByteOf((offset + k) / kBlock)) << offset << "+" << k;
    }
    ASSERT_TRUE(reader.Read(kBlocks * kBlock - 10, 4 * kBlock, &got).ok());
    EXPECT_EQ(got.size(), 10u) << "short at the end of the file";
    ASSERT_TRUE(reader.Read(kBlocks * kBlock + 5, 100, &got).ok());
    EXPECT_TRUE(got.empty()) << "nothing past the end";
  }
  AlignedBuffer buffer;
  SequentialFileReader missing(&buffer, "test file");
  const Status s = missing.Open(path_ + ".missing", true);
  EXPECT_EQ(s.ToString(),
            "I/O error: open test file \"" + path_ + ".missing\": No such file or directory");
}

TEST_P(SequentialFileReaderTest, DirectReadsLeaveThePageCacheAlone) {
  ASSERT_EQ(::fsync(fd_), 0);
  ASSERT_EQ(::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED), 0);
  ASSERT_EQ(ResidentPages(path_), 0u);
  AlignedBuffer buffer;
  SequentialFileReader direct(&buffer, "test file");
  ASSERT_TRUE(direct.Open(path_, true).ok());
  if (!direct.direct()) GTEST_SKIP() << "this file system refuses O_DIRECT";
  std::string_view got;
  for (uint64_t at = 1; at < kBlocks * kBlock; at += 300 * 1024) {
    ASSERT_TRUE(direct.Read(at, 256 * 1024, &got).ok());
    ASSERT_FALSE(got.empty());
  }
  EXPECT_EQ(ResidentPages(path_), 0u);
  // The same reads through the page cache fill it: the check above can tell.
  SequentialFileReader cached(&buffer, "test file");
  ASSERT_TRUE(cached.Open(path_, false).ok());
  for (uint64_t at = 1; at < kBlocks * kBlock; at += 300 * 1024)
    ASSERT_TRUE(cached.Read(at, 256 * 1024, &got).ok());
  EXPECT_GT(ResidentPages(path_), kBlocks / 2);
}

INSTANTIATE_TEST_SUITE_P(Modes, SequentialFileReaderTest, ::testing::Values(IoMode::kPosix),
                         ModeName);

INSTANTIATE_TEST_SUITE_P(Modes, IoTest, ::testing::Values(IoMode::kIoUring, IoMode::kPosix),
                         ModeName);

}  // namespace
}  // namespace eloqkv
