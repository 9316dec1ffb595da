// Crash safety: a child process writes with sync=always from several threads and is SIGKILLed at
// random points; after each kill the engine recovers and every acknowledged batch must be there,
// whole, and no batch may be half visible.
#include <fcntl.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "test_util.h"

namespace eloqkv {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;

constexpr int kThreads = 4;
constexpr int kBatchKeys = 4;

int Rounds() {
  const char* r = std::getenv("ELOQKV_CRASH_ROUNDS");
  return r != nullptr ? std::atoi(r) : 50;
}

std::string Key(int round, int thread, int batch, int i) {
  return "r" + std::to_string(round) + "-t" + std::to_string(thread) + "-b" +
         std::to_string(batch) + "-" + std::to_string(i);
}

std::string ValueFor(int round, int thread, int batch, int i, size_t size) {
  std::string v = std::to_string(round) + ":" + std::to_string(thread) + ":" +
                  std::to_string(batch) + ":" + std::to_string(i) + ":";
  v.resize(std::max(v.size(), size), static_cast<char>('a' + (batch + i) % 26));
  return v;
}

// Batch b of a thread writes kBatchKeys new keys and deletes key 0 of batch b-2, atomically.
void BuildBatch(WriteBatch* b, uint32_t ks, int round, int thread, int batch) {
  for (int i = 0; i < kBatchKeys; ++i) {
    const size_t size = (batch + i) % 17 == 0 ? 70000 : static_cast<size_t>((batch * 31 + i * 7) % 900);
    ASSERT_TRUE(b->Put(ks, Key(round, thread, batch, i), ValueFor(round, thread, batch, i, size)).ok());
  }
  if (batch >= 2) ASSERT_TRUE(b->Delete(ks, Key(round, thread, batch - 2, 0)).ok());
}

struct Ack {
  int32_t thread;
  int32_t batch;
};

// The child: recover, then write batches from kThreads threads, reporting each acknowledged
// batch through the pipe, until killed.
[[noreturn]] void RunWriter(const Options& opts, int round, int fd) {
  Instance db(opts);
  if (db->state() != EngineState::kReady) ::_exit(2);
  uint32_t ks = 0;
  if (!db->FindKeyspace("crash", &ks).ok() && !db->CreateKeyspace("crash", &ks).ok()) ::_exit(3);
  std::vector<std::thread> threads;
  // Maintenance runs too, as the Postgres worker would: checkpoints, sweeps and compaction get
  // killed halfway as often as writes do.
  threads.emplace_back([&] {
    for (;;) {
      Status s = db->Tick();
      if (!s.ok()) {
        std::fprintf(stderr, "writer: Tick failed: %s\n", s.ToString().c_str());
        ::_exit(6);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int batch = 0;; ++batch) {
        WriteBatch b;
        BuildBatch(&b, ks, round, t, batch);
        Status s = db->Write(b);
        if (!s.ok()) {
          std::fprintf(stderr, "writer: Write failed: %s\n", s.ToString().c_str());
          ::_exit(4);
        }
        Ack a{t, batch};
        if (::write(fd, &a, sizeof(a)) != sizeof(a)) ::_exit(5);
      }
    });
  }
  for (auto& th : threads) th.join();
  ::_exit(0);
}

bool Present(Engine& db, uint32_t ks, const std::string& key, const std::string& expect) {
  std::string v;
  Status s = db.Get(ks, key, &v);
  if (s.IsNotFound()) return false;
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(v, expect) << key;
  return true;
}

TEST(EngineCrash, AcknowledgedBatchesSurviveSigkillWholeOrNotAtAll) {
  TempDir dir;
  Options opts = TestOptions(dir.path());
  opts.sync = SyncPolicy::kAlways;
  opts.segment_size = size_t{2} << 20;  // rolls segments during the run
  opts.checkpoint_log_bytes = size_t{1} << 20;
  opts.compaction_live_ratio = 0.9;  // compact eagerly so kills land inside compactions
  std::mt19937_64 rng(20240611);
  // acked[round][thread] = highest acknowledged batch (-1: none)
  std::vector<std::array<int, kThreads>> acked;
  // applied[round][thread] = highest batch found applied (acked or the in-flight one)
  std::vector<std::array<int, kThreads>> applied;
  uint64_t checked = 0;
  for (int round = 0; round < Rounds(); ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      RunWriter(opts, round, fds[1]);
    }
    ::close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 170));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited early with status " << WEXITSTATUS(status);
    std::array<int, kThreads> round_acks;
    round_acks.fill(-1);
    Ack a;
    while (::read(fds[0], &a, sizeof(a)) == sizeof(a)) {
      ASSERT_EQ(a.batch, round_acks[a.thread] + 1);  // acknowledgements come in order per thread
      round_acks[a.thread] = a.batch;
    }
    ::close(fds[0]);
    acked.push_back(round_acks);

    // Recover and check every round so far.
    Instance db(opts);
    ASSERT_EQ(db->state(), EngineState::kReady) << db->FailureMessage();
    uint32_t ks;
    ASSERT_TRUE(db->FindKeyspace("crash", &ks).ok());
    std::array<int, kThreads> round_applied;
    for (int t = 0; t < kThreads; ++t) {
      // The in-flight batch (at most one per thread) is all there or not there at all.
      const int inflight = round_acks[t] + 1;
      int present = 0;
      for (int i = 0; i < kBatchKeys; ++i) {
        std::string v;
        present += db->Get(ks, Key(round, t, inflight, i), &v).ok();
      }
      ASSERT_TRUE(present == 0 || present == kBatchKeys)
          << "round " << round << " thread " << t << ": batch " << inflight << " is half visible ("
          << present << " of " << kBatchKeys << " keys)";
      round_applied[t] = present ? inflight : round_acks[t];
      std::string v;
      EXPECT_TRUE(db->Get(ks, Key(round, t, inflight + 1, 1), &v).IsNotFound());
    }
    applied.push_back(round_applied);
    // This round: every key and value. Earlier rounds: presence through the index (cheap), and
    // every value once more after the last round.
    const bool last_round = round + 1 == Rounds();
    for (int r = 0; r <= round; ++r) {
      const bool values = r == round || last_round;
      for (int t = 0; t < kThreads; ++t) {
        const int last = applied[r][t];
        ASSERT_GE(last, acked[r][t]);
        for (int b = 0; b <= last; ++b) {
          for (int i = 0; i < kBatchKeys; ++i) {
            const size_t size =
                (b + i) % 17 == 0 ? 70000 : static_cast<size_t>((b * 31 + i * 7) % 900);
            const bool deleted = i == 0 && b + 2 <= last;
            const std::string key = Key(r, t, b, i);
            const bool here = values ? Present(db.engine(), ks, key, ValueFor(r, t, b, i, size))
                                     : db->Probe(ks, key, nullptr).ok();
            ASSERT_EQ(here, !deleted) << key << " (acknowledged through batch " << acked[r][t]
                                      << ", applied through " << last << ")";
            ++checked;
          }
        }
      }
    }
  }
  std::printf("crash test: %d rounds, %llu acknowledged keys checked\n", Rounds(),
              static_cast<unsigned long long>(checked));
}

}  // namespace
}  // namespace eloqkv
