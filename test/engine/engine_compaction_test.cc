// Compaction and TTL under concurrent load: space is reclaimed while writers, point readers and
// scanners keep going; scans stay ordered without duplicates or losses; nothing is lost across a
// restart; and a steady overwrite workload stays within 1.5x of its live data on disk.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

constexpr int kStable = 3000;
constexpr int kChurn = 6000;

std::string StableKey(int i) {
  char k[32];
  std::snprintf(k, sizeof(k), "s%06d", i);
  return k;
}
std::string StableValue(int i) { return "stable-" + std::to_string(i) + std::string(1000, 's'); }
std::string ChurnKey(int i) {
  char k[32];
  std::snprintf(k, sizeof(k), "c%06d", i);
  return k;
}

TEST(EngineCompaction, ReclaimsSpaceUnderLoadWithoutDisturbingReadersOrScans) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.segment_size = size_t{1} << 20;
  // Rare checkpoints: compaction must keep up on its own (segments above the checkpoint horizon
  // are compacted too), not by checkpoints moving the horizon.
  opts.checkpoint_log_bytes = size_t{1} << 30;
  opts.cache_memory = size_t{2} << 20;
  std::map<std::string, std::string> model;  // churn keys' final values (writer thread only)
  uint32_t ks;
  {
    Instance db(opts);
    ks = test::MakeKeyspace(db.engine(), "t");
    for (int i = 0; i < kStable; ++i) ASSERT_TRUE(db->Put(ks, StableKey(i), StableValue(i)).ok());

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> scans{0}, reads{0}, problems{0};
    std::string problem;
    std::mutex problem_mu;
    auto report = [&](const std::string& what) {
      problems.fetch_add(1);
      std::lock_guard<std::mutex> l(problem_mu);
      if (problem.empty()) problem = what;
    };
    std::thread scanner([&] {
      while (!stop.load()) {
        auto it = db->NewIterator(ks, ScanOptions{});
        std::string prev;
        int stable = 0;
        bool first = true;
        for (; it->Valid(); it->Next()) {
          std::string k(it->key());
          if (!first && k <= prev) report("scan out of order or duplicated: " + prev + " then " + k);
          first = false;
          if (k[0] == 's') ++stable;
          prev = std::move(k);
        }
        if (stable != kStable) report("scan saw " + std::to_string(stable) + " stable keys");
        scans.fetch_add(1);
      }
    });
    std::thread reader([&] {
      std::mt19937_64 rng(3);
      while (!stop.load()) {
        const int i = static_cast<int>(rng() % kStable);
        std::string v;
        Status s = db->Get(ks, StableKey(i), &v);
        if (!s.ok() || v != StableValue(i)) report("stable key " + StableKey(i) + ": " + s.ToString());
        reads.fetch_add(1);
      }
    });
    // Writer: overwrite churn keys (some with short TTLs, some deleted) in small batches, for
    // many segments' worth of log.
    std::mt19937_64 rng(8);
    double max_amp = 0;
    for (int n = 0; n < 5000; ++n) {
      WriteBatch b;
      std::map<std::string, std::string> staged;  // a batch may touch a key twice: last wins
      std::set<std::string> gone;
      for (int j = 0; j < 8; ++j) {
        const std::string k = ChurnKey(static_cast<int>(rng() % kChurn));
        const int what = static_cast<int>(rng() % 20);
        if (what == 0) {
          ASSERT_TRUE(b.Delete(ks, k).ok());
          staged.erase(k);
          gone.insert(k);
        } else if (what == 1) {
          ASSERT_TRUE(b.Put(ks, k, "ttl", NowMillis() + 50).ok());
          staged.erase(k);
          gone.insert(k);  // will have expired by the end
        } else {
          const std::string v = test::Value(rng, 1000 + rng() % 1000);
          ASSERT_TRUE(b.Put(ks, k, v).ok());
          staged[k] = v;
          gone.erase(k);
        }
      }
      ASSERT_TRUE(db->Write(b).ok());
      for (const auto& k : gone) model.erase(k);
      for (const auto& [k, v] : staged) model[k] = v;
      if (n % 25 == 0) {
        ASSERT_TRUE(db->Tick().ok());
        // Steady state: once the log has turned the data over a few times, disk use must stay
        // within 1.5x of live data (live counts what index entries point at).
        const EngineInfo info = db->Info();
        if (n > 1500 && info.live_bytes > 0)
          max_amp = std::max(max_amp, static_cast<double>(info.disk_bytes) / info.live_bytes);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the TTLs pass
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(db->Tick().ok());
    stop.store(true);
    scanner.join();
    reader.join();
    EXPECT_EQ(problems.load(), 0u) << problem;
    EXPECT_GT(scans.load(), 3u);
    EXPECT_GT(reads.load(), 1000u);

    // Settle: two checkpoints move the horizon, then compaction has everything below it.
    ASSERT_TRUE(db->Checkpoint().ok());
    ASSERT_TRUE(db->Put(ks, "marker", "m").ok());
    ASSERT_TRUE(db->Checkpoint().ok());
    ASSERT_TRUE(db->Compact().ok());
    ASSERT_TRUE(db->Checkpoint().ok());  // deletes the retired segments
    const EngineInfo info = db->Info();
    EXPECT_GT(info.compactions, 0u);
    EXPECT_GT(info.expired_swept, 0u);
    // Disk use: everything the segments hold (including preallocation) against live bytes.
    const double amp = static_cast<double>(info.disk_bytes) / static_cast<double>(info.live_bytes);
    std::printf("compaction: %llu segments rewritten, disk %.1f MiB for %.1f MiB live (%.2fx)\n",
                static_cast<unsigned long long>(info.compactions), info.disk_bytes / 1048576.0,
                info.live_bytes / 1048576.0, amp);
    EXPECT_LE(amp, 1.5);
    std::printf("compaction: highest disk/live during the steady overwrite phase: %.2fx\n", max_amp);
    EXPECT_LE(max_amp, 1.5);
    for (const auto& [k, v] : model) {
      std::string got;
      ASSERT_TRUE(db->Get(ks, k, &got).ok()) << k;
      ASSERT_EQ(got, v) << k;
    }
  }
  // A crash restart sees the same data, compacted segments and all.
  Instance db(opts);
  size_t churn = 0, stable = 0;
  for (auto it = db->NewIterator(ks, ScanOptions{}); it->Valid(); it->Next()) {
    std::string k(it->key()), v;
    ASSERT_TRUE(it->value(&v).ok()) << k;
    if (k[0] == 's') {
      ASSERT_EQ(v, StableValue(stable));
      ++stable;
    } else if (k[0] == 'c') {
      auto m = model.find(k);
      ASSERT_NE(m, model.end()) << k << " should be gone";
      ASSERT_EQ(v, m->second);
      ++churn;
    }
  }
  EXPECT_EQ(stable, static_cast<size_t>(kStable));
  EXPECT_EQ(churn, model.size());
}

}  // namespace
}  // namespace eloqkv

namespace eloqkv {
namespace {

// A large record is written by its writer directly while the seal of the segment it closed is
// still staged in the shared log buffer. Compaction must not read that segment before the seal
// is in the file: it used to read zeros there, report the segment as damaged and never compact
// it again (seen as hundreds of leaked segments under HSET of a growing hash).
TEST(EngineCompaction, ASegmentIsNotReadBeforeItsStagedSealIsInTheFile) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.segment_size = size_t{1} << 20;
  opts.log_buffer = size_t{1} << 20;  // records over 256 KiB are written directly
  opts.checkpoint_log_bytes = size_t{1} << 30;
  Instance db(opts);
  uint32_t ks = 0;
  ASSERT_TRUE(db->CreateKeyspace("big", &ks).ok());
  const std::string value(400 << 10, 'v');
  for (int round = 0; round < 12; ++round) {
    // Overwrites of one key: every older segment becomes garbage, so each qualifies at once.
    WriteBatch b;
    ASSERT_TRUE(b.Put(ks, "k", value + std::to_string(round)).ok());
    WriteResult w;
    ASSERT_TRUE(db->WriteDeferred(b, &w).ok());
    // Compaction runs while the newest write (and possibly a staged seal) is not yet synced.
    ASSERT_TRUE(db->Compact().ok()) << "round " << round;
    ASSERT_TRUE(db->SyncTo(w.end_lsn).ok());
  }
  ASSERT_TRUE(db->Flush().ok());
  ASSERT_TRUE(db->Compact().ok());
  const EngineInfo info = db->Info();
  EXPECT_GT(info.compactions, 0u);
  // One live 400 KiB value: a few segments at most, not one per overwrite.
  EXPECT_LE(info.segments, 4u) << "segments were skipped as damaged and leaked";
  std::string v;
  ASSERT_TRUE(db->Get(ks, "k", &v).ok());
  EXPECT_EQ(v, value + "11");
}

// Compaction reads a segment in chunks and checks its puts a group at a time. A segment larger
// than a chunk, whose records straddle the chunk boundary, with live records, overwritten ones,
// deletes and a record larger than the group's usual size interleaved: every live value is
// copied once, nothing dead comes back, before and after a restart.
TEST(EngineCompaction, InterleavedLiveAndDeadRecordsAcrossReadChunksSurvive) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.segment_size = size_t{16} << 20;  // above the 8 MiB read chunk
  opts.checkpoint_log_bytes = size_t{1} << 30;
  opts.cache_memory = size_t{1} << 20;  // reads after compaction come from the new copies
  constexpr int kKeys = 9000;
  auto key = [](int i) {
    char k[32];
    std::snprintf(k, sizeof(k), "key%05d", i);
    return std::string(k);
  };
  // Sizes vary so that records fall across the chunk boundary at no fixed place.
  auto value = [](int i, int version) {
    const size_t size = i % 331 == 0 ? 100'000 : 1000 + (i * 37) % 2000;
    return "v" + std::to_string(version) + ":" + std::to_string(i) + std::string(size, 'x');
  };
  std::map<std::string, std::string> model;
  uint32_t ks = 0;
  uint64_t moved = 0;
  {
    Instance db(opts);
    ks = test::MakeKeyspace(db.engine(), "t");
    for (int first = 0; first < kKeys; first += 100) {
      WriteBatch b;
      for (int i = first; i < first + 100; ++i) ASSERT_TRUE(b.Put(ks, key(i), value(i, 1)).ok());
      ASSERT_TRUE(db->Write(b).ok());
      for (int i = first; i < first + 100; ++i) model[key(i)] = value(i, 1);
    }
    // Two of three keys overwritten, one of five deleted: the first segment keeps ~1/4 live.
    for (int i = 0; i < kKeys; ++i) {
      if (i % 5 == 0) {
        ASSERT_TRUE(db->Delete(ks, key(i)).ok());
        model.erase(key(i));
      } else if (i % 3 != 0) {
        ASSERT_TRUE(db->Put(ks, key(i), value(i, 2)).ok());
        model[key(i)] = value(i, 2);
      }
    }
    ASSERT_TRUE(db->Flush().ok());
    const EngineInfo before = db->Info();
    ASSERT_TRUE(db->Compact().ok());
    const EngineInfo after = db->Info();
    ASSERT_GT(after.compactions, before.compactions);
    moved = after.compaction_bytes_moved - before.compaction_bytes_moved;
    // Live records were copied, each at most once.
    EXPECT_GT(moved, size_t{1} << 20);
    EXPECT_LE(moved, before.live_bytes);
    EXPECT_EQ(after.live_bytes, before.live_bytes);
    for (int i = 0; i < kKeys; ++i) {
      std::string v;
      const Status s = db->Get(ks, key(i), &v);
      auto it = model.find(key(i));
      if (it == model.end()) {
        ASSERT_TRUE(s.IsNotFound()) << key(i) << " came back: " << s.ToString();
      } else {
        ASSERT_TRUE(s.ok()) << key(i) << ": " << s.ToString();
        ASSERT_EQ(v, it->second) << key(i);
      }
    }
  }
  Instance db(opts);
  size_t seen = 0;
  auto it = db->NewIterator(ks, ScanOptions{});
  for (; it->Valid(); it->Next(), ++seen) {
    auto m = model.find(std::string(it->key()));
    ASSERT_NE(m, model.end()) << it->key() << " came back after a restart";
    std::string v;
    ASSERT_TRUE(it->value(&v).ok()) << it->key();
    ASSERT_EQ(v, m->second) << it->key();
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  EXPECT_EQ(seen, model.size());
}

// A live record larger than compaction's read chunk is read on its own, between records that
// straddle chunks, and copied whole: it reads back after the compaction and after a restart.
TEST(EngineCompaction, ARecordLargerThanAReadChunkIsCopiedWhole) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.segment_size = size_t{24} << 20;
  opts.checkpoint_log_bytes = size_t{1} << 30;
  opts.cache_memory = size_t{1} << 20;  // the read after compaction comes from the copy
  opts.compaction_live_ratio = 0.9;
  std::mt19937_64 rng(5);
  const std::string big = test::Value(rng, size_t{9} << 20);
  const std::string small(3000, 's');
  uint32_t ks = 0;
  std::string v;
  {
    Instance db(opts);
    ks = test::MakeKeyspace(db.engine(), "t");
    // Past the segment holding the catalog, which is not compacted above the checkpoint.
    for (int i = 0; i < 8500; ++i) ASSERT_TRUE(db->Put(ks, "f" + std::to_string(i), small).ok());
    for (int i = 0; i < 1500; ++i) ASSERT_TRUE(db->Put(ks, "a" + std::to_string(i), small).ok());
    ASSERT_TRUE(db->Put(ks, "big", big).ok());
    for (int i = 0; i < 3000; ++i) ASSERT_TRUE(db->Put(ks, "b" + std::to_string(i), small).ok());
    for (int i = 0; i < 1500; ++i) ASSERT_TRUE(db->Delete(ks, "a" + std::to_string(i)).ok());
    for (int i = 0; i < 3000; ++i) ASSERT_TRUE(db->Delete(ks, "b" + std::to_string(i)).ok());
    ASSERT_TRUE(db->Flush().ok());
    const EngineInfo before = db->Info();
    ASSERT_TRUE(db->Compact().ok());
    const EngineInfo after = db->Info();
    ASSERT_GT(after.compactions, before.compactions);
    EXPECT_GE(after.compaction_bytes_moved - before.compaction_bytes_moved, big.size());
    ASSERT_TRUE(db->Get(ks, "big", &v).ok());
    EXPECT_TRUE(v == big) << "a different value of " << v.size() << " bytes";
  }
  Instance reopened(opts);
  ASSERT_TRUE(reopened->Get(ks, "big", &v).ok());
  EXPECT_TRUE(v == big) << "after a restart: a different value of " << v.size() << " bytes";
  EXPECT_TRUE(reopened->Get(ks, "a7", &v).IsNotFound());
}

// Segments that hold records of a keyspace later dropped or truncated: the index entries of
// those records stay until the sweep removes them, and compaction copies none of them.
constexpr int kOrphanKeys = 2000;
std::string OrphanTestKey(const char* prefix, int i) {
  return prefix + std::to_string(i);
}

Options OrphanTestOptions(const std::string& dir) {
  Options opts = TestOptions(dir);
  opts.segment_size = size_t{1} << 20;
  opts.checkpoint_log_bytes = size_t{1} << 30;
  return opts;
}

// A segment a quarter full of `doomed`'s records, the rest overwritten later; first, records
// that move past the segment holding the catalog (never compacted above the checkpoint).
// with_deletes: deletes of those first records among them, which every pass over the segment
// carries (so each pass shows in the bytes moved).
void FillAroundDoomedKeyspace(Instance& db, uint32_t kept, uint32_t doomed,
                              const std::string& value, bool checkpoint_first = false,
                              bool with_deletes = false) {
  for (int i = 0; i < 1500; ++i) ASSERT_TRUE(db->Put(kept, OrphanTestKey("f", i), value).ok());
  if (checkpoint_first) ASSERT_TRUE(db->Checkpoint().ok());
  for (int i = 0; i < kOrphanKeys; ++i) {
    ASSERT_TRUE(db->Put(i % 4 == 0 ? doomed : kept, OrphanTestKey("k", i), value).ok());
    if (with_deletes && i % 2 == 0) ASSERT_TRUE(db->Delete(kept, OrphanTestKey("f", i / 2)).ok());
  }
  for (int i = 0; i < kOrphanKeys; ++i) {
    if (i % 4 != 0) ASSERT_TRUE(db->Put(kept, OrphanTestKey("k", i), value + "2").ok());
  }
}

void ExpectKeptKeys(Instance& db, uint32_t kept, const std::string& value) {
  for (int i = 0; i < kOrphanKeys; ++i) {
    if (i % 4 == 0) continue;
    std::string v;
    ASSERT_TRUE(db->Get(kept, OrphanTestKey("k", i), &v).ok()) << i;
    ASSERT_EQ(v, value + "2") << i;
  }
}

// Compaction finds the dropped keyspace's entries but may not copy them, so the segment keeps
// live bytes after its pass: Compact() must still return (it chose the segment again forever).
TEST(EngineCompaction, ASegmentOfADroppedKeyspaceDoesNotKeepCompactionLooping) {
  TempDir dir;
  Instance db(OrphanTestOptions(dir.path()));
  const uint32_t dropped = test::MakeKeyspace(db.engine(), "dropped");
  const uint32_t kept = test::MakeKeyspace(db.engine(), "kept");
  const std::string value(1000, 'v');
  FillAroundDoomedKeyspace(db, kept, dropped, value);
  ASSERT_TRUE(db->DropKeyspace(dropped).ok());
  ASSERT_TRUE(db->Flush().ok());

  std::atomic<bool> returned{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 300 && !returned.load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!returned.load()) {
      std::fprintf(stderr, "Compact() did not return within 30 s\n");
      std::abort();
    }
  });
  const Status s = db->Compact();
  returned = true;
  watchdog.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  ExpectKeptKeys(db, kept, value);
  // Once the sweep has removed the dropped keyspace's entries, the segment goes.
  (void)db->SweepExpired(SIZE_MAX);
  const uint64_t before = db->Info().compactions;
  ASSERT_TRUE(db->Compact().ok());
  EXPECT_GT(db->Info().compactions, before);
}

// A segment left with such entries is not retired (recovery deletes every retired segment),
// and the replay brings the entries back (replaying a drop or truncate removes none): a crash
// before the sweep must neither lose the kept keys nor stop the restart.
void CompactThenCrashBeforeTheSweep(bool drop) {
  TempDir dir;
  const Options opts = OrphanTestOptions(dir.path());
  const std::string value(1000, 'v');
  uint32_t kept = 0;
  {
    Instance db(opts);
    const uint32_t doomed = test::MakeKeyspace(db.engine(), "doomed");
    kept = test::MakeKeyspace(db.engine(), "kept");
    FillAroundDoomedKeyspace(db, kept, doomed, value);
    ASSERT_TRUE((drop ? db->DropKeyspace(doomed) : db->TruncateKeyspace(doomed)).ok());
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_TRUE(db->Compact().ok());
    ExpectKeptKeys(db, kept, value);
  }  // a crash: no sweep ran
  Instance db(opts);
  ASSERT_TRUE(db.recover_status().ok()) << db.recover_status().ToString();
  ExpectKeptKeys(db, kept, value);
}

TEST(EngineCompaction, ACrashBeforeTheSweepKeepsASegmentOfATruncatedKeyspace) {
  CompactThenCrashBeforeTheSweep(/*drop=*/false);
}

TEST(EngineCompaction, ACrashBeforeTheSweepKeepsASegmentOfADroppedKeyspace) {
  CompactThenCrashBeforeTheSweep(/*drop=*/true);
}

// A checkpoint taken while the keyspace's entries were live, then the truncate, the sweep and a
// compaction that deletes their segment: recovery loads those entries from the checkpoint,
// pointing into a file that is gone on purpose, and must drop them rather than refuse to start.
TEST(EngineCompaction, CheckpointedEntriesOfATruncatedKeyspaceDoNotBlockRecovery) {
  TempDir dir;
  const Options opts = OrphanTestOptions(dir.path());
  const std::string value(1000, 'v');
  uint32_t kept = 0;
  uint32_t truncated = 0;
  {
    Instance db(opts);
    truncated = test::MakeKeyspace(db.engine(), "truncated");
    kept = test::MakeKeyspace(db.engine(), "kept");
    // The first checkpoint keeps the horizon below the segment: it is compacted in carry mode.
    FillAroundDoomedKeyspace(db, kept, truncated, value, /*checkpoint_first=*/true);
    ASSERT_TRUE(db->Checkpoint().ok());  // holds the truncated keyspace's entries, live
    ASSERT_TRUE(db->TruncateKeyspace(truncated).ok());
    ASSERT_TRUE(db->Flush().ok());
    (void)db->SweepExpired(SIZE_MAX);
    const uint64_t before = db->Info().compactions;
    ASSERT_TRUE(db->Compact().ok());
    ASSERT_GT(db->Info().compactions, before);
  }
  Instance db(opts);
  ASSERT_TRUE(db.recover_status().ok()) << db.recover_status().ToString();
  ExpectKeptKeys(db, kept, value);
  std::string v;
  EXPECT_TRUE(db->Get(truncated, OrphanTestKey("k", 0), &v).IsNotFound());
}

std::set<std::string> SegmentFileNames(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 14 && n.compare(10, 4, ".seg") == 0) out.insert(n);
  }
  return out;
}

// A crash after the retire record is durable, before the file is deleted (hard links bring the
// deleted files back): recovery replays the segment, which brings the dead entries back, deletes
// it as retired, and removes the entries.
void CrashAfterRetireBeforeDelete(bool drop) {
  TempDir dir;
  const Options opts = OrphanTestOptions(dir.path());
  const std::string value(1000, 'v');
  const std::string keep = dir.path() + "/keep";
  std::filesystem::create_directory(keep);
  uint32_t kept = 0;
  uint32_t doomed = 0;
  std::set<std::string> deleted;
  {
    Instance db(opts);
    doomed = test::MakeKeyspace(db.engine(), "doomed");
    kept = test::MakeKeyspace(db.engine(), "kept");
    FillAroundDoomedKeyspace(db, kept, doomed, value);
    ASSERT_TRUE((drop ? db->DropKeyspace(doomed) : db->TruncateKeyspace(doomed)).ok());
    ASSERT_TRUE(db->Flush().ok());
    (void)db->SweepExpired(SIZE_MAX);
    const auto before = SegmentFileNames(dir.path());
    for (const auto& n : before)
      std::filesystem::create_hard_link(dir.path() + "/" + n, keep + "/" + n);
    const uint64_t compactions = db->Info().compactions;
    ASSERT_TRUE(db->Compact().ok());
    ASSERT_GT(db->Info().compactions, compactions);
    const auto after = SegmentFileNames(dir.path());
    for (const auto& n : before) {
      if (after.count(n) == 0) deleted.insert(n);
    }
    ASSERT_FALSE(deleted.empty());
    for (const auto& n : deleted)
      std::filesystem::create_hard_link(keep + "/" + n, dir.path() + "/" + n);
  }  // a crash
  std::filesystem::remove_all(keep);
  Instance db(opts);
  ASSERT_TRUE(db.recover_status().ok()) << db.recover_status().ToString();
  ExpectKeptKeys(db, kept, value);
  const auto now = SegmentFileNames(dir.path());
  for (const auto& n : deleted) EXPECT_EQ(now.count(n), 0u) << n;
  if (!drop) {
    std::string v;
    for (int i = 0; i < kOrphanKeys; i += 4)
      ASSERT_TRUE(db->Get(doomed, OrphanTestKey("k", i), &v).IsNotFound()) << i;
  }
}

TEST(EngineCompaction, ACrashBetweenRetirementAndDeletionRecoversATruncatedKeyspace) {
  CrashAfterRetireBeforeDelete(/*drop=*/false);
}

TEST(EngineCompaction, ACrashBetweenRetirementAndDeletionRecoversADroppedKeyspace) {
  CrashAfterRetireBeforeDelete(/*drop=*/true);
}

// Recovery forgives a missing segment only its dead entries: one holding live entries is still
// refused, one whose entries a later truncate made dead is not.
void LoseACheckpointedSegment(bool truncate_after_checkpoint) {
  TempDir dir;
  const Options opts = OrphanTestOptions(dir.path());
  const std::string value(1000, 'v');
  uint32_t ks = 0;
  {
    Instance db(opts);
    ks = test::MakeKeyspace(db.engine(), "t");
    for (int i = 0; i < 3000; ++i) ASSERT_TRUE(db->Put(ks, OrphanTestKey("k", i), value).ok());
    ASSERT_TRUE(db->Checkpoint().ok());
    if (truncate_after_checkpoint) ASSERT_TRUE(db->TruncateKeyspace(ks).ok());
    ASSERT_TRUE(db->Flush().ok());
  }
  const auto names = SegmentFileNames(dir.path());
  ASSERT_GE(names.size(), 3u);
  ASSERT_TRUE(std::filesystem::remove(dir.path() + "/" + *std::next(names.begin())));
  Instance db(opts, /*recover=*/false);
  const Status s = db->Recover();
  if (truncate_after_checkpoint) {
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::string v;
    EXPECT_TRUE(db->Get(ks, OrphanTestKey("k", 2999), &v).IsNotFound());
  } else {
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.ToString().find("is missing but the checkpoint references it"), std::string::npos)
        << s.ToString();
  }
}

TEST(EngineCompaction, RecoveryStillRefusesAMissingSegmentWithLiveEntries) {
  LoseACheckpointedSegment(/*truncate_after_checkpoint=*/false);
}

TEST(EngineCompaction, RecoveryForgivesAMissingSegmentOfATruncatedKeyspace) {
  LoseACheckpointedSegment(/*truncate_after_checkpoint=*/true);
}

// The TTL form of CheckpointedEntriesOfATruncatedKeyspaceDoNotBlockRecovery: keys live at the
// checkpoint expire, the sweep removes them, compaction deletes their segment, a crash. The
// clock is moved rather than waited for; clock_back: the restart finds it stepped back to
// before the keys expire, as after a VM snapshot restore or an NTP step. below_horizon: a second
// checkpoint puts the keys' segments below the older retained one (compacted without carrying
// deletes).
void ExpireCompactAndCrash(bool clock_back, bool below_horizon = false) {
  struct ClockReset {
    ~ClockReset() { SetClockOffsetForTesting(0); }
  } reset_on_exit;
  TempDir dir;
  const Options opts = OrphanTestOptions(dir.path());
  const std::string value(1000, 'v');
  constexpr int64_t kTtlMs = 60'000;
  uint32_t kept = 0;
  {
    Instance db(opts);
    kept = test::MakeKeyspace(db.engine(), "kept");
    for (int i = 0; i < 1500; ++i) ASSERT_TRUE(db->Put(kept, OrphanTestKey("f", i), value).ok());
    const int64_t expire_at = NowMillis() + kTtlMs;
    for (int first = 0; first < kOrphanKeys; first += 100) {
      WriteBatch b;
      for (int i = first; i < first + 100; ++i)
        ASSERT_TRUE(b.Put(kept, OrphanTestKey("k", i), value, i % 4 == 0 ? expire_at : 0).ok());
      ASSERT_TRUE(db->Write(b).ok());
    }
    ASSERT_TRUE(db->Checkpoint().ok());
    if (below_horizon) {
      for (int i = 0; i < 1500; ++i) ASSERT_TRUE(db->Put(kept, OrphanTestKey("g", i), value).ok());
      ASSERT_TRUE(db->Checkpoint().ok());
    }
    SetClockOffsetForTesting(kTtlMs + 1000);
    for (int i = 0; i < kOrphanKeys; ++i) {
      if (i % 4 != 0) ASSERT_TRUE(db->Put(kept, OrphanTestKey("k", i), value + "2").ok());
    }
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_GE(db->SweepExpired(SIZE_MAX), size_t{kOrphanKeys / 4});
    const uint64_t compactions = db->Info().compactions;
    ASSERT_TRUE(db->Compact().ok());
    ASSERT_GT(db->Info().compactions, compactions);
  }  // a crash
  if (clock_back) SetClockOffsetForTesting(0);
  Instance db(opts);
  SetClockOffsetForTesting(0);
  ASSERT_TRUE(db.recover_status().ok()) << db.recover_status().ToString();
  ExpectKeptKeys(db, kept, value);
  // Expired for good, though the clock now reads before their expiry time.
  for (int i = 0; i < kOrphanKeys; i += 4) {
    std::string v;
    EXPECT_TRUE(db->Get(kept, OrphanTestKey("k", i), &v).IsNotFound()) << i;
  }
  // Nor counted: the entries recovery removed are not in the key counts.
  KeyspaceStats st;
  ASSERT_TRUE(db->GetKeyspaceStats(kept, &st).ok());
  EXPECT_EQ(st.keys, static_cast<uint64_t>(1500 + kOrphanKeys - kOrphanKeys / 4 +
                                           (below_horizon ? 1500 : 0)));
  EXPECT_EQ(st.expiring, 0u);
}

TEST(EngineCompaction, CheckpointedEntriesOfExpiredKeysDoNotBlockRecovery) {
  ExpireCompactAndCrash(/*clock_back=*/false);
}

TEST(EngineCompaction, AClockSteppedBackDoesNotBringExpiredKeysBackIntoRecovery) {
  ExpireCompactAndCrash(/*clock_back=*/true);
}

TEST(EngineCompaction, AClockSteppedBackDoesNotBringExpiredKeysBackBelowTheHorizon) {
  ExpireCompactAndCrash(/*clock_back=*/true, /*below_horizon=*/true);
}

// While the sweep removes a dropped keyspace's entries a step at a time, its segment is not read
// again at each step: once after the drop, once when they are all gone.
TEST(EngineCompaction, ADeferredSegmentWaitsForTheSweepToFinish) {
  TempDir dir;
  Instance db(OrphanTestOptions(dir.path()));
  const uint32_t doomed = test::MakeKeyspace(db.engine(), "doomed");
  const uint32_t kept = test::MakeKeyspace(db.engine(), "kept");
  const std::string value(1000, 'v');
  FillAroundDoomedKeyspace(db, kept, doomed, value, /*checkpoint_first=*/false,
                           /*with_deletes=*/true);
  ASSERT_TRUE(db->DropKeyspace(doomed).ok());
  ASSERT_TRUE(db->Flush().ok());
  ASSERT_TRUE(db->Compact().ok());
  int reread = 0;
  for (int step = 0; step < 1000; ++step) {
    const size_t removed = db->SweepExpired(64);
    const uint64_t moved = db->Info().compaction_bytes_moved;
    const uint64_t compactions = db->Info().compactions;
    ASSERT_TRUE(db->Compact().ok());
    // A pass that moved bytes without deleting a segment read a deferred one again for nothing.
    if (db->Info().compaction_bytes_moved > moved && db->Info().compactions == compactions)
      ++reread;
    if (removed == 0 && step > 100) break;
  }
  EXPECT_EQ(reread, 0);
  ExpectKeptKeys(db, kept, value);
}

}  // namespace
}  // namespace eloqkv
