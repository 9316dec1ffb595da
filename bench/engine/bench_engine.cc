// bench_engine: one measurement per invocation, printed as a JSON line. bench/engine/run.py runs
// these several times next to fio and prints min/median/max and ratios.
//
//   bench_engine load        --dir D --keys N --value-size V [--batch B] [--index-mb M] [--crash 1]
//   bench_engine cold-read   --dir D --keys N --seconds S [--batch 32] [--threads T] [--cache-mb M]
//   bench_engine cached-read --dir D --keys N --seconds S [--cache-mb M]
//   bench_engine write       --dir D --writers W --seconds S [--value-size V]
//   bench_engine recover     --dir D [--index-mb M]
//   bench_engine index-insert --keys N --prefix P [--digits 12]
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/eloqkv.h"
#include "engine/index.h"

namespace {

using eloqkv::Engine;
using eloqkv::Options;
using eloqkv::Status;

struct Args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  long long num(const std::string& k, long long def) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : std::atoll(it->second.c_str());
  }
};

[[noreturn]] void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "bench_engine: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

// A process-private engine instance on an anonymous mapping.
class Db {
 public:
  Db(const Args& a, bool recover = true) {
    opts_.data_dir = a.get("dir");
    opts_.index_memory = static_cast<size_t>(a.num("index-mb", 256)) << 20;
    opts_.cache_memory = static_cast<size_t>(a.num("cache-mb", 64)) << 20;
    opts_.segment_size = static_cast<size_t>(a.num("segment-mb", 64)) << 20;
    opts_.checkpoint_log_bytes = uint64_t{1} << 40;  // the bench decides when
    opts_.checkpoint_interval_ms = 1u << 30;
    const std::string io = a.get("io", "auto");
    opts_.io_mode = io == "pread" ? eloqkv::IoMode::kPosix : eloqkv::IoMode::kAuto;
    size_ = Engine::SharedMemorySize(opts_);
    region_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (region_ == MAP_FAILED) Die("mmap", Status::IOError("mmap failed"));
    Status s = Engine::FormatRegion(region_, size_, opts_);
    if (!s.ok()) Die("format", s);
    s = Engine::Attach(region_, opts_, &engine_);
    if (!s.ok()) Die("attach", s);
    if (recover) {
      s = engine_->Recover();
      if (!s.ok()) Die("recover", s);
    }
  }
  ~Db() {
    engine_.reset();
    ::munmap(region_, size_);
  }
  Engine* operator->() { return engine_.get(); }
  Engine& engine() { return *engine_; }
  uint32_t Keyspace() {
    uint32_t id;
    if (engine_->FindKeyspace("bench", &id).ok()) return id;
    Status s = engine_->CreateKeyspace("bench", &id);
    if (!s.ok()) Die("create keyspace", s);
    return id;
  }

 private:
  Options opts_;
  size_t size_;
  void* region_;
  std::unique_ptr<Engine> engine_;
};

std::string KeyOf(long long i) {
  char k[24];
  std::snprintf(k, sizeof(k), "k%012lld", i);
  return k;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Load(const Args& a) {
  Db db(a);
  const uint32_t ks = db.Keyspace();
  const long long keys = a.num("keys", 100000);
  const size_t vsize = static_cast<size_t>(a.num("value-size", 4096));
  const long long batch = a.num("batch", 256);
  std::mt19937_64 rng(42);
  std::string value(vsize, 'x');
  const auto t0 = std::chrono::steady_clock::now();
  for (long long i = 0; i < keys; i += batch) {
    eloqkv::WriteBatch b;
    for (long long j = i; j < std::min(keys, i + batch); ++j) {
      for (size_t p = 0; p + 8 <= value.size(); p += 64) {
        const uint64_t r = rng();
        std::memcpy(value.data() + p, &r, 8);
      }
      Status s = b.Put(ks, KeyOf(j), value);
      if (!s.ok()) Die("put", s);
    }
    Status s = db->Write(b);
    if (!s.ok()) Die("write", s);
  }
  const double load_s = Seconds(t0);
  const auto t1 = std::chrono::steady_clock::now();
  // --crash 1 leaves without a checkpoint (every write acknowledged, so all of it is durable):
  // the next start replays the whole log.
  Status s = a.num("crash", 0) ? Status::OK() : db->Shutdown();
  if (!s.ok()) Die("shutdown", s);
  const auto info = db->Info();
  std::printf("{\"bench\":\"load\",\"keys\":%lld,\"value_size\":%zu,\"seconds\":%.3f,"
              "\"checkpoint_seconds\":%.3f,\"disk_bytes\":%llu,\"index_bytes\":%llu}\n",
              keys, vsize, load_s, Seconds(t1), static_cast<unsigned long long>(info.disk_bytes),
              static_cast<unsigned long long>(info.index_memory_used));
  return 0;
}

int ColdRead(const Args& a) {
  Db db(a);
  const uint32_t ks = db.Keyspace();
  const long long keys = a.num("keys", 100000);
  const int batch = static_cast<int>(a.num("batch", 32));
  const int threads = static_cast<int>(a.num("threads", 1));
  const double seconds = static_cast<double>(a.num("seconds", 10));
  std::atomic<uint64_t> ops{0}, device{0}, hits{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(7 + t);
      std::vector<std::string> ks_s(batch);
      std::vector<std::string_view> views(batch);
      std::vector<std::string> values;
      std::vector<Status> st;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < batch; ++i) {
          ks_s[i] = KeyOf(static_cast<long long>(rng() % static_cast<uint64_t>(keys)));
          views[i] = ks_s[i];
        }
        eloqkv::ReadInfo info;
        db->MultiGet(ks, views, &values, &st, &info);
        for (const auto& s : st) errors += !s.ok();
        ops.fetch_add(batch, std::memory_order_relaxed);
        device.fetch_add(info.device_reads, std::memory_order_relaxed);
        hits.fetch_add(info.cache_hits, std::memory_order_relaxed);
      }
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& t : ts) t.join();
  const double el = Seconds(t0);
  if (errors.load() != 0) Die("cold-read", Status::IOError(std::to_string(errors.load()) + " failed reads"));
  std::printf("{\"bench\":\"cold-read\",\"threads\":%d,\"batch\":%d,\"ops_per_s\":%.0f,"
              "\"device_reads_per_s\":%.0f,\"cache_hit_ratio\":%.3f,\"io_mode\":\"%s\"}\n",
              threads, batch, ops.load() / el, device.load() / el,
              static_cast<double>(hits.load()) / std::max<uint64_t>(1, ops.load()),
              db->Info().io_mode.c_str());
  return 0;
}

int CachedRead(const Args& a) {
  Db db(a);
  const uint32_t ks = db.Keyspace();
  const long long keys = a.num("keys", 10000);
  const double seconds = static_cast<double>(a.num("seconds", 5));
  std::string v;
  // Warm the cache, and build the in-process hash map peer from the same data.
  std::unordered_map<std::string, std::string> peer;
  for (long long i = 0; i < keys; ++i) {
    Status s = db->Get(ks, KeyOf(i), &v);
    if (!s.ok()) Die("warm", s);
    peer.emplace(KeyOf(i), v);
  }
  auto run = [&](auto&& fn) {
    std::mt19937_64 rng(3);
    uint64_t n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::string key;
    while (true) {
      for (int i = 0; i < 1000; ++i) {
        key = KeyOf(static_cast<long long>(rng() % static_cast<uint64_t>(keys)));
        fn(key);
      }
      n += 1000;
      if (Seconds(t0) >= seconds) break;
    }
    return n / Seconds(t0);
  };
  uint64_t misses = 0;
  const double engine_ops = run([&](const std::string& k) {
    eloqkv::ReadInfo info;
    if (!db->Get(ks, k, &v, &info).ok()) Die("get", Status::NotFound(k));
    misses += info.device_reads;
  });
  const double map_ops = run([&](const std::string& k) { v = peer.find(k)->second; });
  std::printf("{\"bench\":\"cached-read\",\"keys\":%lld,\"ops_per_s\":%.0f,"
              "\"hash_map_ops_per_s\":%.0f,\"device_reads\":%llu}\n",
              keys, engine_ops, map_ops, static_cast<unsigned long long>(misses));
  return 0;
}

int WriteBench(const Args& a) {
  Db db(a);
  const uint32_t ks = db.Keyspace();
  const int writers = static_cast<int>(a.num("writers", 1));
  const double seconds = static_cast<double>(a.num("seconds", 5));
  const size_t vsize = static_cast<size_t>(a.num("value-size", 256));
  std::atomic<uint64_t> ops{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  const auto fsyncs0 = db->Info().fsyncs;
  for (int t = 0; t < writers; ++t) {
    ts.emplace_back([&, t] {
      std::string value(vsize, static_cast<char>('a' + t % 26));
      for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        Status s = db->Put(ks, "w" + std::to_string(t) + "-" + std::to_string(i % 100000), value);
        if (!s.ok()) Die("put", s);
        ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& t : ts) t.join();
  const double el = Seconds(t0);
  const auto info = db->Info();
  std::printf("{\"bench\":\"write\",\"writers\":%d,\"value_size\":%zu,\"ops_per_s\":%.0f,"
              "\"fsyncs_per_s\":%.0f,\"fsync_p99_us\":%.1f}\n",
              writers, vsize, ops.load() / el, (info.fsyncs - fsyncs0) / el,
              info.fsync_latency.p99_us);
  return 0;
}

int Recover(const Args& a) {
  Db db(a, /*recover=*/false);
  const auto t0 = std::chrono::steady_clock::now();
  Status s = db->Recover();
  if (!s.ok()) Die("recover", s);
  const double el = Seconds(t0);
  const auto info = db->Info();
  std::printf("{\"bench\":\"recover\",\"keys\":%llu,\"seconds\":%.3f,\"replayed_records\":%llu}\n",
              static_cast<unsigned long long>(info.keys), el,
              static_cast<unsigned long long>(info.recovered_records));
  return 0;
}

// Inserts into the shared-memory index alone (no log, no values), against std::map inserts of the
// same keys in the same process: keys `prefix` + a random number in `digits` zero-padded digits,
// in random order. Long shared prefixes are what node prefixes exist for.
int IndexInsert(const Args& a) {
  const auto keys = static_cast<size_t>(a.num("keys", 1000000));
  const std::string prefix = a.get("prefix", "key:");
  const int digits = static_cast<int>(a.num("digits", 12));
  std::mt19937_64 rng(7);
  std::vector<std::string> ks;
  ks.reserve(keys);
  char b[32];
  for (size_t i = 0; i < keys; ++i) {
    std::snprintf(b, sizeof b, "%0*llu", digits,
                  static_cast<unsigned long long>(rng() % 1000000000000ull));
    ks.push_back(prefix + b);
  }
  const size_t bytes = eloqkv::Index::RequiredBytes(std::max<size_t>(keys * 160, 64 << 20));
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED) Die("index memory", Status::IOError("mmap failed"));
  eloqkv::Index::Format(mem, bytes);
  eloqkv::Index index(mem);
  eloqkv::EntryFields f;
  f.segment = 1;
  f.length = 100;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < keys; ++i) {
    f.seq = i + 1;
    eloqkv::EntryFields old;
    if (index.Find(1, ks[i], &old) != 0) continue;
    if (index.Insert(1, ks[i], f) == 0) Die("index insert", Status::IndexFull("index full"));
  }
  const double index_s = Seconds(t0);
  const Status check = index.CheckInvariants();
  if (!check.ok()) Die("index invariants", check);
  std::map<std::pair<uint32_t, std::string>, eloqkv::EntryFields> map;
  t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < keys; ++i) map.try_emplace({1, ks[i]}, f);
  const double map_s = Seconds(t0);
  std::printf(
      "{\"bench\":\"index-insert\",\"keys\":%zu,\"prefix\":\"%s\",\"ops_per_s\":%.0f,"
      "\"map_ops_per_s\":%.0f}\n",
      keys, prefix.c_str(), keys / index_s, keys / map_s);
  ::munmap(mem, bytes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_engine load|cold-read|cached-read|write|recover|index-insert ...\n");
    return 2;
  }
  Args a;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) {
      std::fprintf(stderr, "bench_engine: expected --option value, got %s\n", argv[i]);
      return 2;
    }
    a.kv[argv[i] + 2] = argv[i + 1];
  }
  const std::string cmd = argv[1];
  if (cmd == "index-insert") return IndexInsert(a);
  if (a.get("dir").empty()) {
    std::fprintf(stderr, "bench_engine: --dir is required\n");
    return 2;
  }
  if (cmd == "load") return Load(a);
  if (cmd == "cold-read") return ColdRead(a);
  if (cmd == "cached-read") return CachedRead(a);
  if (cmd == "write") return WriteBench(a);
  if (cmd == "recover") return Recover(a);
  std::fprintf(stderr, "bench_engine: unknown command %s\n", cmd.c_str());
  return 2;
}
