// Txn savepoints (EXEC): a rollback undoes every write made since the savepoint (keys, field
// records of large hashes, FLUSHDB) and keeps those made before it; a release keeps them all.
#include <optional>
#include <string>

#include "../engine/test_util.h"
#include "resp/store.h"

namespace eloqkv::resp {
namespace {

class TxnSavepointTest : public ::testing::Test {
 protected:
  TxnSavepointTest() : db_(test::TestOptions(dir_.path())) {
    ks_ = test::MakeKeyspace(db_.engine(), "t");
  }
  // The value as `txn` sees it, or "absent".
  static std::string Seen(Txn& txn, std::string_view key) {
    Txn::Entry* e = nullptr;
    if (!txn.Read(key, &e).ok()) return "error";
    return e->exists ? e->payload : "absent";
  }
  static std::string Field(Txn& txn, std::string_view record) {
    std::string v;
    bool found = false;
    if (!txn.ReadField(record, &v, &found).ok()) return "error";
    return found ? v : "absent";
  }
  static void Set(Txn& txn, std::string_view key, std::string value) {
    Txn::Entry* e = nullptr;
    ASSERT_TRUE(txn.Read(key, &e).ok());
    txn.Put(e, ValueType::kString, std::move(value), 0);
  }

  test::TempDir dir_;
  test::Instance db_;
  uint32_t ks_ = 0;
  FieldSpace fields_{"t fields"};
};

TEST_F(TxnSavepointTest, ARollbackUndoesTheWritesSinceTheSavepointOnly) {
  ASSERT_TRUE(db_->Put(ks_, "stored", EncodeValue(ValueType::kString, "old")).ok());
  Txn txn(&db_.engine(), ks_, nullptr, nullptr, &fields_);
  Set(txn, "before", "1");
  txn.WriteField("r1", "one");
  const uint64_t writes = txn.writes();

  txn.Savepoint();
  Set(txn, "before", "2");
  Set(txn, "stored", "new");
  Set(txn, "after", "3");
  Txn::Entry* e = nullptr;
  ASSERT_TRUE(txn.Read("before", &e).ok());
  txn.Remove(e);
  txn.WriteField("r1", "uno");
  txn.WriteField("r2", "two");
  txn.DeleteField("r1");
  txn.RollbackToSavepoint();

  EXPECT_EQ(Seen(txn, "before"), "1");
  EXPECT_EQ(Seen(txn, "stored"), "old");
  EXPECT_EQ(Seen(txn, "after"), "absent");
  EXPECT_EQ(Field(txn, "r1"), "one");
  EXPECT_EQ(Field(txn, "r2"), "absent");
  EXPECT_EQ(txn.writes(), writes);

  // Released, a savepoint keeps what was written after it.
  txn.Savepoint();
  Set(txn, "kept", "4");
  txn.ReleaseSavepoint();
  txn.RollbackToSavepoint();  // none active: nothing happens
  EXPECT_EQ(Seen(txn, "kept"), "4");

  ASSERT_TRUE(txn.Commit().ok());
  std::string v;
  ASSERT_TRUE(db_->Get(ks_, "before", &v).ok());
  EXPECT_EQ(v, EncodeValue(ValueType::kString, "1"));
  ASSERT_TRUE(db_->Get(ks_, "stored", &v).ok());
  EXPECT_EQ(v, EncodeValue(ValueType::kString, "old"));
  EXPECT_TRUE(db_->Get(ks_, "after", nullptr).IsNotFound());
  ASSERT_TRUE(db_->Get(ks_, "kept", &v).ok());
}

TEST_F(TxnSavepointTest, AFlushdbSinceTheSavepointIsUndoneToo) {
  ASSERT_TRUE(db_->Put(ks_, "stored", EncodeValue(ValueType::kString, "old")).ok());
  Txn txn(&db_.engine(), ks_, nullptr, nullptr, &fields_);
  Set(txn, "before", "1");
  txn.WriteField("r1", "one");
  txn.Savepoint();
  txn.WriteField("r1", "changed before the flush");
  txn.Truncate("t");
  Set(txn, "after", "2");
  txn.WriteField("r3", "three");
  EXPECT_TRUE(txn.truncated());
  EXPECT_EQ(Seen(txn, "stored"), "absent");
  txn.RollbackToSavepoint();
  EXPECT_FALSE(txn.truncated());
  EXPECT_EQ(Seen(txn, "before"), "1");
  EXPECT_EQ(Seen(txn, "stored"), "old");
  EXPECT_EQ(Seen(txn, "after"), "absent");
  EXPECT_EQ(Field(txn, "r1"), "one");
  EXPECT_EQ(Field(txn, "r3"), "absent");
  ASSERT_TRUE(txn.Commit().ok());
  EXPECT_TRUE(db_->Get(ks_, "stored", nullptr).ok()) << "the keyspace was not truncated";
}

// A key whose time runs out while a transaction holds it is gone for its later reads, as in
// Redis: one read before (kept as read, so nothing is written for it), one written with a TTL.
TEST_F(TxnSavepointTest, AKeyWhoseTimeRunsOutMeanwhileIsGoneForLaterReads) {
  struct ClockReset {
    ~ClockReset() { SetClockOffsetForTesting(0); }
  } reset;
  const int64_t in_a_minute = NowMillis() + 60'000;
  ASSERT_TRUE(db_->Put(ks_, "read", EncodeValue(ValueType::kString, "r"), in_a_minute).ok());
  Txn txn(&db_.engine(), ks_, nullptr, nullptr, &fields_);
  txn.set_validate_reads(true);  // as EXEC: the expired read must still validate
  EXPECT_EQ(Seen(txn, "read"), "r");
  Txn::Entry* e = nullptr;
  ASSERT_TRUE(txn.Read("written", &e).ok());
  txn.Put(e, ValueType::kString, "w", in_a_minute);
  const uint64_t writes = txn.writes();
  SetClockOffsetForTesting(120'000);
  EXPECT_EQ(Seen(txn, "read"), "absent");
  EXPECT_EQ(txn.writes(), writes) << "a key only read is not deleted for having expired";
  EXPECT_EQ(Seen(txn, "written"), "absent");
  ASSERT_TRUE(txn.Commit().ok());
  EXPECT_TRUE(db_->Get(ks_, "written", nullptr).IsNotFound());
}

// A time already past deletes the key at once: the transaction's later reads find it gone.
TEST_F(TxnSavepointTest, APutWithATimeAlreadyPastDeletesTheKey) {
  ASSERT_TRUE(db_->Put(ks_, "k", EncodeValue(ValueType::kString, "old")).ok());
  Txn txn(&db_.engine(), ks_, nullptr, nullptr, &fields_);
  Txn::Entry* e = nullptr;
  ASSERT_TRUE(txn.Read("k", &e).ok());
  txn.Put(e, ValueType::kString, "new", 1);
  EXPECT_EQ(Seen(txn, "k"), "absent");
  ASSERT_TRUE(txn.Commit().ok());
  EXPECT_TRUE(db_->Get(ks_, "k", nullptr).IsNotFound());
}

}  // namespace
}  // namespace eloqkv::resp
