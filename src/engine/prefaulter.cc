#include "engine/prefaulter.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
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

bool ReadSmallFile(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) return false;
  out->clear();
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out->size() < (1 << 20))
    out->append(buf, n);
  std::fclose(f);
  return true;
}

// A file holding one number; "max" (v2's "no limit") and v1's page-rounded 2^63 read as none.
bool ReadLimit(const std::string& path, uint64_t* value) {
  std::string text;
  if (!ReadSmallFile(path, &text)) return false;
  if (text.compare(0, 3, "max") == 0) {
    *value = UINT64_MAX;
    return true;
  }
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str()) return false;
  *value = v >= (uint64_t{1} << 62) ? UINT64_MAX : static_cast<uint64_t>(v);
  return true;
}

// One counter of a memory.stat file; 0 when absent.
uint64_t StatValue(const std::string& stat, const std::string& name) {
  size_t at = 0;
  while (at < stat.size()) {
    size_t end = stat.find('\n', at);
    if (end == std::string::npos) end = stat.size();
    if (stat.compare(at, name.size(), name) == 0 && at + name.size() < end &&
        stat[at + name.size()] == ' ')
      return std::strtoull(stat.c_str() + at + name.size() + 1, nullptr, 10);
    at = end + 1;
  }
  return 0;
}

enum CgroupVersion { kCgroupV1, kCgroupV2 };

// The least headroom over `root`/`path` and its ancestors up to `root` itself.
uint64_t HierarchyHeadroom(const std::string& root, std::string path, CgroupVersion version) {
  const char* limit_file = version == kCgroupV2 ? "/memory.max" : "/memory.limit_in_bytes";
  const char* usage_file = version == kCgroupV2 ? "/memory.current" : "/memory.usage_in_bytes";
  // v1's total_ counters cover the subtree, as its usage does; v2's are hierarchical already.
  const char* inactive = version == kCgroupV2 ? "inactive_file" : "total_inactive_file";
  while (!path.empty() && path.back() == '/') path.pop_back();
  std::string probe;
  if (!ReadSmallFile(root + path + "/cgroup.procs", &probe)) path.clear();  // a namespace
  uint64_t headroom = UINT64_MAX;
  for (;;) {
    const std::string dir = root + path;
    uint64_t limit = UINT64_MAX, high = UINT64_MAX, usage = 0;
    (void)ReadLimit(dir + limit_file, &limit);  // unreadable: no limit
    // v2's memory.high: above it the kernel throttles the group and reclaims hard, which a
    // prefault must not bring about any more than the hard limit.
    if (version == kCgroupV2 && ReadLimit(dir + "/memory.high", &high))
      limit = std::min(limit, high);
    if (limit != UINT64_MAX && ReadLimit(dir + usage_file, &usage)) {
      std::string stat;
      const uint64_t reclaimable = ReadSmallFile(dir + "/memory.stat", &stat)
                                       ? std::min(usage, StatValue(stat, inactive))
                                       : 0;
      const uint64_t used = usage - reclaimable;
      headroom = std::min(headroom, limit > used ? limit - used : 0);
    }
    if (path.empty()) break;
    const size_t slash = path.rfind('/');
    path.resize(slash == std::string::npos ? 0 : slash);
  }
  return headroom;
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
  char line[256];
  unsigned long long kb = 0;
  while (f != nullptr && std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  if (f != nullptr) std::fclose(f);
  const uint64_t available = kb == 0 ? UINT64_MAX : static_cast<uint64_t>(kb) * 1024;
  std::string self;
  if (!ReadSmallFile("/proc/self/cgroup", &self)) return available;
  return std::min(available, CgroupHeadroom(self, "/sys/fs/cgroup"));
}

uint64_t Prefaulter::CgroupHeadroom(const std::string& self_cgroup, const std::string& mount) {
  uint64_t headroom = UINT64_MAX;
  size_t start = 0;
  while (start < self_cgroup.size()) {
    size_t end = self_cgroup.find('\n', start);
    if (end == std::string::npos) end = self_cgroup.size();
    const std::string line = self_cgroup.substr(start, end - start);
    start = end + 1;
    // hierarchy-id:controllers:path; v2 is "0::path", v1's memory controller names "memory".
    const size_t c1 = line.find(':');
    const size_t c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    const std::string path = line.substr(c2 + 1);
    if (controllers.empty() && line.compare(0, c1, "0") == 0) {
      headroom = std::min(headroom, HierarchyHeadroom(mount, path, kCgroupV2));
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      headroom = std::min(headroom, HierarchyHeadroom(mount + "/memory", path, kCgroupV1));
    }
  }
  return headroom;
}

}  // namespace eloqkv
