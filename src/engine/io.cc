#include "engine/io.h"

#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

namespace eloqkv {
namespace {

constexpr unsigned kRingEntries = 128;

Status ErrnoStatus(int err, const char* what) { return Status::FromErrno(err, what, ""); }

Status PwriteFull(int fd, const char* data, size_t n, uint64_t offset) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "pwrite");
    }
    if (w == 0) return Status::IOError("pwrite wrote nothing");
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::OK();
}

Status FdatasyncRetrying(int fd) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return ErrnoStatus(errno, "fdatasync");
  }
  return Status::OK();
}

class PosixIo final : public Io {
 public:
  Status WriteAt(int fd, const char* data, size_t n, uint64_t offset) override {
    return PwriteFull(fd, data, n, offset);
  }
  Status SyncData(int fd) override { return FdatasyncRetrying(fd); }

  void ReadBatch(std::span<ReadRequest> requests) override {
    for (ReadRequest& r : requests) r.result = ReadFull(r.fd, r.buf, r.len, r.offset);
  }

  bool uses_io_uring() const override { return false; }

  static ssize_t ReadFull(int fd, char* buf, size_t len, uint64_t offset) {
    size_t done = 0;
    while (done < len) {
      const ssize_t r = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (r == 0) break;  // end of file
      done += static_cast<size_t>(r);
    }
    return static_cast<ssize_t>(done);
  }
};

class UringIo final : public Io {
 public:
  static std::unique_ptr<UringIo> Create(std::string* why) {
    auto io = std::unique_ptr<UringIo>(new UringIo());
    const int rc = io_uring_queue_init(kRingEntries, &io->ring_, 0);
    if (rc < 0) {
      *why = std::string("io_uring_queue_init: ") + std::strerror(-rc);
      return nullptr;
    }
    io->ready_ = true;
    return io;
  }
  ~UringIo() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }

  // Writes and syncs are plain system calls. The log is written buffered, and io_uring runs a
  // buffered write or an fsync in an io-wq worker thread, which only adds a context switch when,
  // as here, the caller waits for it anyway (measured: fsync 300 us vs 160 us; a commit round
  // of an 8-client update load spent a quarter of its time switching to io-wq workers).
  Status WriteAt(int fd, const char* data, size_t n, uint64_t offset) override {
    return PwriteFull(fd, data, n, offset);
  }
  Status SyncData(int fd) override { return FdatasyncRetrying(fd); }

  // Keeps up to kRingEntries reads in flight and refills the ring as each completes, rather than
  // draining the ring between waves (the device idles while a wave's slowest read finishes).
  void ReadBatch(std::span<ReadRequest> requests) override {
    if (!ready_) {
      for (ReadRequest& r : requests) r.result = PosixReadFull(r);
      return;
    }
    for (ReadRequest& r : requests) r.result = kNotRead;
    size_t next = 0;       // the first request not yet in the ring
    size_t queued = 0;     // prepared, not yet taken by the kernel
    size_t in_flight = 0;  // taken by the kernel, not yet completed
    bool failed = false;
    while (next < requests.size() || queued + in_flight > 0) {
      while (next < requests.size() && queued + in_flight < kRingEntries) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;
        ReadRequest& r = requests[next];
        io_uring_prep_read(sqe, r.fd, r.buf, static_cast<unsigned>(r.len), r.offset);
        io_uring_sqe_set_data64(sqe, next);
        ++next;
        ++queued;
      }
      const int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc == -EINTR) continue;
      // Nothing taken and nothing to wait for would spin: handled as a refusal.
      if (rc < 0 || (rc == 0 && in_flight == 0)) {
        failed = true;
        break;
      }
      queued -= std::min<size_t>(queued, static_cast<size_t>(rc));
      in_flight += static_cast<size_t>(rc);
      io_uring_cqe* cqe = nullptr;
      while (in_flight > 0 && io_uring_peek_cqe(&ring_, &cqe) == 0) {
        requests[io_uring_cqe_get_data64(cqe)].result = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        --in_flight;
      }
    }
    if (failed) Abandon(in_flight);
    // What the ring did not finish (a failed submission, a short or interrupted read: rare) is
    // read synchronously.
    for (ReadRequest& r : requests) {
      if (r.result == kNotRead || r.result == -EINTR || r.result == -EAGAIN ||
          (r.result >= 0 && static_cast<size_t>(r.result) < r.len))
        r.result = PosixReadFull(r);
    }
  }

  bool uses_io_uring() const override { return ready_; }

 private:
  UringIo() = default;

  static constexpr ssize_t kNotRead = std::numeric_limits<ssize_t>::min();

  // The kernel refused a submission (it takes none of the prepared entries then). Those stay in
  // the ring and would be submitted by the next call with this call's request numbers: wait out
  // what is in flight (its buffers are the caller's), then replace the ring. If no new ring can
  // be made, this thread reads with pread from now on.
  void Abandon(size_t in_flight) {
    io_uring_cqe* cqe = nullptr;
    while (in_flight > 0) {
      const int rc = io_uring_wait_cqe(&ring_, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) break;
      io_uring_cqe_seen(&ring_, cqe);
      --in_flight;
    }
    // Reads that could not be waited out may still land in the caller's buffers: such a ring
    // is left mapped (leaked) rather than torn down under them.
    if (in_flight == 0) io_uring_queue_exit(&ring_);
    ring_ = io_uring{};
    ready_ = io_uring_queue_init(kRingEntries, &ring_, 0) == 0;
  }

  static ssize_t PosixReadFull(const ReadRequest& r) {
    size_t done = 0;
    while (done < r.len) {
      const ssize_t n = ::pread(r.fd, r.buf + done, r.len - done, static_cast<off_t>(r.offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(done);
  }

  io_uring ring_{};
  bool ready_ = false;
};

// Bumped in the child of every fork(), so a thread can tell that its rings were inherited
// without a getpid() system call on every I/O.
std::atomic<uint64_t> g_fork_generation{1};
std::once_flag g_atfork_once;

struct ThreadIo {
  uint64_t generation = 0;
  std::unique_ptr<Io> posix;
  std::unique_ptr<UringIo> uring;
  bool uring_refused = false;
};

thread_local ThreadIo t_io;

}  // namespace

Io* Io::ForThread(IoMode mode, std::string* fallback_reason) {
  std::call_once(g_atfork_once, [] {
    pthread_atfork(nullptr, nullptr, [] { g_fork_generation.fetch_add(1, std::memory_order_relaxed); });
  });
  const uint64_t generation = g_fork_generation.load(std::memory_order_relaxed);
  if (t_io.generation != generation) {
    // Inherited from the parent across fork(): the ring belongs to the parent. Leak the object
    // instead of tearing the parent's mappings down from here; make our own.
    (void)t_io.uring.release();
    (void)t_io.posix.release();
    t_io = ThreadIo{};
    t_io.generation = generation;
  }
  if (mode != IoMode::kPosix && !t_io.uring_refused) {
    if (!t_io.uring) {
      std::string why;
      t_io.uring = UringIo::Create(&why);
      if (!t_io.uring) {
        t_io.uring_refused = true;
        if (fallback_reason != nullptr) *fallback_reason = why;
      }
    }
    if (t_io.uring) return t_io.uring.get();
  }
  if (!t_io.posix) t_io.posix = std::make_unique<PosixIo>();
  return t_io.posix.get();
}

bool Io::ProbeIoUring(std::string* why) {
  io_uring ring{};
  const int rc = io_uring_queue_init(4, &ring, 0);
  if (rc < 0) {
    *why = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    return false;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_nop(sqe);
  int res = io_uring_submit_and_wait(&ring, 1);
  io_uring_cqe* cqe = nullptr;
  if (res >= 0) res = io_uring_wait_cqe(&ring, &cqe);
  if (res >= 0 && cqe != nullptr) io_uring_cqe_seen(&ring, cqe);
  io_uring_queue_exit(&ring);
  if (res < 0) {
    *why = std::string("io_uring nop: ") + std::strerror(-res);
    return false;
  }
  return true;
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

void AlignedBuffer::Release() {
  std::free(data_);
  data_ = nullptr;
  cap_ = 0;
}

char* AlignedBuffer::Reserve(size_t n) {
  if (n <= cap_) return data_;
  size_t cap = cap_ ? cap_ : kAlign;
  while (cap < n) cap *= 2;
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, cap) != 0) return nullptr;
  std::free(data_);
  data_ = static_cast<char*>(p);
  cap_ = cap;
  return data_;
}

SequentialFileReader::~SequentialFileReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status SequentialFileReader::Open(const std::string& path, bool direct) {
  path_ = path;
  direct_ = false;
  if (direct) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    direct_ = fd_ >= 0;
  }
  if (fd_ < 0) fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // e.g. tmpfs refuses O_DIRECT
  return fd_ < 0 ? Status::FromErrno(errno, "open " + what_, path) : Status::OK();
}

Status SequentialFileReader::Read(uint64_t offset, size_t n, std::string_view* out) {
  // O_DIRECT transfers start and end on block boundaries: read the blocks around the range.
  const uint64_t align = direct_ ? AlignedBuffer::kAlign : 1;
  const uint64_t from = offset / align * align;
  const size_t skip = static_cast<size_t>(offset - from);
  const size_t length = static_cast<size_t>((skip + n + align - 1) / align * align);
  char* p = buf_->Reserve(length);
  if (p == nullptr) return Status::FromErrno(ENOMEM, "buffer to read " + what_, path_);
  size_t got = 0;
  while (got < length) {
    const ssize_t r = ::pread(fd_, p + got, length - got, static_cast<off_t>(from + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno(errno, "read " + what_, path_);
    if (r == 0) break;
    got += static_cast<size_t>(r);
    if (direct_ && got % align != 0) break;  // a short direct read ends at the end of the file
  }
  *out = got <= skip ? std::string_view() : std::string_view(p + skip, std::min(n, got - skip));
  return Status::OK();
}

}  // namespace eloqkv
