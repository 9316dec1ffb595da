// Test support: temporary data directories, shared regions that survive fork(), an engine
// "instance" that can be torn down and recovered like a Postgres crash restart, and a host log.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/eloqkv.h"
#include "gtest/gtest.h"

namespace eloqkv::test {

// The I/O mode under test: ctest runs the suite once with io_uring and once with pread/pwrite.
inline IoMode TestIoMode() {
  const char* m = std::getenv("ELOQKV_TEST_IO_MODE");
  if (m != nullptr && std::string(m) == "posix") return IoMode::kPosix;
  return IoMode::kAuto;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "eloqkv-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Pages of the file at `path` that are in the page cache.
inline size_t ResidentPages(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (fd < 0 || size <= 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  EXPECT_NE(map, MAP_FAILED) << path;
  if (map == MAP_FAILED) return 0;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((static_cast<size_t>(size) + page - 1) / page);
  EXPECT_EQ(::mincore(map, static_cast<size_t>(size), in.data()), 0);
  ::munmap(map, static_cast<size_t>(size));
  size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}

// Whether files in `dir` can be opened with O_DIRECT (tmpfs refuses it).
inline bool DirectIoWorksIn(const std::string& dir) {
  const std::string probe = dir + "/direct-probe";
  const int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  ::unlink(probe.c_str());
  return fd >= 0;
}

inline Options TestOptions(const std::string& dir) {
  Options o;
  o.data_dir = dir;
  o.index_memory = size_t{32} << 20;
  o.cache_memory = size_t{8} << 20;
  o.segment_size = size_t{4} << 20;
  o.io_mode = TestIoMode();
  o.checkpoint_log_bytes = size_t{64} << 20;
  o.log = [](void*, LogLevel level, const char* msg) {
    if (level >= LogLevel::kWarning || std::getenv("ELOQKV_TEST_VERBOSE") != nullptr)
      std::fprintf(stderr, "[engine] %s\n", msg);
  };
  return o;
}

// A MAP_SHARED anonymous region: children forked after it is created share it.
class SharedRegion {
 public:
  explicit SharedRegion(size_t size) : size_(size) {
    base_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base_ == MAP_FAILED) std::abort();
  }
  ~SharedRegion() { ::munmap(base_, size_); }
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  void* data() const { return base_; }
  size_t size() const { return size_; }

 private:
  void* base_;
  size_t size_;
};

// One "server lifetime": a fresh region, formatted and recovered from the directory. Destroying it
// without Shutdown() is a crash as far as the engine is concerned.
class Instance {
 public:
  explicit Instance(const Options& o, bool recover = true)
      : options_(o), region_(std::make_unique<SharedRegion>(Engine::SharedMemorySize(o))) {
    Status s = Engine::FormatRegion(region_->data(), region_->size(), o);
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = Engine::Attach(region_->data(), o, &engine_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (recover) {
      recover_status_ = engine_->Recover();
      EXPECT_TRUE(recover_status_.ok()) << recover_status_.ToString();
    }
  }
  Engine* operator->() const { return engine_.get(); }
  Engine& engine() const { return *engine_; }
  void* region() const { return region_->data(); }
  const Options& options() const { return options_; }
  const Status& recover_status() const { return recover_status_; }
  // A second handle on the same region, as another process or thread would have.
  std::unique_ptr<Engine> AttachAnother() const {
    std::unique_ptr<Engine> e;
    Status s = Engine::Attach(region_->data(), options_, &e);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return e;
  }

 private:
  Options options_;
  std::unique_ptr<SharedRegion> region_;
  std::unique_ptr<Engine> engine_;
  Status recover_status_;
};

inline uint32_t MakeKeyspace(Engine& e, const std::string& name) {
  uint32_t id = 0;
  Status s = e.CreateKeyspace(name, &id);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return id;
}

inline std::string Value(std::mt19937_64& rng, size_t n) {
  std::string v(n, '\0');
  for (auto& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

// Runs fn in a forked child; the child exits 0 when fn returns true.
template <typename Fn>
pid_t Fork(Fn fn) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    bool ok = false;
    ok = fn();
    ::_exit(ok ? 0 : 1);
  }
  return pid;
}

// A host's log (Postgres WAL) that threads share: the engine appends every batch and asks for it
// to be flushed before anything durable. Positions count batches.
struct CountingHostLog {
  std::atomic<uint64_t> appended{0};
  std::atomic<uint64_t> flushed{0};

  // Options that log to this host.
  Options With(Options o) {
    o.replication_log = &Append;
    o.host_flush = &Flush;
    o.replication_context = this;
    return o;
  }
  static uint64_t Append(void* ctx, const ReplicatedBatch&) {
    return ++static_cast<CountingHostLog*>(ctx)->appended;
  }
  static void Flush(void* ctx, uint64_t position) {
    auto* self = static_cast<CountingHostLog*>(ctx);
    uint64_t seen = self->flushed.load();
    while (seen < position && !self->flushed.compare_exchange_weak(seen, position)) {
    }
  }
};

}  // namespace eloqkv::test
