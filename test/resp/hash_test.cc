// Hashes small and large: a hash that outgrows the inline limits keeps one record per field, and
// every command, RENAME/COPY, MULTI/EXEC, FLUSHDB and the orphan sweep agree with an inline one.
#include <map>
#include <string>
#include <vector>

#include "resp/commands.h"
#include "resp/hash_sweep.h"
#include "engine/coding.h"
#include "resp/hash_value.h"
#include "run_command.h"

namespace eloqkv::resp {
namespace {

std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

class HashTest : public test::DispatcherTest {
 protected:
  // HSETs fields f000..f(n-1) = v<i> one command each; returns the model.
  std::map<std::string, std::string> Fill(const std::string& key, int n, int from = 0) {
    std::map<std::string, std::string> model;
    for (int i = from; i < from + n; ++i) {
      char f[16];
      std::snprintf(f, sizeof(f), "f%03d", i);
      model[f] = "v" + std::to_string(i);
      EXPECT_EQ(Run({"HSET", key, f, model[f]}), ":1\r\n");
    }
    return model;
  }

  static std::string AllReply(const std::map<std::string, std::string>& model) {
    std::string out = "*" + std::to_string(model.size() * 2) + "\r\n";
    for (const auto& [f, v] : model) out += Bulk(f) + Bulk(v);
    return out;
  }

  uint64_t FieldRecords() {
    uint32_t ks = 0;
    if (!db_->FindKeyspace(HashFieldsKeyspaceName("@resp"), &ks).ok()) return 0;
    KeyspaceStats st;
    EXPECT_TRUE(db_->GetKeyspaceStats(ks, &st).ok());
    return st.keys;
  }

  size_t StoredSize(const std::string& key) {
    uint32_t ks = 0;
    EXPECT_TRUE(db_->FindKeyspace("@resp", &ks).ok());
    std::string v;
    EXPECT_TRUE(db_->Get(ks, key, &v).ok());
    return v.size();
  }

  size_t Sweep() {
    HashFieldSweeper sweeper(&db_.engine(), "@resp");
    size_t total = 0, deleted = 0;
    bool done = false;
    while (!done) {
      EXPECT_TRUE(sweeper.Step(7, &deleted, &done).ok());  // small steps: resumption is exercised
      total += deleted;
    }
    return total;
  }
};

TEST_F(HashTest, AHashOutgrowingTheInlineLimitKeepsEveryFieldAndCostsOneRecordPerWrite) {
  auto model = Fill("h", static_cast<int>(kMaxInlineFields));
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "h"}), "$8\r\nlistpack\r\n");
  EXPECT_EQ(FieldRecords(), 0u);
  auto more = Fill("h", 172, static_cast<int>(kMaxInlineFields));
  model.insert(more.begin(), more.end());
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "h"}), "$9\r\nhashtable\r\n");
  EXPECT_EQ(FieldRecords(), 300u);
  EXPECT_LT(StoredSize("h"), 16u);  // the key holds a header only
  EXPECT_EQ(Run({"TYPE", "h"}), "+hash\r\n");
  EXPECT_EQ(Run({"HLEN", "h"}), ":300\r\n");
  EXPECT_EQ(Run({"HGET", "h", "f007"}), Bulk("v7"));
  EXPECT_EQ(Run({"HGET", "h", "f299"}), Bulk("v299"));
  EXPECT_EQ(Run({"HGET", "h", "nope"}), "$-1\r\n");
  EXPECT_EQ(Run({"HMGET", "h", "f001", "nope", "f200"}),
            "*3\r\n" + Bulk("v1") + "$-1\r\n" + Bulk("v200"));
  EXPECT_EQ(Run({"HEXISTS", "h", "f150"}), ":1\r\n");
  EXPECT_EQ(Run({"HEXISTS", "h", "x"}), ":0\r\n");
  EXPECT_EQ(Run({"HSTRLEN", "h", "f150"}), ":4\r\n");
  EXPECT_EQ(Run({"HSET", "h", "f001", "new", "g1", "x"}), ":1\r\n");  // one new, one replaced
  model["f001"] = "new";
  model["g1"] = "x";
  EXPECT_EQ(Run({"HSETNX", "h", "f002", "no"}), ":0\r\n");
  EXPECT_EQ(Run({"HSETNX", "h", "g2", "y"}), ":1\r\n");
  model["g2"] = "y";
  EXPECT_EQ(Run({"HINCRBY", "h", "n", "5"}), ":5\r\n");
  EXPECT_EQ(Run({"HINCRBY", "h", "n", "-7"}), ":-2\r\n");
  model["n"] = "-2";
  EXPECT_EQ(Run({"HINCRBY", "h", "f003", "1"}), "-ERR hash value is not an integer\r\n");
  EXPECT_EQ(Run({"HINCRBYFLOAT", "h", "fl", "1.5"}), Bulk("1.5"));
  model["fl"] = "1.5";
  EXPECT_EQ(Run({"HDEL", "h", "f010", "f011", "absent"}), ":2\r\n");
  model.erase("f010");
  model.erase("f011");
  EXPECT_EQ(Run({"HLEN", "h"}), ":" + std::to_string(model.size()) + "\r\n");
  EXPECT_EQ(FieldRecords(), model.size());
  EXPECT_EQ(Run({"HGETALL", "h"}), AllReply(model));
  std::string keys = "*" + std::to_string(model.size()) + "\r\n";
  for (const auto& [f, v] : model) keys += Bulk(f);
  EXPECT_EQ(Run({"HKEYS", "h"}), keys);
  EXPECT_EQ(Run({"GET", "h"}),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

TEST_F(HashTest, OneLargeValueMakesAHashLarge) {
  const std::string big(kMaxInlineBytes, 'x');
  EXPECT_EQ(Run({"HSET", "h", "a", "1", "b", big}), ":2\r\n");
  EXPECT_EQ(Run({"OBJECT", "ENCODING", "h"}), "$9\r\nhashtable\r\n");
  EXPECT_EQ(Run({"HGET", "h", "b"}), Bulk(big));
  EXPECT_EQ(Run({"HLEN", "h"}), ":2\r\n");
}

TEST_F(HashTest, DeletingTheLastFieldDeletesTheKeyAndItsRecords) {
  Fill("h", 200);
  std::vector<std::string> del = {"HDEL", "h"};
  for (int i = 0; i < 200; ++i) {
    char f[16];
    std::snprintf(f, sizeof(f), "f%03d", i);
    del.push_back(f);
  }
  EXPECT_EQ(Run(del), ":200\r\n");
  EXPECT_EQ(Run({"EXISTS", "h"}), ":0\r\n");
  EXPECT_EQ(FieldRecords(), 0u);
}

TEST_F(HashTest, HScanPagesThroughALargeHashOncePerField) {
  auto model = Fill("h", 250);
  std::map<std::string, std::string> seen;
  std::string cursor = "0";
  int calls = 0;
  do {
    std::string reply = Run({"HSCAN", "h", cursor, "COUNT", "40"});
    ASSERT_EQ(reply.rfind("*2\r\n$", 0), 0u) << reply;
    // *2 $<n> cursor *<2k> then k pairs.
    size_t p = reply.find("\r\n", 4);
    p = reply.find("\r\n", p + 2);
    cursor = reply.substr(reply.find("\r\n", 4) + 2, p - reply.find("\r\n", 4) - 2);
    size_t q = reply.find("\r\n", p + 2);
    const int n = std::stoi(reply.substr(p + 3, q - p - 3));
    EXPECT_LE(n, 80);
    size_t pos = q + 2;
    auto next_bulk = [&] {
      size_t e = reply.find("\r\n", pos);
      const size_t len = std::stoul(reply.substr(pos + 1, e - pos - 1));
      std::string s = reply.substr(e + 2, len);
      pos = e + 2 + len + 2;
      return s;
    };
    for (int i = 0; i < n / 2; ++i) {
      std::string f = next_bulk();
      std::string v = next_bulk();
      EXPECT_TRUE(seen.emplace(f, v).second) << "field returned twice: " << f;
    }
    ++calls;
  } while (cursor != "0" && calls < 100);
  EXPECT_EQ(seen, model);
  EXPECT_GE(calls, 7);
  // MATCH filters what a page examined; a cursor is for the hash it was given for.
  EXPECT_EQ(Run({"HSCAN", "h", "0", "MATCH", "f00?", "COUNT", "5"}).substr(0, 4), "*2\r\n");
  const std::string first = Run({"HSCAN", "h", "0", "COUNT", "5"});
  const size_t a = first.find("\r\n", 4) + 2;
  const std::string cur = first.substr(a, first.find("\r\n", a) - a);
  EXPECT_EQ(Run({"HSCAN", "other", cur}), "*2\r\n$1\r\n0\r\n*0\r\n");  // no such key: empty
  Fill("other", 200);
  EXPECT_EQ(Run({"HSCAN", "other", cur}), "-ERR invalid cursor\r\n");
  EXPECT_EQ(Run({"HSCAN", "h", "123456"}), "-ERR invalid cursor\r\n");
}

TEST_F(HashTest, RenameAndCopyMoveTheFieldsAndTheSweepKeepsLiveOnes) {
  auto model = Fill("src", 200);
  EXPECT_EQ(Run({"EXPIRE", "src", "1000"}), ":1\r\n");
  EXPECT_EQ(Run({"COPY", "src", "copy"}), ":1\r\n");
  EXPECT_EQ(Run({"RENAME", "src", "dst"}), "+OK\r\n");
  EXPECT_EQ(Run({"EXISTS", "src"}), ":0\r\n");
  EXPECT_EQ(Run({"HGETALL", "dst"}), AllReply(model));
  EXPECT_EQ(Run({"HGETALL", "copy"}), AllReply(model));
  EXPECT_EQ(Run({"TTL", "dst"}), ":1000\r\n");
  EXPECT_EQ(Run({"TTL", "copy"}), ":1000\r\n");
  EXPECT_EQ(FieldRecords(), 600u);  // src's records are dead now
  EXPECT_EQ(Sweep(), 200u);
  EXPECT_EQ(FieldRecords(), 400u);
  EXPECT_EQ(Sweep(), 0u);
  EXPECT_EQ(Run({"HGETALL", "dst"}), AllReply(model));
  EXPECT_EQ(Run({"HGETALL", "copy"}), AllReply(model));
  EXPECT_EQ(Run({"HLEN", "src"}), ":0\r\n");
}

TEST_F(HashTest, AKeyDeletedOverwrittenOrExpiredStartsAFreshHash) {
  Fill("d", 150);
  Fill("s", 150);
  Fill("e", 150);
  EXPECT_EQ(Run({"DEL", "d"}), ":1\r\n");
  EXPECT_EQ(Run({"SET", "s", "now a string"}), "+OK\r\n");
  EXPECT_EQ(Run({"PEXPIRE", "e", "1"}), ":1\r\n");
  usleep(20000);
  EXPECT_EQ(Run({"HLEN", "e"}), ":0\r\n");
  // New lives see none of the old fields, inline or large.
  EXPECT_EQ(Run({"HSET", "d", "f001", "x"}), ":1\r\n");
  EXPECT_EQ(Run({"HGETALL", "d"}), "*2\r\n" + Bulk("f001") + Bulk("x"));
  auto model = Fill("e", 140, 500);
  EXPECT_EQ(Run({"HLEN", "e"}), ":140\r\n");
  EXPECT_EQ(Run({"HGET", "e", "f001"}), "$-1\r\n");
  EXPECT_EQ(Run({"HGETALL", "e"}), AllReply(model));
  EXPECT_EQ(Sweep(), 450u);
  EXPECT_EQ(FieldRecords(), 140u);
  EXPECT_EQ(Run({"HGETALL", "e"}), AllReply(model));
}

TEST_F(HashTest, ExecSeesItsOwnFieldWritesAndALaterLifeOfTheKey) {
  Fill("h", 150);
  EXPECT_EQ(Run({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(Run({"HSET", "h", "zz", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"HLEN", "h"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"DEL", "h"}), "+QUEUED\r\n");
  std::vector<std::string> hset = {"HSET", "h"};
  for (int i = 0; i < 140; ++i) {
    hset.push_back("n" + std::to_string(i));
    hset.push_back("w");
  }
  EXPECT_EQ(Run(hset), "+QUEUED\r\n");
  EXPECT_EQ(Run({"HGET", "h", "zz"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"HLEN", "h"}), "+QUEUED\r\n");
  EXPECT_EQ(Run({"EXEC"}), "*6\r\n:1\r\n:151\r\n:1\r\n:140\r\n$-1\r\n:140\r\n");
  EXPECT_EQ(Run({"HLEN", "h"}), ":140\r\n");
  EXPECT_EQ(Run({"HGET", "h", "zz"}), "$-1\r\n");
  EXPECT_EQ(Run({"HGET", "h", "n7"}), Bulk("w"));
  EXPECT_EQ(Sweep(), 151u);
  EXPECT_EQ(FieldRecords(), 140u);
}

TEST_F(HashTest, FlushDbEmptiesTheFieldRecordsToo) {
  Fill("h", 200);
  EXPECT_EQ(Run({"FLUSHDB"}), "+OK\r\n");
  EXPECT_EQ(FieldRecords(), 0u);
  EXPECT_EQ(Run({"HLEN", "h"}), ":0\r\n");
}

TEST_F(HashTest, TwoWorkersUpdatingOneLargeHashLoseNothing) {
  test::SecondWorker second(db_);
  Fill("h", 150);
  for (int i = 0; i < 100; ++i) {
    Run({"HINCRBY", "h", "c", "1"});
    Run({"HINCRBY", "h", "c", "1"}, &second.session, &second.dispatcher);
    Run({"HSET", "h", "a" + std::to_string(i), "1"});
    Run({"HSET", "h", "b" + std::to_string(i), "1"}, &second.session, &second.dispatcher);
  }
  EXPECT_EQ(Run({"HGET", "h", "c"}), Bulk("200"));
  EXPECT_EQ(Run({"HLEN", "h"}, &second.session, &second.dispatcher), ":351\r\n");
  EXPECT_EQ(FieldRecords(), 351u);
}

// Found by test/fuzz/decoders_fuzz.cc: corrupt field-record keys are refused, never read past.
TEST(FieldRecordKeyTest, CorruptLengthsAreRefused) {
  std::string_view key, field;
  uint64_t generation = 0;
  const std::string good = FieldPrefix("user:1", 7) + "name";
  ASSERT_TRUE(ParseFieldRecordKey(good, &key, &generation, &field));
  EXPECT_EQ(key, "user:1");
  EXPECT_EQ(generation, 7u);
  EXPECT_EQ(field, "name");
  // A length near 2^64: adding the generation's 8 bytes to it wrapped around.
  const std::string wraps = std::string(9, '\xff') + '\x01' + std::string(12, 'g');
  EXPECT_FALSE(ParseFieldRecordKey(wraps, &key, &generation, &field));
  // An overlong varint (0x81 0x00 is 1, written in two bytes): not what FieldPrefix writes.
  const std::string overlong = std::string("\x81\x00k", 3) + std::string(8, '\0') + "f";
  EXPECT_FALSE(ParseFieldRecordKey(overlong, &key, &generation, &field));
  // Too short for the generation.
  EXPECT_FALSE(ParseFieldRecordKey(std::string("\x01k\0\0", 4), &key, &generation, &field));
}

TEST(VarintTest, OnlyTheCanonicalEncodingDecodes) {
  for (uint64_t v :
       {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300}, UINT64_MAX}) {
    std::string s;
    PutVarint64(&s, v);
    std::string_view in = s;
    uint64_t got = 0;
    ASSERT_TRUE(GetVarint64(&in, &got));
    EXPECT_EQ(got, v);
    EXPECT_TRUE(in.empty());
  }
  uint64_t got = 0;
  std::string_view overlong("\x80\x00", 2);
  EXPECT_FALSE(GetVarint64(&overlong, &got));
  std::string_view past64("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
  EXPECT_FALSE(GetVarint64(&past64, &got));
  std::string_view unterminated("\x80\x80", 2);
  EXPECT_FALSE(GetVarint64(&unterminated, &got));
}

}  // namespace
}  // namespace eloqkv::resp
