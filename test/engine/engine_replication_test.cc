// Replication hooks: a primary hands every logical batch to its host's log in sequence order,
// and a standby that applies those batches ends up with the same keys, values, sequence numbers
// and keyspaces. Gaps, replays and aborted transactions are refused or absorbed as documented.
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/status.h"
#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

struct Logged {
  std::string records;
  uint64_t first_seq;
  uint32_t count;
};

// What a host log would hold: the batches, and where it was flushed to.
struct FakeHostLog {
  std::vector<Logged> batches;
  uint64_t flushed = 0;
  uint64_t flushes = 0;
  bool flushed_before_sync_ok = true;

  static uint64_t Append(void* ctx, const ReplicatedBatch& b) {
    auto* self = static_cast<FakeHostLog*>(ctx);
    self->batches.push_back({std::string(b.records), b.first_seq, b.count});
    return self->batches.size();  // position just past the entry
  }
  static void Flush(void* ctx, uint64_t position) {
    auto* self = static_cast<FakeHostLog*>(ctx);
    if (position > self->batches.size()) self->flushed_before_sync_ok = false;
    self->flushed = std::max(self->flushed, position);
    ++self->flushes;
  }
};

Options PrimaryOptions(const std::string& dir, FakeHostLog* host) {
  Options o = TestOptions(dir);
  o.replication_log = &FakeHostLog::Append;
  o.host_flush = &FakeHostLog::Flush;
  o.replication_context = host;
  return o;
}

// Applies everything the primary logged from batch `from` on; returns the next batch index.
size_t ApplyAll(Engine& standby, const FakeHostLog& host, size_t from = 0) {
  for (size_t i = from; i < host.batches.size(); ++i) {
    const Logged& b = host.batches[i];
    Status s = standby.ApplyReplicated({b.records, b.first_seq, b.count}, false, false);
    EXPECT_TRUE(s.ok()) << "batch " << i << ": " << s.ToString();
  }
  EXPECT_TRUE(standby.Flush().ok());
  return host.batches.size();
}

std::map<std::string, std::pair<std::string, uint64_t>> Contents(Engine& e, uint32_t ks) {
  std::map<std::string, std::pair<std::string, uint64_t>> out;
  auto it = e.NewIterator(ks, ScanOptions{});
  for (; it->Valid(); it->Next()) {
    std::string v;
    if (!it->value(&v).ok()) continue;
    ReadInfo info;
    EXPECT_TRUE(e.Probe(ks, it->key(), &info).ok());
    out[std::string(it->key())] = {v, info.seq};
  }
  EXPECT_TRUE(it->status().ok());
  return out;
}

TEST(EngineReplication, StandbyAppliesEveryLogicalBatchWithThePrimarysNumbers) {
  TempDir pdir, sdir;
  FakeHostLog host;
  Instance primary(PrimaryOptions(pdir.path(), &host));
  Instance standby(TestOptions(sdir.path()));

  const uint32_t users = test::MakeKeyspace(primary.engine(), "users");
  const uint32_t scratch = test::MakeKeyspace(primary.engine(), "scratch");
  for (int i = 0; i < 200; ++i)
    ASSERT_TRUE(primary->Put(users, "u" + std::to_string(i), "v" + std::to_string(i)).ok());
  ASSERT_TRUE(primary->Put(users, "ttl", "soon", NowMillis() + 3'600'000).ok());
  ASSERT_TRUE(primary->Delete(users, "u7").ok());
  {  // a batch with a check and a skipped condition: both take numbers as void records
    ReadInfo seen;
    ASSERT_TRUE(primary->Probe(users, "u2", &seen).ok());
    WriteBatch c;
    ASSERT_TRUE(c.Check(users, "u2", seen.seq).ok());
    ASSERT_TRUE(
        c.Put(users, "u1", "absent?", 0, WriteCondition::kIfAbsent, 0, OnConditionFailure::kSkip)
            .ok());
    ASSERT_TRUE(c.Put(users, "new", "yes").ok());
    WriteResult r;
    ASSERT_TRUE(primary->Write(c, &r).ok());
    EXPECT_FALSE(r.applied[1]);
  }
  ASSERT_TRUE(primary->Put(scratch, "a", "1").ok());
  ASSERT_TRUE(primary->TruncateKeyspace(scratch).ok());
  ASSERT_TRUE(primary->Put(scratch, "b", "2").ok());
  const uint32_t dropped = test::MakeKeyspace(primary.engine(), "dropped");
  ASSERT_TRUE(primary->Put(dropped, "x", "y").ok());
  ASSERT_TRUE(primary->DropKeyspace(dropped).ok());

  // Sequence numbers of consecutive batches are contiguous.
  for (size_t i = 1; i < host.batches.size(); ++i)
    EXPECT_EQ(host.batches[i].first_seq, host.batches[i - 1].first_seq + host.batches[i - 1].count)
        << "batch " << i;
  EXPECT_EQ(host.batches.back().first_seq + host.batches.back().count, primary->NextSequence());
  // The host log was flushed before the engine synced anything it holds.
  EXPECT_TRUE(host.flushed_before_sync_ok);
  EXPECT_EQ(host.flushed, host.batches.size());

  ApplyAll(standby.engine(), host);
  EXPECT_EQ(standby->NextSequence(), primary->NextSequence());
  uint32_t id = 0;
  ASSERT_TRUE(standby->FindKeyspace("users", &id).ok());
  EXPECT_EQ(id, users);
  ASSERT_TRUE(standby->FindKeyspace("scratch", &id).ok());
  EXPECT_EQ(id, scratch);
  EXPECT_TRUE(standby->FindKeyspace("dropped", &id).IsNotFound());
  EXPECT_EQ(Contents(standby.engine(), users), Contents(primary.engine(), users));
  EXPECT_EQ(Contents(standby.engine(), scratch), Contents(primary.engine(), scratch));
  EXPECT_EQ(Contents(standby.engine(), scratch).size(), 1u);
  std::string v;
  EXPECT_TRUE(standby->Get(users, "u7", &v).IsNotFound());
  ReadInfo info;
  ASSERT_TRUE(standby->Get(users, "ttl", &v, &info).ok());
  EXPECT_GT(info.expire_at_ms, NowMillis());

  // A replica takes no writes of its own; after promotion it does, and its keyspace ids go on
  // from the primary's.
  standby->SetReplica(true);
  Status s = standby->Put(users, "local", "write");
  EXPECT_TRUE(s.IsUnavailable()) << s.ToString();
  EXPECT_TRUE(standby->Get(users, "local", &v).IsNotFound());
  standby->SetReplica(false);
  ASSERT_TRUE(standby->Put(users, "local", "write").ok());
  uint32_t fresh = 0;
  ASSERT_TRUE(standby->CreateKeyspace("after_promotion", &fresh).ok());
  EXPECT_GT(fresh, dropped);
}

TEST(EngineReplication, ReplaysGapsAndAbortsAreHandledAsDocumented) {
  TempDir pdir, sdir;
  FakeHostLog host;
  Instance primary(PrimaryOptions(pdir.path(), &host));
  Instance standby(TestOptions(sdir.path()));
  const uint32_t ks = test::MakeKeyspace(primary.engine(), "t");
  ASSERT_TRUE(primary->Put(ks, "a", "1").ok());
  ASSERT_TRUE(primary->Put(ks, "b", "2").ok());
  ASSERT_TRUE(primary->Put(ks, "c", "3").ok());
  ASSERT_EQ(host.batches.size(), 4u);
  auto apply = [&](size_t i, bool discard, bool gap) {
    const Logged& b = host.batches[i];
    return standby->ApplyReplicated({b.records, b.first_seq, b.count}, discard, gap);
  };
  ASSERT_TRUE(apply(0, false, false).ok());
  ASSERT_TRUE(apply(1, false, false).ok());
  // Replayed twice: refused, nothing changes.
  Status s = apply(1, false, false);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.ToString().find("starts at sequence"), std::string::npos) << s.ToString();
  // Batch 2's transaction aborted: its numbers are used, its write is not.
  ASSERT_TRUE(apply(2, true, false).ok());
  std::string v;
  EXPECT_TRUE(standby->Get(ks, "b", &v).IsNotFound());
  EXPECT_EQ(standby->NextSequence(), host.batches[3].first_seq);
  // A gap is refused unless the caller accepts it.
  ASSERT_TRUE(primary->Put(ks, "d", "4").ok());
  ASSERT_EQ(host.batches.size(), 5u);
  s = apply(4, false, false);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ASSERT_TRUE(apply(4, false, true).ok());
  ASSERT_TRUE(standby->Get(ks, "d", &v).ok());
  EXPECT_EQ(v, "4");
  EXPECT_EQ(standby->NextSequence(), primary->NextSequence());
  // Malformed input changes nothing.
  const uint64_t before = standby->NextSequence();
  s = standby->ApplyReplicated(
      {"garbage that is not a record at all, forty bytes long.....", before, 1}, false, false);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  s = standby->ApplyReplicated({host.batches[4].records, before, 2}, false, false);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_EQ(standby->NextSequence(), before);
}

// The host's log carries a write once WriteOut returns; the engine's own sync can come later,
// and Retention() tells the host how much of its log to keep until then.
TEST(EngineReplication, WriteOutLeavesTheSyncForLaterAndRetentionTracksIt) {
  TempDir pdir, sdir;
  FakeHostLog host;
  Instance primary(PrimaryOptions(pdir.path(), &host));
  const uint32_t ks = test::MakeKeyspace(primary.engine(), "t");
  ASSERT_TRUE(primary->Put(ks, "synced", "1").ok());
  Engine::HostRetention r = primary->Retention();
  EXPECT_FALSE(r.pending);
  EXPECT_EQ(r.durable_host, host.batches.size());
  const uint64_t synced_host = r.durable_host;

  WriteResult last;
  for (int i = 0; i < 3; ++i) {
    WriteBatch b;
    ASSERT_TRUE(b.Put(ks, "k" + std::to_string(i), "v" + std::to_string(i)).ok());
    ASSERT_TRUE(primary->WriteDeferred(b, &last).ok());
  }
  r = primary->Retention();
  EXPECT_TRUE(r.pending);
  EXPECT_EQ(r.durable_host, synced_host);
  const uint64_t fsyncs = primary->Info().fsyncs;

  EXPECT_EQ(primary->HostWritten(), synced_host) << "staged, not yet in the files";
  ASSERT_TRUE(primary->WriteOut(last.end_lsn).ok());
  EXPECT_EQ(primary->HostWritten(), host.batches.size()) << "in the files, not yet synced";
  EXPECT_EQ(host.flushed, host.batches.size()) << "the host's log holds every write first";
  EXPECT_TRUE(host.flushed_before_sync_ok);
  EXPECT_EQ(primary->Info().fsyncs, fsyncs) << "WriteOut syncs no engine file";
  EXPECT_LT(primary->SyncedLsn(), last.end_lsn);
  r = primary->Retention();
  EXPECT_TRUE(r.pending) << "written, not durable: the host must keep its log";
  EXPECT_EQ(r.durable_host, synced_host);
  std::string v;
  ASSERT_TRUE(primary->Get(ks, "k2", &v).ok());
  EXPECT_EQ(v, "v2");

  ASSERT_TRUE(primary->SyncWritten().ok());
  EXPECT_GE(primary->SyncedLsn(), last.end_lsn);
  EXPECT_GT(primary->Info().fsyncs, fsyncs);
  r = primary->Retention();
  EXPECT_FALSE(r.pending);
  EXPECT_EQ(r.durable_host, host.batches.size());
  ASSERT_TRUE(primary->SyncWritten().ok()) << "nothing left to sync is not an error";

  // A standby counts the replay positions its host gave with each batch.
  Instance standby(TestOptions(sdir.path()));
  for (size_t i = 0; i < host.batches.size(); ++i) {
    const Logged& b = host.batches[i];
    ASSERT_TRUE(
        standby->ApplyReplicated({b.records, b.first_seq, b.count, 1000 + i}, false, false).ok());
  }
  r = standby->Retention();
  EXPECT_TRUE(r.pending);
  EXPECT_EQ(r.durable_host, 0u) << "nothing of the host's log is durable here yet";
  ASSERT_TRUE(standby->Flush().ok());
  r = standby->Retention();
  EXPECT_FALSE(r.pending);
  EXPECT_EQ(r.durable_host, 1000 + host.batches.size() - 1);
}

// Without the log buffer a written batch is in its file at once, whatever the sync policy says.
TEST(EngineReplication, HostWrittenFollowsWritesWithoutTheLogBuffer) {
  for (SyncPolicy policy : {SyncPolicy::kInterval, SyncPolicy::kOff}) {
    TempDir dir;
    test::CountingHostLog host;
    Options o = host.With(TestOptions(dir.path()));
    o.sync = policy;
    Instance primary(o);
    const uint32_t ks = test::MakeKeyspace(primary.engine(), "t");
    ASSERT_TRUE(primary->Put(ks, "k", "v").ok());
    EXPECT_EQ(primary->HostWritten(), host.appended.load()) << SyncPolicyName(policy);
  }
}

// A write the files refuse (here: past the file size limit) fails the write path, which the host
// can see without a message: it then stops waiting for the engine to hold what it logged.
TEST(EngineReplication, AFailedWriteIsVisibleAndHostWrittenStops) {
  TempDir dir;
  test::CountingHostLog host;
  Options o = host.With(TestOptions(dir.path()));
  o.sync = SyncPolicy::kOff;  // each batch goes to its file at once
  Instance primary(o);
  const uint32_t ks = test::MakeKeyspace(primary.engine(), "t");
  ASSERT_TRUE(primary->Put(ks, "before", "v").ok());
  EXPECT_FALSE(primary->writes_failed());
  const uint64_t written = primary->HostWritten();

  rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit tiny = old;
  tiny.rlim_cur = 1;  // every write lands past it
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tiny), 0);
  const Status s = primary->Put(ks, "refused", std::string(100, 'x'));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, previous);

  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(primary->writes_failed());
  EXPECT_EQ(primary->HostWritten(), written) << "the refused batch is not in the files";
  EXPECT_GT(host.appended.load(), written) << "though the host logged it";
}

// Write-outs, syncs behind them and ordinary group commits at once: every write is kept, the
// engine catches up, and after a crash every write some caller was told about is there.
TEST(EngineReplication, WriteOutsSyncsAndGroupCommitsRunTogether) {
  TempDir dir;
  test::CountingHostLog host;
  const Options o = host.With(TestOptions(dir.path()));
  constexpr int kPerThread = 1500;
  {
    Instance primary(o);
    const uint32_t ks = test::MakeKeyspace(primary.engine(), "t");
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int w = 0; w < 2; ++w) {  // writers that wait for their own sync
      threads.emplace_back([&, w] {
        std::unique_ptr<Engine> e = primary.AttachAnother();
        for (int i = 0; i < kPerThread; ++i)
          ASSERT_TRUE(e->Put(ks, "g" + std::to_string(w) + ":" + std::to_string(i), "v").ok());
      });
    }
    threads.emplace_back([&] {  // a RESP loop: writes, then writes out, never syncs itself
      std::unique_ptr<Engine> e = primary.AttachAnother();
      for (int i = 0; i < kPerThread; ++i) {
        WriteBatch b;
        ASSERT_TRUE(b.Put(ks, "o:" + std::to_string(i), "v").ok());
        WriteResult r;
        ASSERT_TRUE(e->WriteDeferred(b, &r).ok());
        if (i % 7 == 0 || i == kPerThread - 1) ASSERT_TRUE(e->WriteOut(r.end_lsn).ok());
      }
    });
    std::thread syncer([&] {  // the RESP loop's sync thread
      std::unique_ptr<Engine> e = primary.AttachAnother();
      while (!stop.load()) ASSERT_TRUE(e->SyncWritten().ok());
    });
    for (std::thread& t : threads) t.join();
    stop.store(true);
    syncer.join();
    ASSERT_TRUE(primary->SyncWritten().ok());
    const Engine::HostRetention r = primary->Retention();
    EXPECT_FALSE(r.pending);
    EXPECT_EQ(r.durable_host, host.appended.load());
    EXPECT_EQ(host.flushed.load(), host.appended.load());
  }  // no shutdown: a crash
  Instance again(o);
  uint32_t ks = 0;
  ASSERT_TRUE(again->FindKeyspace("t", &ks).ok());
  std::string v;
  for (int i = 0; i < kPerThread; ++i) {
    ASSERT_TRUE(again->Get(ks, "g0:" + std::to_string(i), &v).ok()) << i;
    ASSERT_TRUE(again->Get(ks, "g1:" + std::to_string(i), &v).ok()) << i;
    ASSERT_TRUE(again->Get(ks, "o:" + std::to_string(i), &v).ok()) << i;
  }
}

TEST(EngineReplication, CompactionTakesNoNumbersAndRestartsKeepThem) {
  TempDir pdir, sdir;
  FakeHostLog host;
  Options po = PrimaryOptions(pdir.path(), &host);
  po.segment_size = size_t{1} << 20;
  Options so = TestOptions(sdir.path());
  so.segment_size = size_t{1} << 20;
  uint32_t ks = 0;
  uint64_t primary_next = 0;
  {
    Instance primary(po);
    ks = test::MakeKeyspace(primary.engine(), "t");
    const std::string big(4000, 'x');
    for (int round = 0; round < 3; ++round)
      for (int i = 0; i < 600; ++i)
        ASSERT_TRUE(primary->Put(ks, "k" + std::to_string(i), big + std::to_string(round)).ok());
    const uint64_t before = primary->NextSequence();
    ASSERT_TRUE(primary->Compact().ok());
    EXPECT_GT(primary->Info().compactions, 0u);
    EXPECT_EQ(primary->NextSequence(), before);
    ASSERT_TRUE(primary->Flush().ok());
    primary_next = primary->NextSequence();
  }  // a crash
  {
    Instance primary(po);
    EXPECT_EQ(primary->NextSequence(), primary_next);
    ASSERT_TRUE(primary->Put(ks, "after", "restart").ok());
    EXPECT_EQ(host.batches.back().first_seq, primary_next);
  }
  // A standby that crashes after applying part of the log resumes at the right number.
  size_t half = host.batches.size() / 2;
  uint64_t resume = 0;
  {
    Instance standby(so);
    for (size_t i = 0; i < half; ++i) {
      const Logged& b = host.batches[i];
      ASSERT_TRUE(standby->ApplyReplicated({b.records, b.first_seq, b.count}, false, false).ok());
    }
    ASSERT_TRUE(standby->Compact().ok());
    ASSERT_TRUE(standby->Flush().ok());
    resume = standby->NextSequence();
    EXPECT_EQ(resume, host.batches[half].first_seq);
  }
  {
    Instance standby(so);
    EXPECT_EQ(standby->NextSequence(), resume);
    ApplyAll(standby.engine(), host, half);
    std::string v;
    ASSERT_TRUE(standby->Get(ks, "after", &v).ok());
    ASSERT_TRUE(standby->Get(ks, "k599", &v).ok());
    EXPECT_EQ(v, std::string(4000, 'x') + "2");
    EXPECT_EQ(standby->Info().keys, 601u);
  }
}

TEST(EngineReplication, HeldFilesAreNeitherCompactedNorCheckpointed) {
  TempDir dir;
  Options o = TestOptions(dir.path());
  o.segment_size = size_t{1} << 20;
  o.checkpoint_log_bytes = size_t{1} << 20;
  Instance db(o);
  const uint32_t ks = test::MakeKeyspace(db.engine(), "t");
  const std::string big(4000, 'x');
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), big).ok());
  db->HoldFiles(true);
  const EngineInfo before = db->Info();
  Status s = db->Compact();
  EXPECT_TRUE(s.IsUnavailable()) << s.ToString();
  EXPECT_NE(s.ToString().find("base backup"), std::string::npos) << s.ToString();
  EXPECT_TRUE(db->Checkpoint().IsUnavailable());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(db->Tick().ok());
  ASSERT_TRUE(db->Put(ks, "during", "the hold").ok());  // writes go on
  const EngineInfo held = db->Info();
  EXPECT_EQ(held.compactions, before.compactions);
  EXPECT_EQ(held.checkpoints, before.checkpoints);
  EXPECT_GE(held.segments, before.segments);
  db->HoldFiles(false);
  ASSERT_TRUE(db->Compact().ok());
  EXPECT_GT(db->Info().compactions, before.compactions);
  ASSERT_TRUE(db->Checkpoint().ok());
}

// The maintenance worker's hold (pg_basebackup) and the sessions' counted holds
// (pg_backup_start) never release one another.
TEST(EngineReplication, WatchedAndCountedFileHoldsAreKeptApart) {
  TempDir dir;
  Instance db(TestOptions(dir.path()));
  db->AddFileHold();
  db->HoldFiles(true);
  db->HoldFiles(false);  // pg_basebackup ended; a session's backup goes on
  EXPECT_TRUE(db->files_held());
  EXPECT_FALSE(db->files_hold_set());
  EXPECT_TRUE(db->Checkpoint().IsUnavailable());
  db->AddFileHold();
  db->ReleaseFileHold();
  EXPECT_TRUE(db->files_held());
  db->HoldFiles(true);
  db->ReleaseFileHold();  // the last session ended; pg_basebackup goes on
  EXPECT_TRUE(db->files_held());
  EXPECT_TRUE(db->files_hold_set());
  db->HoldFiles(false);
  EXPECT_FALSE(db->files_held());
  EXPECT_TRUE(db->Checkpoint().ok());
}

// A session-level backup (pg_backup_start) takes the hold while compaction may be mid-step:
// once HoldFiles returns, no file is deleted any more.
TEST(EngineReplication, HoldFilesWaitsOutARunningCompaction) {
  TempDir dir;
  Options o = TestOptions(dir.path());
  o.segment_size = size_t{1} << 20;
  Instance db(o);
  const uint32_t ks = test::MakeKeyspace(db.engine(), "t");
  const std::string big(4000, 'x');
  for (int round = 0; round < 6; ++round)
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), big).ok());
  Status compacted;
  std::thread compactor([&] { compacted = db->Compact(); });
  while (db->Info().compactions == 0) std::this_thread::yield();  // it is under way
  db->AddFileHold();
  const EngineInfo held = db->Info();
  compactor.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(db->Info().compactions, held.compactions);
  EXPECT_EQ(db->Info().segments, held.segments);
  EXPECT_TRUE(compacted.ok() || compacted.IsUnavailable()) << compacted.ToString();
  db->ReleaseFileHold();
  for (int i = 0; i < 600; ++i) {
    std::string v;
    ASSERT_TRUE(db->Get(ks, "k" + std::to_string(i), &v).ok());
    ASSERT_EQ(v, big);
  }
}

}  // namespace
}  // namespace eloqkv
