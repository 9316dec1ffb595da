// Io: positional reads, writes and data syncs through io_uring, or pread/pwrite/fdatasync.
//
// Invariants:
//  * Each thread of each process has its own ring, created lazily; a ring inherited across
//    fork() is never used by the child (it makes its own).
//  * WriteAt writes every byte or fails; short transfers are continued, EINTR retried.
//  * ReadBatch keeps the device busy with the whole batch: with io_uring it submits up to a
//    ring's worth before waiting for any, and refills the ring as each read completes. Every
//    request ends with a result (bytes read or -errno); short and interrupted reads are finished
//    with pread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "engine/eloqkv.h"

namespace eloqkv {

struct ReadRequest {
  int fd = -1;
  char* buf = nullptr;
  size_t len = 0;
  uint64_t offset = 0;
  ssize_t result = 0;  // bytes read, or -errno
};

class Io {
 public:
  virtual ~Io() = default;
  virtual Status WriteAt(int fd, const char* data, size_t n, uint64_t offset) = 0;
  virtual Status SyncData(int fd) = 0;
  virtual void ReadBatch(std::span<ReadRequest> requests) = 0;
  virtual bool uses_io_uring() const = 0;

  // The calling thread's Io for `mode` (kIoUring falls back to POSIX when this process may not
  // create a ring; `*fallback_reason` then says why, once).
  static Io* ForThread(IoMode mode, std::string* fallback_reason);
  // Whether io_uring works here; *why explains a refusal.
  static bool ProbeIoUring(std::string* why);
};

// Aligned buffer for O_DIRECT transfers.
class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;
  AlignedBuffer() = default;
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  // Ensures capacity of at least n bytes; contents are not preserved.
  char* Reserve(size_t n);
  char* data() const { return data_; }
  size_t capacity() const { return cap_; }
  void Release();

 private:
  char* data_ = nullptr;
  size_t cap_ = 0;
};

// Reads byte ranges of one file into a buffer the caller keeps (so repeated reads touch no new
// memory), through O_DIRECT when asked and the file system allows it: data read once, such as
// a segment being compacted, then does not displace the host's cached pages.
class SequentialFileReader {
 public:
  // `what` names the file in errors: "open <what> "<path>": ...".
  SequentialFileReader(AlignedBuffer* buffer, std::string what)
      : buf_(buffer), what_(std::move(what)) {}
  ~SequentialFileReader();
  SequentialFileReader(const SequentialFileReader&) = delete;
  SequentialFileReader& operator=(const SequentialFileReader&) = delete;

  Status Open(const std::string& path, bool direct);
  // Up to `n` bytes at `offset` (fewer at the end of the file, none past it) into *out, valid
  // until the next Read.
  Status Read(uint64_t offset, size_t n, std::string_view* out);
  bool direct() const { return direct_; }

 private:
  AlignedBuffer* buf_;
  std::string what_;
  std::string path_;
  bool direct_ = false;
  int fd_ = -1;
};

}  // namespace eloqkv
