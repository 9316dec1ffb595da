// Before-images of a transaction's batch (src/pg/kv_undo.h): the compensating batch puts back
// exactly what the batch overwrote and keeps what others wrote since.
#include "pg/kv_undo.h"

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::MakeKeyspace;
using test::TempDir;
using test::TestOptions;

class KvUndoTest : public ::testing::Test {
 protected:
  TempDir dir_;
  Options opts_ = TestOptions(dir_.path());

  static std::string Read(Instance& db, uint32_t ks, std::string_view key) {
    std::string v;
    const Status s = db->Get(ks, key, &v);
    return s.ok() ? v : s.IsNotFound() ? "(absent)" : s.ToString();
  }
};

// The batch of an aborted transaction: overwrites "a" (which expired at `ttl`), deletes "b",
// inserts "c", and deletes "d", which did not exist. Returns its first sequence number.
uint64_t WriteTransaction(Instance& db, uint32_t ks, std::string* images, int64_t ttl) {
  WriteBatch batch;
  pg::undo::AddImage(images, ks, 0, false, "a", true, ttl, "a-before");
  EXPECT_TRUE(batch.Put(ks, "a", "a-aborted").ok());
  pg::undo::AddImage(images, ks, 1, true, "b", true, 0, "b-before");
  EXPECT_TRUE(batch.Delete(ks, "b").ok());
  pg::undo::AddImage(images, ks, 2, false, "c", false, 0, {});
  EXPECT_TRUE(batch.Put(ks, "c", "c-aborted").ok());
  pg::undo::AddImage(images, ks, 3, true, "d", false, 0, {});
  EXPECT_TRUE(batch.Delete(ks, "d").ok());
  WriteResult result;
  EXPECT_TRUE(db->Write(batch, &result).ok());
  return result.first_seq;
}

TEST_F(KvUndoTest, PutsBackWhatTheBatchOverwroteAndKeepsLaterWrites) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  const int64_t ttl = NowMillis() + 3'600'000;
  ASSERT_TRUE(db->Put(ks, "a", "a-before", ttl).ok());
  ASSERT_TRUE(db->Put(ks, "b", "b-before").ok());
  ASSERT_TRUE(db->Put(ks, "e", "e-before").ok());
  std::string images;
  const uint64_t first_seq = WriteTransaction(db, ks, &images, ttl);
  // Someone else's write to a key of the batch, after it: it stays.
  ASSERT_TRUE(db->Put(ks, "c", "c-later").ok());

  size_t restored = 0;
  ASSERT_TRUE(pg::undo::Compensate(&db.engine(), first_seq, images, &restored).ok());
  EXPECT_EQ(restored, 2u);  // a and b; c was written since, d needs nothing
  EXPECT_EQ(Read(db, ks, "a"), "a-before");
  ReadInfo info;
  ASSERT_TRUE(db->Probe(ks, "a", &info).ok());
  EXPECT_EQ(info.expire_at_ms, ttl);
  EXPECT_EQ(Read(db, ks, "b"), "b-before");
  EXPECT_EQ(Read(db, ks, "c"), "c-later");
  EXPECT_EQ(Read(db, ks, "d"), "(absent)");
  EXPECT_EQ(Read(db, ks, "e"), "e-before");

  // Nothing changed since: a second compensation finds every key already put back.
  ASSERT_TRUE(pg::undo::Compensate(&db.engine(), first_seq, images, &restored).ok());
  EXPECT_EQ(restored, 0u);
  EXPECT_EQ(Read(db, ks, "a"), "a-before");
  EXPECT_EQ(Read(db, ks, "c"), "c-later");
}

TEST_F(KvUndoTest, AnInsertedKeyIsRemovedAndADeletedKeyReinsertedSinceStays) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  ASSERT_TRUE(db->Put(ks, "b", "b-before").ok());
  std::string images;
  const uint64_t first_seq = WriteTransaction(db, ks, &images, 0);
  ASSERT_TRUE(db->Put(ks, "b", "b-later").ok());
  size_t restored = 0;
  ASSERT_TRUE(pg::undo::Compensate(&db.engine(), first_seq, images, &restored).ok());
  EXPECT_EQ(restored, 2u);  // a put back and c removed; b was written again since
  EXPECT_EQ(Read(db, ks, "a"), "a-before");
  EXPECT_EQ(Read(db, ks, "b"), "b-later");
  EXPECT_EQ(Read(db, ks, "c"), "(absent)");
}

TEST_F(KvUndoTest, AValueThatHasExpiredSinceIsRestoredAsAbsent) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  const int64_t past = NowMillis() - 1000;
  std::string images;
  const uint64_t first_seq = WriteTransaction(db, ks, &images, past);
  size_t restored = 0;
  ASSERT_TRUE(pg::undo::Compensate(&db.engine(), first_seq, images, &restored).ok());
  EXPECT_EQ(Read(db, ks, "a"), "(absent)");
  EXPECT_EQ(Read(db, ks, "c"), "(absent)");
}

// Its puts are keyed to the batch's sequence numbers (a batch whose numbers were only used
// up wrote none). Its deletes cannot be: callers take a batch back once (kv_undo.h).
TEST_F(KvUndoTest, PutsOfABatchThatNeverAppliedAreNotTakenBack) {
  Instance db(opts_);
  const uint32_t ks = MakeKeyspace(db.engine(), "t");
  ASSERT_TRUE(db->Put(ks, "a", "current").ok());
  std::string images;
  pg::undo::AddImage(&images, ks, 0, false, "a", true, 0, "a-before");
  pg::undo::AddImage(&images, ks, 1, false, "c", false, 0, {});
  size_t restored = 0;
  // Sequence numbers the engine never gave these keys.
  ASSERT_TRUE(pg::undo::Compensate(&db.engine(), db->NextSequence() + 10, images, &restored).ok());
  EXPECT_EQ(restored, 0u);
  EXPECT_EQ(Read(db, ks, "a"), "current");
}

TEST_F(KvUndoTest, DroppedKeyspacesAreSkippedAndDamagedImagesRefused) {
  Instance db(opts_);
  const uint32_t kept = MakeKeyspace(db.engine(), "kept");
  const uint32_t dropped = MakeKeyspace(db.engine(), "dropped");
  std::string images;
  WriteBatch batch;
  pg::undo::AddImage(&images, dropped, 0, false, "x", false, 0, {});
  ASSERT_TRUE(batch.Put(dropped, "x", "1").ok());
  pg::undo::AddImage(&images, kept, 1, false, "y", false, 0, {});
  ASSERT_TRUE(batch.Put(kept, "y", "1").ok());
  WriteResult result;
  ASSERT_TRUE(db->Write(batch, &result).ok());
  ASSERT_TRUE(db->DropKeyspace(dropped).ok());
  size_t restored = 0;
  ASSERT_TRUE(pg::undo::Compensate(&db.engine(), result.first_seq, images, &restored).ok());
  EXPECT_EQ(restored, 1u);
  EXPECT_EQ(Read(db, kept, "y"), "(absent)");

  for (size_t cut : {size_t{1}, size_t{10}, images.size() - 1}) {
    const Status s = pg::undo::Compensate(&db.engine(), result.first_seq,
                                          std::string_view(images).substr(0, cut), &restored);
    EXPECT_TRUE(s.IsCorruption()) << cut << ": " << s.ToString();
  }
}

}  // namespace
}  // namespace eloqkv
