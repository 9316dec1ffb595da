// Several forked processes share one region, as Postgres backends do: they read and write
// overlapping keys at once; the final state must equal a model built from the sequence numbers
// the engine returned, and a watchdog fails the test instead of hanging on a deadlock.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

constexpr int kProcesses = 5;
constexpr int kKeys = 300;
constexpr int kOpsPerProcess = 3000;
constexpr int kIncrements = 300;

struct Op {
  uint64_t seq;
  int key;
  bool del;
  std::string value;
};

// One child: random puts, deletes, reads and compare-and-set increments; writes its op log.
bool Child(void* region, const Options& opts, uint32_t ks, int id, const std::string& log_path) {
  std::unique_ptr<Engine> db;
  if (!Engine::Attach(region, opts, &db).ok()) return false;
  std::mt19937_64 rng(1000 + id);
  std::ofstream log(log_path);
  for (int n = 0; n < kOpsPerProcess; ++n) {
    const int key = static_cast<int>(rng() % kKeys);
    const std::string k = "key-" + std::to_string(key);
    const int what = static_cast<int>(rng() % 10);
    if (what < 5) {
      const std::string v = "p" + std::to_string(id) + "-" + std::to_string(n) + "-" +
                            std::string(rng() % 2000, 'x');
      WriteBatch b;
      if (!b.Put(ks, k, v).ok()) return false;
      WriteResult r;
      if (!db->Write(b, &r).ok()) return false;
      log << r.first_seq << " " << key << " P " << v << "\n";
    } else if (what < 7) {
      WriteBatch b;
      if (!b.Delete(ks, k).ok()) return false;
      WriteResult r;
      if (!db->Write(b, &r).ok()) return false;
      log << r.first_seq << " " << key << " D -\n";
    } else {
      std::string v;
      Status s = db->Get(ks, k, &v);
      if (!s.ok() && !s.IsNotFound()) return false;
      if (s.ok() && v.rfind("p", 0) != 0) return false;  // never a torn or foreign value
    }
  }
  // Atomic increments of a shared counter through compare-and-set.
  for (int i = 0; i < kIncrements; ++i) {
    for (;;) {
      std::string v;
      ReadInfo info;
      Status s = db->Get(ks, "counter", &v, &info);
      if (!s.ok()) return false;
      WriteBatch b;
      if (!b.Put(ks, "counter", std::to_string(std::stoll(v) + 1), 0, WriteCondition::kIfSeq, info.seq).ok())
        return false;
      s = db->Write(b);
      if (s.ok()) break;
      if (s.code() != Status::Code::kConditionFailed) return false;
    }
  }
  return log.good();
}

TEST(EngineMultiProcess, ForkedProcessesAgreeWithAModel) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.segment_size = size_t{2} << 20;
  opts.cache_memory = size_t{2} << 20;
  auto instance = std::make_unique<Instance>(opts);
  Instance& db = *instance;
  const uint32_t ks = test::MakeKeyspace(db.engine(), "shared");
  ASSERT_TRUE(db->Put(ks, "counter", "0").ok());

  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    const std::string log = dir.path() + "/ops-" + std::to_string(p);
    pids.push_back(test::Fork([&, p, log] { return Child(db.region(), opts, ks, p, log); }));
  }
  // Meanwhile the parent runs maintenance, as the Postgres maintenance worker would.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  std::vector<int> statuses(kProcesses, -1);
  int running = kProcesses;
  while (running > 0) {
    ASSERT_TRUE(db->Tick().ok());
    for (int p = 0; p < kProcesses; ++p) {
      if (statuses[p] != -1) continue;
      int st;
      if (::waitpid(pids[p], &st, WNOHANG) == pids[p]) {
        statuses[p] = st;
        --running;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (pid_t pid : pids) ::kill(pid, SIGKILL);
      for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
      FAIL() << "watchdog: " << running << " processes still running after 180 s (deadlock?)";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int p = 0; p < kProcesses; ++p)
    ASSERT_TRUE(WIFEXITED(statuses[p]) && WEXITSTATUS(statuses[p]) == 0) << "process " << p;

  // The model: for every key, the op with the highest sequence number wins.
  std::map<int, Op> last;
  std::set<uint64_t> seqs;
  for (int p = 0; p < kProcesses; ++p) {
    std::ifstream in(dir.path() + "/ops-" + std::to_string(p));
    Op op;
    std::string kind;
    int count = 0;
    while (in >> op.seq >> op.key >> kind >> op.value) {
      op.del = kind == "D";
      ASSERT_TRUE(seqs.insert(op.seq).second) << "sequence number " << op.seq << " given twice";
      auto it = last.find(op.key);
      if (it == last.end() || it->second.seq < op.seq) last[op.key] = op;
      ++count;
    }
    EXPECT_GT(count, kOpsPerProcess / 2);  // about 70% of the ops write
  }
  auto check = [&](Engine& e) {
    for (int k = 0; k < kKeys; ++k) {
      std::string v;
      Status s = e.Get(ks, "key-" + std::to_string(k), &v);
      auto it = last.find(k);
      if (it == last.end() || it->second.del) {
        EXPECT_TRUE(s.IsNotFound()) << "key-" << k << ": " << s.ToString();
      } else {
        ASSERT_TRUE(s.ok()) << "key-" << k << ": " << s.ToString();
        EXPECT_EQ(v, it->second.value) << "key-" << k;
      }
    }
    std::string counter;
    ASSERT_TRUE(e.Get(ks, "counter", &counter).ok());
    EXPECT_EQ(counter, std::to_string(kProcesses * kIncrements));
  };
  check(db.engine());
  KeyspaceStats st;
  ASSERT_TRUE(db->GetKeyspaceStats(ks, &st).ok());
  size_t live = 1;
  for (auto& [k, op] : last) live += !op.del;
  EXPECT_EQ(st.keys, live);
  // And after a crash restart.
  instance.reset();
  Instance again(opts);
  check(again.engine());
}

}  // namespace
}  // namespace eloqkv
