// Torn and corrupt tails: damage the newest segment at a random place (truncate, flip a bit,
// zero a range); recovery keeps every batch that ends before the damage, nothing from the batch
// it hits or after, says how much it dropped, and the cut is permanent.
#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <mutex>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

struct BatchSpan {
  uint64_t start, end;  // offsets in the segment file
  std::vector<std::pair<std::string, std::string>> kv;
};

std::mutex g_log_mu;
std::string g_log;

Options LoggingOptions(const std::string& dir) {
  Options o = TestOptions(dir);
  o.segment_size = size_t{16} << 20;  // everything stays in one segment
  o.log = [](void*, LogLevel, const char* msg) {
    std::lock_guard<std::mutex> l(g_log_mu);
    g_log += msg;
    g_log += '\n';
  };
  return o;
}

std::string NewestSegment(const std::string& dir) {
  std::string best;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() == 14 && name.ends_with(".seg") && name > best) best = name;
  }
  return dir + "/" + best;
}

TEST(EngineTornTail, RecoveryKeepsEverythingBeforeTheDamageAndNothingAfter) {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 36; ++trial) {
    TempDir dir;
    const Options opts = LoggingOptions(dir.path());
    std::vector<BatchSpan> batches;
    std::string segment_path;
    uint32_t ks;
    {
      Instance db(opts);
      ks = test::MakeKeyspace(db.engine(), "t");
      for (int b = 0; b < 60; ++b) {
        WriteBatch wb;
        BatchSpan span;
        const int n = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < n; ++i) {
          std::string k = "b" + std::to_string(b) + "-" + std::to_string(i);
          std::string v = test::Value(rng, rng() % 3 == 0 ? 5000 : rng() % 300);
          ASSERT_TRUE(wb.Put(ks, k, v).ok());
          span.kv.emplace_back(k, v);
        }
        WriteResult r;
        ASSERT_TRUE(db->Write(wb, &r).ok());
        span.end = r.end_lsn & 0xFFFFFFFFu;
        span.start = span.end - wb.ByteSize();
        batches.push_back(std::move(span));
      }
      segment_path = NewestSegment(dir.path());
    }  // crash

    // Damage somewhere inside the written batches.
    const uint64_t lo = batches.front().start;
    const uint64_t hi = batches.back().end;
    const uint64_t at = lo + rng() % (hi - lo);
    const int kind = trial % 3;
    const int fd = ::open(segment_path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    if (kind == 0) {
      ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(at)), 0);
    } else if (kind == 1) {
      char c;
      ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(at)), 1);
      c = static_cast<char>(c ^ (1 << (rng() % 8)));
      ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(at)), 1);
    } else {
      std::string zeros(1 + rng() % 100, '\0');
      ASSERT_EQ(::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(at)),
                static_cast<ssize_t>(zeros.size()));
    }
    ::close(fd);
    {
      std::lock_guard<std::mutex> l(g_log_mu);
      g_log.clear();
    }

    for (int pass = 0; pass < 2; ++pass) {
      Instance db(opts);
      ASSERT_EQ(db->state(), EngineState::kReady) << db->FailureMessage();
      size_t kept = 0;
      for (const BatchSpan& span : batches) {
        // A batch is kept iff it ends at or before the damage. Zeroing bytes that are already zero
        // damages nothing, so only a change that took effect counts.
        const bool before = span.end <= at;
        for (const auto& [k, v] : span.kv) {
          std::string got;
          Status s = db->Get(ks, k, &got);
          if (before) {
            ASSERT_TRUE(s.ok()) << "trial " << trial << " kind " << kind << ": lost " << k
                                << " which ends at " << span.end << ", damage at " << at;
            ASSERT_EQ(got, v);
          } else if (s.ok()) {
            // Only possible when the damage changed nothing inside this batch (zeros over zeros
            // can't happen here: every batch byte is written). Anything visible is a failure.
            FAIL() << "trial " << trial << " kind " << kind << ": " << k << " survived damage at "
                   << at << " inside or before its batch [" << span.start << ", " << span.end << ")";
          }
        }
        kept += before;
      }
      if (pass == 0) {
        std::lock_guard<std::mutex> l(g_log_mu);
        EXPECT_NE(g_log.find("torn or corrupt tail cut at offset"), std::string::npos) << g_log;
        // The cut is permanent: new writes after it, then another crash, and the dropped batches
        // must not come back.
        ASSERT_TRUE(db->Put(ks, "after-cut", "x").ok());
      } else {
        std::string v;
        ASSERT_TRUE(db->Get(ks, "after-cut", &v).ok());
      }
      (void)kept;
    }
  }
}

TEST(EngineTornTail, DamageInAnEarlierSegmentIsRefusedLoudly) {
  TempDir dir;
  Options opts = LoggingOptions(dir.path());
  opts.segment_size = size_t{1} << 20;
  std::string first;
  {
    Instance db(opts);
    const uint32_t ks = test::MakeKeyspace(db.engine(), "t");
    std::mt19937_64 rng(5);
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), test::Value(rng, 4000)).ok());
    first = dir.path() + "/0000000001.seg";
  }
  const int fd = ::open(first.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c = 0x55;
  ASSERT_EQ(::pwrite(fd, &c, 1, 100000), 1);
  ::close(fd);
  Instance db(opts, /*recover=*/false);
  Status s = db->Recover();
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("0000000001.seg"), std::string::npos) << s.message();
  EXPECT_EQ(db->state(), EngineState::kFailed);
}

}  // namespace
}  // namespace eloqkv
