#include "engine/prefaulter.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older headers lack the name
#endif

namespace eloqkv {
namespace {

uintptr_t PageSize() {
  const long page = ::sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<uintptr_t>(page) : 4096;
}

}  // namespace

Prefaulter::Prefaulter(void* base, size_t bytes) {
  const uintptr_t page = PageSize();
  const auto start = reinterpret_cast<uintptr_t>(base);
  // Only whole pages: a partial page at either end is shared with memory that is not the
  // region's, and the kernel works in pages anyway.
  begin_ = (start + page - 1) & ~(page - 1);
  end_ = std::max(begin_, (start + bytes) & ~(page - 1));
  next_ = begin_;
}

Status Prefaulter::Step(size_t max_bytes, bool* done) {
  *done = true;
  if (failed_) return Status::OK();
  const uintptr_t page = PageSize();
  const uintptr_t slice = std::max(page, static_cast<uintptr_t>(max_bytes) & ~(page - 1));
  const uintptr_t until = std::min(end_, next_ + slice);
  if (next_ < until &&
      ::madvise(reinterpret_cast<void*>(next_), until - next_, MADV_POPULATE_WRITE) != 0) {
    const int err = errno;
    failed_ = true;
    if (err == EINVAL)
      return Status::InvalidArgument(
          "this kernel cannot prefault shared memory (MADV_POPULATE_WRITE needs Linux 5.14)");
    return Status::FromErrno(err, "prefault shared memory", "");
  }
  next_ = until;
  *done = next_ == end_;
  return Status::OK();
}

uint64_t Prefaulter::AvailableMemory() {
  FILE* f = std::fopen("/proc/meminfo", "re");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  std::fclose(f);
  return static_cast<uint64_t>(kb) * 1024;
}

}  // namespace eloqkv
