// The engine's API contract in one process: reads, writes, conditions, limits, keyspaces, TTL,
// iteration, multi-get and durability across restarts.
#include <thread>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::MakeKeyspace;
using test::TempDir;
using test::TestOptions;

class EngineTest : public ::testing::Test {
 protected:
  TempDir dir_;
  Options opts_ = TestOptions(dir_.path());
};

TEST_F(EngineTest, PutGetDeleteAndOverwrite) {
  Instance db(opts_);
  ASSERT_EQ(db->state(), EngineState::kReady);
  const uint32_t ks = MakeKeyspace(db.engine(), "users");
  std::string v;
  EXPECT_TRUE(db->Get(ks, "a", &v).IsNotFound());
  ASSERT_TRUE(db->Put(ks, "a", "one").ok());
  ASSERT_TRUE(db->Get(ks, "a", &v).ok());
  EXPECT_EQ(v, "one");
  ASSERT_TRUE(db->Put(ks, "a", "two").ok());
  ASSERT_TRUE(db->Get(ks, "a", &v).ok());
  EXPECT_EQ(v, "two");
  ASSERT_TRUE(db->Put(ks, "", "empty key").ok());
  ASSERT_TRUE(db->Get(ks, "", &v).ok());
  EXPECT_EQ(v, "empty key");
  const std::string binary("nul\0key", 7);
  ASSERT_TRUE(db->Put(ks, binary, "").ok());
  ASSERT_TRUE(db->Get(ks, binary, &v).ok());
  EXPECT_EQ(v, "");
  EXPECT_TRUE(db->Get(ks, "nul", &v).IsNotFound());
  ASSERT_TRUE(db->Delete(ks, "a").ok());
  EXPECT_TRUE(db->Get(ks, "a", &v).IsNotFound());
  ASSERT_TRUE(db->Delete(ks, "never existed").ok());
  KeyspaceStats st;
  ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
  EXPECT_EQ(st.keys, 2u);
  EXPECT_EQ(st.name, "users");
  EXPECT_GE(st.writes, 4u);
  EXPECT_EQ(st.deletes, 2u);
}

TEST_F(EngineTest, ReadsComeFromCacheOrExactlyOneDeviceRead) {
  opts_.cache_memory = size_t{1} << 20;  // small: most values fall out
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), test::Value(rng, 4096)).ok());
  std::string v;
  ReadInfo info;
  ASSERT_TRUE(db->Get(ks, "k1999", &v, &info).ok());
  EXPECT_EQ(info.cache_hits + info.device_reads, 1u);
  ReadInfo cold;
  ASSERT_TRUE(db->Get(ks, "k0", &v, &cold).ok());  // written first: evicted by now
  EXPECT_EQ(cold.device_reads, 1u);
  EXPECT_EQ(cold.cache_hits, 0u);
  EXPECT_EQ(v.size(), 4096u);
  ReadInfo warm;
  ASSERT_TRUE(db->Get(ks, "k0", &v, &warm).ok());  // the cold read cached it
  EXPECT_EQ(warm.cache_hits, 1u);
  EXPECT_EQ(warm.device_reads, 0u);

  // Without a value to fill, a read says whether the key is there, from the cache or the device.
  ReadInfo exists;
  EXPECT_TRUE(db->Get(ks, "k0", nullptr, &exists).ok());
  EXPECT_EQ(exists.cache_hits, 1u);
  EXPECT_TRUE(db->Get(ks, "k1", nullptr, &exists).ok());
  EXPECT_EQ(exists.device_reads, 1u);
  EXPECT_TRUE(db->Get(ks, "k2000", nullptr).IsNotFound());
}

// Overwrites leave dead copies in the cache ring; live values written once and never read must
// not be evicted in their place while the live data set fits.
TEST_F(EngineTest, LiveDataSmallerThanTheCacheSurvivesHeavyOverwrites) {
  opts_.cache_memory = size_t{4} << 20;
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  std::mt19937_64 rng(5);
  // 1 MiB of live values, never read back...
  for (int i = 0; i < 256; ++i)
    ASSERT_TRUE(db->Put(ks, "cold" + std::to_string(i), test::Value(rng, 4096)).ok());
  // ...then 40 MiB (10x the cache) of overwrites of a few hot keys.
  for (int i = 0; i < 10240; ++i)
    ASSERT_TRUE(db->Put(ks, "hot" + std::to_string(i % 16), test::Value(rng, 4096)).ok());
  uint64_t hits = 0;
  std::string v;
  for (int i = 0; i < 256; ++i) {
    ReadInfo info;
    ASSERT_TRUE(db->Get(ks, "cold" + std::to_string(i), &v, &info).ok());
    hits += info.cache_hits;
  }
  // An insert moves at most 32 live items, so a longer run of them at the tail loses about one
  // per insert the first time round (without retention, none would be left).
  EXPECT_GE(hits, 256u * 9 / 10);
}

// When the live data set is larger than the cache, values read lately are the ones kept.
TEST_F(EngineTest, ReadValuesAreKeptWhenTheLiveSetExceedsTheCache) {
  opts_.cache_memory = size_t{2} << 20;
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  std::mt19937_64 rng(6);
  std::string v;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 1024; ++i)  // 4 MiB of live values per round, 2x the cache
      ASSERT_TRUE(db->Put(ks, "k" + std::to_string(round * 1024 + i), test::Value(rng, 4096)).ok());
    for (int i = 0; i < 32; ++i) ASSERT_TRUE(db->Get(ks, "hot" + std::to_string(i), &v).ok() ||
                                             db->Put(ks, "hot" + std::to_string(i), test::Value(rng, 4096)).ok());
  }
  uint64_t hits = 0;
  for (int i = 0; i < 32; ++i) {
    ReadInfo info;
    ASSERT_TRUE(db->Get(ks, "hot" + std::to_string(i), &v, &info).ok());
    hits += info.cache_hits;
  }
  EXPECT_EQ(hits, 32u);
}

TEST_F(EngineTest, PrefetchReadsOnlyUncachedKeysAndTheReadsThenHit) {
  opts_.cache_memory = size_t{1} << 20;
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  std::mt19937_64 rng(7);
  std::vector<std::string> values;
  for (int i = 0; i < 1024; ++i) {  // 4 MiB through a 1 MiB cache: the first keys fall out
    values.push_back(test::Value(rng, 4096));
    ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), values.back()).ok());
  }
  const std::vector<std::string> names = {"k0", "k1", "k2", "missing", "k1023"};
  std::vector<std::string_view> keys(names.begin(), names.end());
  // k0..k2 are cold; "missing" does not exist; k1023 was written last and is cached.
  // The shallower depths only touch memory: no device read, nothing cached.
  EXPECT_EQ(db->Prefetch(ks, keys, Engine::PrefetchDepth::kIndex), 0u);
  EXPECT_EQ(db->Prefetch(ks, keys, Engine::PrefetchDepth::kMemory), 0u);
  EXPECT_EQ(db->Prefetch(ks, keys), 3u);
  for (int i = 0; i < 3; ++i) {
    std::string v;
    ReadInfo info;
    ASSERT_TRUE(db->Get(ks, names[i], &v, &info).ok());
    EXPECT_EQ(info.cache_hits, 1u) << names[i];
    EXPECT_EQ(info.device_reads, 0u) << names[i];
    EXPECT_EQ(v, values[i]);
  }
  EXPECT_EQ(db->Prefetch(ks, keys), 0u);  // all cached now
  EXPECT_EQ(db->Prefetch(ks + 1000, keys), 0u);  // no such keyspace: nothing, no error
}

// More deferred writes in flight than the log has commit slots (4096), none synced yet: every
// one must reach its file when the sync comes, and survive a crash. (A slot used to be reused
// once its piece was staged, before the flusher wrote it: that piece was never written.)
TEST_F(EngineTest, DeferredWritesBeyondTheCommitRingAreAllWritten) {
  opts_.sync = SyncPolicy::kAlways;
  std::vector<std::string> values;
  {
    Instance db(opts_);
    const uint32_t ks = MakeKeyspace(db.engine(), "t");
    std::mt19937_64 rng(9);
    uint64_t last = 0;
    for (int i = 0; i < 10000; ++i) {
      values.push_back(test::Value(rng, 100));
      WriteBatch b;
      ASSERT_TRUE(b.Put(ks, "k" + std::to_string(i), values.back()).ok());
      WriteResult r;
      ASSERT_TRUE(db->WriteDeferred(b, &r).ok()) << i;
      last = r.end_lsn;
    }
    ASSERT_TRUE(db->SyncTo(last).ok());
  }  // a crash
  Instance db(opts_);
  uint32_t ks = 0;
  ASSERT_TRUE(db->FindKeyspace("t", &ks).ok());
  for (int i = 0; i < 10000; ++i) {
    std::string v;
    ASSERT_TRUE(db->Get(ks, "k" + std::to_string(i), &v).ok()) << i;
    ASSERT_EQ(v, values[i]) << i;
  }
}

TEST_F(EngineTest, ConditionsAreCheckedAtomicallyWithTheWrite) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  WriteBatch ins;
  ASSERT_TRUE(ins.Put(ks, "k", "v1", 0, WriteCondition::kIfAbsent).ok());
  ASSERT_TRUE(db->Write(ins).ok());
  // A batch whose second op fails its condition applies nothing.
  WriteBatch b;
  ASSERT_TRUE(b.Put(ks, "other", "x").ok());
  ASSERT_TRUE(b.Put(ks, "k", "v2", 0, WriteCondition::kIfAbsent).ok());
  WriteResult r;
  Status s = db->Write(b, &r);
  EXPECT_TRUE(s.IsKeyExists()) << s.ToString();
  EXPECT_EQ(r.failed_op, 1u);
  std::string v;
  EXPECT_TRUE(db->Get(ks, "other", &v).IsNotFound());
  ASSERT_TRUE(db->Get(ks, "k", &v).ok());
  EXPECT_EQ(v, "v1");
  // Skip-on-conflict (INSERT ... ON CONFLICT DO NOTHING) applies the rest.
  WriteBatch skip;
  ASSERT_TRUE(skip.Put(ks, "k", "v3", 0, WriteCondition::kIfAbsent, 0, OnConditionFailure::kSkip).ok());
  ASSERT_TRUE(skip.Put(ks, "new", "n", 0, WriteCondition::kIfAbsent, 0, OnConditionFailure::kSkip).ok());
  ASSERT_TRUE(db->Write(skip, &r).ok());
  EXPECT_EQ(r.applied, (std::vector<bool>{false, true}));
  ASSERT_TRUE(db->Get(ks, "k", &v).ok());
  EXPECT_EQ(v, "v1");
  // Compare-and-set on the sequence number.
  ReadInfo info;
  ASSERT_TRUE(db->Get(ks, "k", &v, &info).ok());
  WriteBatch cas;
  ASSERT_TRUE(cas.Put(ks, "k", "v4", 0, WriteCondition::kIfSeq, info.seq).ok());
  ASSERT_TRUE(db->Write(cas).ok());
  WriteBatch stale;
  ASSERT_TRUE(stale.Put(ks, "k", "v5", 0, WriteCondition::kIfSeq, info.seq).ok());
  EXPECT_EQ(db->Write(stale).code(), Status::Code::kConditionFailed);
  ASSERT_TRUE(db->Get(ks, "k", &v).ok());
  EXPECT_EQ(v, "v4");
  // A Check validates a read without writing: the batch applies only if nothing changed.
  ASSERT_TRUE(db->Get(ks, "k", &v, &info).ok());
  const EngineInfo before_check = db->Info();
  WriteBatch checked;
  ASSERT_TRUE(checked.Check(ks, "k", info.seq).ok());
  ASSERT_TRUE(checked.Check(ks, "never-written", 0).ok());
  ASSERT_TRUE(checked.Put(ks, "derived", "from-v4").ok());
  ASSERT_TRUE(db->Write(checked).ok());
  ASSERT_TRUE(db->Get(ks, "derived", &v).ok());
  EXPECT_EQ(v, "from-v4");
  ReadInfo after;
  ASSERT_TRUE(db->Get(ks, "k", &v, &after).ok());
  EXPECT_EQ(after.seq, info.seq) << "a check does not rewrite the key";
  EXPECT_EQ(db->Info().keys, before_check.keys + 1);
  WriteBatch stale_check;
  ASSERT_TRUE(stale_check.Check(ks, "derived", 1).ok());
  ASSERT_TRUE(stale_check.Put(ks, "derived", "lost").ok());
  WriteResult check_result;
  EXPECT_EQ(db->Write(stale_check, &check_result).code(), Status::Code::kConditionFailed);
  EXPECT_EQ(check_result.failed_op, 0u);
  ASSERT_TRUE(db->Get(ks, "derived", &v).ok());
  EXPECT_EQ(v, "from-v4");
  // Update-only on a missing key.
  WriteBatch upd;
  ASSERT_TRUE(upd.Put(ks, "missing", "x", 0, WriteCondition::kIfPresent).ok());
  EXPECT_EQ(db->Write(upd).code(), Status::Code::kConditionFailed);
  EXPECT_TRUE(db->Get(ks, "missing", &v).IsNotFound());
  // Within one batch, earlier ops count: insert then insert again fails the batch.
  WriteBatch twice;
  ASSERT_TRUE(twice.Put(ks, "dup", "1", 0, WriteCondition::kIfAbsent).ok());
  ASSERT_TRUE(twice.Put(ks, "dup", "2", 0, WriteCondition::kIfAbsent).ok());
  EXPECT_TRUE(db->Write(twice).IsKeyExists());
  EXPECT_TRUE(db->Get(ks, "dup", &v).IsNotFound());
}

// WATCH of a missing key: creating and deleting it again, or letting a new key expire, is a
// change, which Check(..., 0) cannot see; what happened before the watch is not.
TEST_F(EngineTest, AnAbsentKeyCheckSeesEveryWriteSinceItsWatch) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  auto absent_since = [&](std::string_view key, uint64_t since) {
    WriteBatch b;
    EXPECT_TRUE(b.CheckAbsentSince(ks, key, since).ok());
    EXPECT_TRUE(b.Put(ks, "witness", std::to_string(since)).ok());
    return db->Write(b);
  };
  auto probe_seq = [&](std::string_view key) {
    ReadInfo info;
    info.seq = 77;
    EXPECT_TRUE(db->Probe(ks, key, &info).IsNotFound());
    return info.seq;
  };
  ASSERT_TRUE(db->Put(ks, "deleted-before", "x").ok());
  ASSERT_TRUE(db->Delete(ks, "deleted-before").ok());
  ASSERT_TRUE(db->Put(ks, "expired-before", "x", NowMillis() - 1).ok());
  ASSERT_TRUE(db->Put(ks, "present", "x").ok());
  const uint64_t since = db->PublishedSequence();
  EXPECT_EQ(since, db->NextSequence()) << "no write is under way";
  EXPECT_EQ(probe_seq("never"), 0u);
  EXPECT_GT(probe_seq("deleted-before"), 0u) << "a delete's entry carries its number";
  EXPECT_LT(probe_seq("deleted-before"), since);
  EXPECT_TRUE(absent_since("never", since).ok());
  EXPECT_TRUE(absent_since("deleted-before", since).ok());
  EXPECT_TRUE(absent_since("expired-before", since).ok());
  WriteResult failed;
  {
    WriteBatch b;
    ASSERT_TRUE(b.CheckAbsentSince(ks, "present", since).ok());
    ASSERT_TRUE(b.Put(ks, "witness", "lost").ok());
    EXPECT_EQ(db->Write(b, &failed).code(), Status::Code::kConditionFailed);
    EXPECT_EQ(failed.failed_op, 0u);
  }
  // Created and deleted again after the watch: absent as before, but touched.
  const uint64_t watch = db->PublishedSequence();
  ASSERT_TRUE(db->Put(ks, "aba", "x").ok());
  ASSERT_TRUE(db->Delete(ks, "aba").ok());
  ASSERT_TRUE(db->Put(ks, "short", "x", NowMillis() + 50).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_GE(probe_seq("aba"), watch);
  EXPECT_EQ(absent_since("aba", watch).code(), Status::Code::kConditionFailed);
  {
    WriteBatch plain;
    ASSERT_TRUE(plain.Check(ks, "aba", 0).ok());
    EXPECT_TRUE(db->Write(plain).ok()) << "the plain check is blind to it";
  }
  EXPECT_EQ(absent_since("short", watch).code(), Status::Code::kConditionFailed);
  std::string v;
  ASSERT_TRUE(db->Get(ks, "witness", &v).ok());
  EXPECT_EQ(v, std::to_string(since)) << "a failed check wrote nothing";
  // Once swept, the entries are forgotten: a check from before their numbers fails (it cannot
  // tell), one from after them passes.
  const uint64_t forgotten_before = db->ForgottenSequence(ks, "aba");
  ASSERT_TRUE(db->Flush().ok());
  db->SweepExpired(1000000);
  EXPECT_GE(db->ForgottenSequence(ks, "aba"), watch);
  EXPECT_GT(db->ForgottenSequence(ks, "aba"), forgotten_before);
  EXPECT_EQ(probe_seq("aba"), 0u);
  EXPECT_EQ(absent_since("aba", watch).code(), Status::Code::kConditionFailed);
  EXPECT_TRUE(absent_since("never", watch).ok())
      << "another key's forgotten entry fails only the checks of keys in its slot";
  EXPECT_TRUE(absent_since("aba", db->PublishedSequence()).ok());
}

TEST_F(EngineTest, AReaderThatDefersItsReplyReadsUnsyncedWritesWithoutSyncing) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "hot");
  ASSERT_TRUE(db->Put(ks, "k", "v0").ok());
  WriteBatch b;
  ASSERT_TRUE(b.Put(ks, "k", "v1").ok());
  WriteResult w;
  ASSERT_TRUE(db->WriteDeferred(b, &w).ok());
  const uint64_t fsyncs = db->Info().fsyncs;
  ASSERT_LT(db->Info().durable_lsn, w.end_lsn);  // nobody synced the deferred write yet

  // A deferring reader sees the new value, learns what it depends on, and syncs nothing.
  ReadInfo info;
  info.unsynced_ok = true;
  std::string v;
  ASSERT_TRUE(db->Get(ks, "k", &v, &info).ok());
  EXPECT_EQ(v, "v1");
  EXPECT_EQ(info.depends_on_lsn, w.end_lsn);
  ReadInfo probe;
  probe.unsynced_ok = true;
  ASSERT_TRUE(db->Probe(ks, "k", &probe).ok());
  EXPECT_EQ(probe.seq, info.seq);
  EXPECT_EQ(probe.depends_on_lsn, w.end_lsn);
  EXPECT_EQ(db->Info().fsyncs, fsyncs);
  EXPECT_LT(db->Info().durable_lsn, w.end_lsn);

  // Any other reader makes the write durable before it sees it.
  ReadInfo plain;
  ASSERT_TRUE(db->Get(ks, "k", &v, &plain).ok());
  EXPECT_EQ(v, "v1");
  EXPECT_EQ(plain.depends_on_lsn, 0u);
  EXPECT_GE(db->Info().durable_lsn, w.end_lsn);

  // Once durable, a deferring reader depends on nothing.
  ReadInfo after;
  after.unsynced_ok = true;
  ASSERT_TRUE(db->Get(ks, "k", &v, &after).ok());
  EXPECT_EQ(after.depends_on_lsn, 0u);
}

TEST_F(EngineTest, OversizeAndMalformedInputIsRefusedAndChangesNothing) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  std::string v;
  Status s = db->Put(ks, std::string(kMaxKeySize + 1, 'k'), "v");
  EXPECT_EQ(s.code(), Status::Code::kTooLarge);
  EXPECT_NE(s.message().find("limit is 4096"), std::string::npos) << s.message();
  s = db->Put(ks, "k", std::string(kMaxValueSize + 1, 'v'));
  EXPECT_EQ(s.code(), Status::Code::kTooLarge);
  EXPECT_EQ(db->Put(0, "k", "v").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(db->Put(ks, "k", "v", -5).code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(db->Put(ks + 100, "k", "v").IsNotFound());
  KeyspaceStats st;
  ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
  EXPECT_EQ(st.keys, 0u);
  // The limits themselves are accepted.
  ASSERT_TRUE(db->Put(ks, std::string(kMaxKeySize, 'k'), std::string(kMaxValueSize, 'v')).ok());
  ASSERT_TRUE(db->Get(ks, std::string(kMaxKeySize, 'k'), &v).ok());
  EXPECT_EQ(v.size(), kMaxValueSize);
}

TEST_F(EngineTest, KeyspacesAreIndependentAndTruncateAndDropAreImmediate) {
  Instance db(opts_);
  const uint32_t a = MakeKeyspace(db.engine(), "a");
  const uint32_t b = MakeKeyspace(db.engine(), "b");
  uint32_t dup;
  EXPECT_TRUE(db->CreateKeyspace("a", &dup).IsKeyExists());
  EXPECT_EQ(db->CreateKeyspace("", &dup).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(db->CreateKeyspace(std::string(kMaxKeyspaceNameSize + 1, 'n'), &dup).code(),
            Status::Code::kInvalidArgument);
  uint32_t found;
  ASSERT_TRUE(db->FindKeyspace("b", &found).ok());
  EXPECT_EQ(found, b);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(db->Put(a, "k" + std::to_string(i), "a").ok());
    ASSERT_TRUE(db->Put(b, "k" + std::to_string(i), "b").ok());
  }
  std::string v;
  ASSERT_TRUE(db->Get(a, "k5", &v).ok());
  EXPECT_EQ(v, "a");
  ASSERT_TRUE(db->TruncateKeyspace(a).ok());
  EXPECT_TRUE(db->Get(a, "k5", &v).IsNotFound());
  ASSERT_TRUE(db->Get(b, "k5", &v).ok());
  KeyspaceStats st;
  ASSERT_TRUE(db->GetKeyspaceStats(a, &st).ok());
  EXPECT_EQ(st.keys, 0u);
  ASSERT_TRUE(db->Put(a, "k5", "again").ok());
  ASSERT_TRUE(db->Get(a, "k5", &v).ok());
  EXPECT_EQ(v, "again");
  ASSERT_TRUE(db->DropKeyspace(b).ok());
  EXPECT_TRUE(db->Get(b, "k5", &v).IsNotFound());
  EXPECT_TRUE(db->Put(b, "x", "y").IsNotFound());
  EXPECT_TRUE(db->FindKeyspace("b", &found).IsNotFound());
  // The name is free again, with a new id.
  const uint32_t b2 = MakeKeyspace(db.engine(), "b");
  EXPECT_NE(b2, b);
  EXPECT_TRUE(db->Get(b2, "k5", &v).IsNotFound());
  // The sweep removes what truncate and drop left behind.
  EXPECT_GE(db->SweepExpired(1000000), 199u);
}

TEST_F(EngineTest, ATruncateInsideABatchIsAtomicWithTheWritesAfterIt) {
  std::string v;
  uint32_t ks;
  {
    Instance db(opts_);
    ks = MakeKeyspace(db.engine(), "t");
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(db->Put(ks, "old" + std::to_string(i), "x").ok());
    WriteBatch b;
    ASSERT_TRUE(b.TruncateKeyspace(ks, "t").ok());
    ASSERT_TRUE(b.Put(ks, "new", "y").ok());
    ASSERT_TRUE(db->Write(b).ok());
    EXPECT_TRUE(db->Get(ks, "old7", &v).IsNotFound());
    ASSERT_TRUE(db->Get(ks, "new", &v).ok());
    KeyspaceStats st;
    ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
    EXPECT_EQ(st.keys, 1u);
    WriteBatch bad;
    ASSERT_TRUE(bad.TruncateKeyspace(ks + 50, "nope").ok());
    ASSERT_TRUE(bad.Put(ks, "never", "z").ok());
    EXPECT_TRUE(db->Write(bad).IsNotFound());
    EXPECT_TRUE(db->Get(ks, "never", &v).IsNotFound());
  }
  Instance db(opts_);
  EXPECT_TRUE(db->Get(ks, "old7", &v).IsNotFound());
  ASSERT_TRUE(db->Get(ks, "new", &v).ok());
  EXPECT_TRUE(db->KeyspaceExists(ks));
  EXPECT_FALSE(db->KeyspaceExists(ks + 50));
}

TEST_F(EngineTest, ExpiredKeysAreInvisibleAtOnceAndSweptLater) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  const int64_t soon = NowMillis() + 150;
  ASSERT_TRUE(db->Put(ks, "short", "lived", soon).ok());
  ASSERT_TRUE(db->Put(ks, "long", "lived", NowMillis() + 3'600'000).ok());
  ASSERT_TRUE(db->Put(ks, "past", "gone", NowMillis() - 1).ok());
  std::string v;
  ReadInfo info;
  ASSERT_TRUE(db->Get(ks, "short", &v, &info).ok());
  EXPECT_EQ(info.expire_at_ms, soon);
  EXPECT_TRUE(db->Get(ks, "past", &v).IsNotFound());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(db->Get(ks, "short", &v).IsNotFound());
  EXPECT_TRUE(db->Probe(ks, "short", nullptr).IsNotFound());
  ASSERT_TRUE(db->Get(ks, "long", &v).ok());
  // An expired key is absent for conditions too.
  WriteBatch ins;
  ASSERT_TRUE(ins.Put(ks, "short", "reborn", 0, WriteCondition::kIfAbsent).ok());
  ASSERT_TRUE(db->Write(ins).ok());
  ASSERT_TRUE(db->Get(ks, "short", &v).ok());
  EXPECT_EQ(v, "reborn");
  EXPECT_EQ(db->SweepExpired(1000), 1u);  // "past"
  KeyspaceStats st;
  ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
  EXPECT_EQ(st.keys, 2u);
  // Expired keys stay gone after a restart even if the log still holds them.
  ASSERT_TRUE(db->Put(ks, "k2", "v", NowMillis() + 100).ok());
}

// INFO keyspace's expires and avg_ttl: the keys with a TTL, kept through overwrites, deletes,
// the sweep, a truncation and a restart (which counts them again from the index).
TEST_F(EngineTest, KeyspaceStatsCountTheKeysWithATtl) {
  auto expiring = [](Engine& e, uint32_t ks, int64_t* avg_ttl_ms) {
    KeyspaceStats st;
    EXPECT_TRUE(e.GetKeyspaceStats(ks, &st).ok());
    *avg_ttl_ms = st.avg_ttl_ms;
    return st.expiring;
  };
  int64_t avg = 0;
  uint32_t ks = 0;
  {
    Instance db(opts_);
    ks = MakeKeyspace(db.engine(), "t");
    const int64_t now = NowMillis();
    ASSERT_TRUE(db->Put(ks, "plain", "v").ok());
    ASSERT_TRUE(db->Put(ks, "hour", "v", now + 3'600'000).ok());
    ASSERT_TRUE(db->Put(ks, "two-hours", "v", now + 7'200'000).ok());
    EXPECT_EQ(expiring(db.engine(), ks, &avg), 2u);
    EXPECT_NEAR(avg, 5'400'000, 5'000) << "the mean of an hour and two";
    ASSERT_TRUE(db->Put(ks, "hour", "v").ok());  // as PERSIST
    EXPECT_EQ(expiring(db.engine(), ks, &avg), 1u);
    EXPECT_NEAR(avg, 7'200'000, 5'000);
    ASSERT_TRUE(db->Put(ks, "plain", "v", now + 3'600'000).ok());  // as EXPIRE
    ASSERT_TRUE(db->Delete(ks, "two-hours").ok());
    EXPECT_EQ(expiring(db.engine(), ks, &avg), 1u);
    EXPECT_NEAR(avg, 3'600'000, 5'000);
    ASSERT_TRUE(db->Put(ks, "soon", "v", NowMillis() + 50).ok());
    EXPECT_EQ(expiring(db.engine(), ks, &avg), 2u);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(expiring(db.engine(), ks, &avg), 2u) << "counted until the sweep removes it";
    EXPECT_EQ(db->SweepExpired(1000), 2u);  // it, and what is left of the deleted key
    EXPECT_EQ(expiring(db.engine(), ks, &avg), 1u) << "the sweep took the expired key off";
    KeyspaceStats st;
    ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
    EXPECT_EQ(st.keys, 2u);
  }
  Instance db(opts_);  // counted again from the index
  EXPECT_EQ(expiring(db.engine(), ks, &avg), 1u);
  EXPECT_NEAR(avg, 3'600'000, 60'000);
  ASSERT_TRUE(db->TruncateKeyspace(ks).ok());
  EXPECT_EQ(expiring(db.engine(), ks, &avg), 0u);
  EXPECT_EQ(avg, 0);
  // To the millisecond, not the second.
  ASSERT_TRUE(db->Put(ks, "ms", "v", NowMillis() + 300).ok());
  EXPECT_EQ(expiring(db.engine(), ks, &avg), 1u);
  EXPECT_TRUE(avg > 200 && avg <= 300) << avg;
  // An expiry time past the year 2100 counts as then, so that no sum overflows.
  ASSERT_TRUE(db->Delete(ks, "ms").ok());
  WriteBatch far;
  for (int i = 0; i < 3000; ++i)
    ASSERT_TRUE(far.Put(ks, "far" + std::to_string(i), "v", INT64_MAX).ok());
  ASSERT_TRUE(db->Write(far).ok());
  EXPECT_EQ(expiring(db.engine(), ks, &avg), 3000u);
  EXPECT_NEAR(static_cast<double>(avg),
              static_cast<double>(int64_t{4'102'444'800'000} - NowMillis()),  // 2100-01-01
              60'000);
}

TEST_F(EngineTest, IteratorsHonourBoundsPrefixesAndSkipDeadKeys) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  const uint32_t other = MakeKeyspace(db.engine(), "other");
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) {
    char k[32];
    std::snprintf(k, sizeof(k), "user:%05d", i);
    keys.push_back(k);
    ASSERT_TRUE(db->Put(ks, k, std::to_string(i)).ok());
  }
  ASSERT_TRUE(db->Put(other, "user:00001", "x").ok());
  ASSERT_TRUE(db->Put(ks, "zzz", "last").ok());
  ASSERT_TRUE(db->Delete(ks, "user:00010").ok());
  ASSERT_TRUE(db->Put(ks, "user:00011", "expired", NowMillis() - 1).ok());
  auto collect = [&](const ScanOptions& o) {
    std::vector<std::string> out;
    auto it = db->NewIterator(ks, o);
    for (; it->Valid(); it->Next()) out.emplace_back(it->key());
    EXPECT_TRUE(it->status().ok());
    return out;
  };
  auto all = collect(ScanOptions{});
  ASSERT_EQ(all.size(), 3000u - 2 + 1);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(all.back(), "zzz");
  ScanOptions range;
  range.lower = "user:00100";
  range.upper = "user:00200";
  range.has_upper = true;
  auto r = collect(range);
  ASSERT_EQ(r.size(), 100u);
  EXPECT_EQ(r.front(), "user:00100");
  EXPECT_EQ(r.back(), "user:00199");
  range.lower_inclusive = false;
  range.upper_inclusive = true;
  r = collect(range);
  ASSERT_EQ(r.size(), 100u);
  EXPECT_EQ(r.front(), "user:00101");
  EXPECT_EQ(r.back(), "user:00200");
  ScanOptions prefix;
  prefix.prefix = "user:001";
  r = collect(prefix);
  ASSERT_EQ(r.size(), 100u);
  EXPECT_EQ(r.front(), "user:00100");
  ScanOptions none;
  none.prefix = "nothing";
  EXPECT_TRUE(collect(none).empty());
  auto it = db->NewIterator(ks, prefix);
  ASSERT_TRUE(it->Valid());
  std::string v;
  ASSERT_TRUE(it->value(&v).ok());
  EXPECT_EQ(v, "100");
  auto missing = db->NewIterator(999, ScanOptions{});
  EXPECT_FALSE(missing->Valid());
  EXPECT_TRUE(missing->status().IsNotFound());
}

TEST_F(EngineTest, MultiGetBatchesColdReads) {
  opts_.cache_memory = size_t{1} << 20;
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  std::mt19937_64 rng(9);
  std::vector<std::string> values;
  for (int i = 0; i < 1000; ++i) {
    values.push_back(test::Value(rng, 4096));
    ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), values.back()).ok());
  }
  std::vector<std::string> keys_s;
  for (int i = 0; i < 64; ++i) keys_s.push_back("k" + std::to_string(i * 3));
  keys_s.push_back("absent");
  std::vector<std::string_view> keys(keys_s.begin(), keys_s.end());
  std::vector<std::string> out;
  std::vector<Status> st;
  ReadInfo info;
  db->MultiGet(ks, keys, &out, &st, &info);
  ASSERT_EQ(out.size(), keys.size());
  for (int i = 0; i < 64; ++i) {
    ASSERT_TRUE(st[i].ok()) << st[i].ToString();
    EXPECT_EQ(out[i], values[i * 3]);
  }
  EXPECT_TRUE(st[64].IsNotFound());
  EXPECT_EQ(info.cache_hits + info.device_reads, 64u);
  EXPECT_GT(info.device_reads, 32u);
}

TEST_F(EngineTest, EverythingAcknowledgedSurvivesRestartAndCheckpoints) {
  std::mt19937_64 rng(4);
  std::map<std::string, std::string> model;
  uint32_t ks, gone;
  {
    Instance db(opts_);
    ks = MakeKeyspace(db.engine(), "t");
    gone = MakeKeyspace(db.engine(), "gone");
    ASSERT_TRUE(db->Put(gone, "x", "y").ok());
    for (int i = 0; i < 5000; ++i) {
      const std::string k = "k" + std::to_string(rng() % 2000);
      if (rng() % 5 == 0) {
        ASSERT_TRUE(db->Delete(ks, k).ok());
        model.erase(k);
      } else {
        const std::string v = test::Value(rng, rng() % 3000);
        ASSERT_TRUE(db->Put(ks, k, v).ok());
        model[k] = v;
      }
      if (i == 2500) ASSERT_TRUE(db->Checkpoint().ok());
    }
    ASSERT_TRUE(db->DropKeyspace(gone).ok());
  }  // no shutdown: a crash
  for (int restart = 0; restart < 2; ++restart) {
    Instance db(opts_);
    uint32_t found;
    ASSERT_TRUE(db->FindKeyspace("t", &found).ok());
    EXPECT_EQ(found, ks);
    EXPECT_TRUE(db->FindKeyspace("gone", &found).IsNotFound());
    KeyspaceStats st;
    ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
    EXPECT_EQ(st.keys, model.size());
    size_t n = 0;
    for (auto it = db->NewIterator(ks, ScanOptions{}); it->Valid(); it->Next()) {
      std::string v;
      ASSERT_TRUE(it->value(&v).ok());
      auto m = model.find(std::string(it->key()));
      ASSERT_NE(m, model.end()) << it->key();
      EXPECT_EQ(v, m->second);
      ++n;
    }
    EXPECT_EQ(n, model.size());
    // New writes after recovery get fresh sequence numbers.
    ReadInfo before;
    ASSERT_TRUE(db->Put(ks, "after-" + std::to_string(restart), "v").ok());
    std::string v;
    ASSERT_TRUE(db->Get(ks, "after-" + std::to_string(restart), &v, &before).ok());
    EXPECT_GT(before.seq, 5000u);
    model["after-" + std::to_string(restart)] = "v";
    if (restart == 0) {
      EXPECT_TRUE(db->Shutdown().ok());
      EXPECT_TRUE(db->Put(ks, "closed", "x").code() == Status::Code::kUnavailable);
    }
  }
}

// Reads go around the page cache, so the log's pages leave it once synced (they would only push
// the host's cached files out); with reads through the page cache they stay. Either way every
// value reads back from the device after a restart.
TEST(EngineLogPages, SyncedLogPagesLeaveThePageCacheUnlessReadsUseIt) {
  for (const bool direct : {true, false}) {
    TempDir dir;
    if (direct && !test::DirectIoWorksIn(dir.path())) GTEST_SKIP() << "no O_DIRECT here";
    Options opts = TestOptions(dir.path());
    opts.direct_reads = direct;
    std::mt19937_64 rng(11);
    std::vector<std::string> values;
    {
      Instance db(opts);
      const uint32_t ks = MakeKeyspace(db.engine(), "pages");
      for (int i = 0; i < 2000; ++i) {  // 2 MB, each write synced before Put returns
        values.push_back(test::Value(rng, 1000));
        ASSERT_TRUE(db->Put(ks, "k" + std::to_string(i), values.back()).ok());
      }
      size_t resident = 0;
      for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
        if (f.path().extension() == ".seg") resident += test::ResidentPages(f.path().string());
      }
      if (direct) {
        EXPECT_LE(resident, 2u) << "only the page the log ends in";
      } else {
        EXPECT_GT(resident, 400u) << "2 MB of log read through the page cache stays in it";
      }
    }
    Instance db(opts);
    uint32_t ks = 0;
    ASSERT_TRUE(db->FindKeyspace("pages", &ks).ok());
    for (int i = 0; i < 2000; ++i) {
      std::string v;
      ASSERT_TRUE(db->Get(ks, "k" + std::to_string(i), &v).ok()) << i;
      ASSERT_EQ(v, values[i]) << i;
    }
  }
}

TEST_F(EngineTest, AnEngineDirectoryIsLockedAgainstASecondEngine) {
  Instance db(opts_);
  Instance second(opts_, /*recover=*/false);
  Status s = second->Recover();
  EXPECT_EQ(s.code(), Status::Code::kUnavailable);
  EXPECT_NE(s.message().find("in use"), std::string::npos);
  EXPECT_EQ(second->state(), EngineState::kFailed);
  EXPECT_NE(second->FailureMessage().find("in use"), std::string::npos);
  std::string v;
  EXPECT_EQ(second->Get(1, "k", &v).code(), Status::Code::kUnavailable);
}

TEST_F(EngineTest, BadOptionsAreRejectedBeforeAnythingStarts) {
  Options o = opts_;
  o.data_dir = "relative/dir";
  std::vector<char> mem(Engine::SharedMemorySize(opts_));
  Status s = Engine::FormatRegion(mem.data(), mem.size(), o);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("absolute"), std::string::npos);
  o = opts_;
  o.segment_size = 1000;
  EXPECT_EQ(Engine::FormatRegion(mem.data(), mem.size(), o).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Engine::FormatRegion(mem.data(), 100, opts_).code(), Status::Code::kInvalidArgument);
  std::unique_ptr<Engine> e;
  std::vector<char> junk(4096, 'x');
  EXPECT_EQ(Engine::Attach(junk.data(), opts_, &e).code(), Status::Code::kInvalidArgument);
}

TEST_F(EngineTest, InfoReportsTheOpenEngine) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  ASSERT_TRUE(db->Put(ks, "k", "v").ok());
  const EngineInfo i = db->Info();
  EXPECT_EQ(i.version, kEngineVersion);
  EXPECT_EQ(i.data_dir, dir_.path());
  EXPECT_EQ(i.state, "ready");
  EXPECT_EQ(i.sync, "always");
  if (test::TestIoMode() == IoMode::kPosix) EXPECT_EQ(i.io_mode, "pread");
  EXPECT_EQ(i.keys, 1u);
  EXPECT_GE(i.fsyncs, 2u);  // the keyspace and the put
  EXPECT_GT(i.index_memory_used, 0u);
  EXPECT_EQ(i.index_memory_limit, opts_.index_memory);
  EXPECT_GT(i.disk_bytes, 0u);
  EXPECT_EQ(i.segments, 1u);
}

}  // namespace
}  // namespace eloqkv
