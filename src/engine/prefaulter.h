// Prefaulter: makes a shared memory region resident ahead of use, a slice at a time.
//
// The engine's region (index, value cache, log buffer) is shared anonymous memory: the kernel
// allocates and zeroes each 4 KiB page at its first touch, and until the value cache has gone
// round once that first touch is a write on the clients' path (a quarter of a listener's CPU
// under a SET load on a fresh start). Prefaulting moves that work to a background process.
//
// Invariants:
//  * It never reads or writes the memory (MADV_POPULATE_WRITE allocates and maps each page as a
//    write fault would, without the write), so it may run while other processes use the region.
//  * Slices are whole pages inside [base, base + bytes), in address order, each page once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/status.h"

namespace eloqkv {

class Prefaulter {
 public:
  Prefaulter(void* base, size_t bytes);

  // Makes up to max_bytes more of the region resident. *done once all of it is, or after an
  // error, which says why (a kernel without MADV_POPULATE_WRITE, no memory left); later calls
  // then do nothing.
  Status Step(size_t max_bytes, bool* done);

  // The memory that can be given out without swapping: the kernel's estimate (MemAvailable),
  // or less when this process's memory cgroup (a container, a systemd slice) has a limit
  // closer; UINT64_MAX when neither is known. Making more than that resident would push the host
  // into swap or the OOM killer, which then picks the process holding the most: the one
  // prefaulting.
  static uint64_t AvailableMemory();

  // What the memory cgroups on this process's path still allow: the least, over the cgroup and
  // its ancestors that have a limit (v1 or v2), of limit - (usage - inactive file pages: page
  // cache the kernel reclaims first). UINT64_MAX when no limit applies. `self_cgroup` is the
  // text of /proc/self/cgroup; `mount` holds the v2 hierarchy (`mount`) and the v1 memory
  // controller (`mount`/memory). Inside a cgroup namespace the path may not exist under the
  // mount: the mount's own directory is the process's cgroup then.
  static uint64_t CgroupHeadroom(const std::string& self_cgroup, const std::string& mount);

  size_t populated_bytes() const { return next_ - begin_; }
  size_t total_bytes() const { return end_ - begin_; }

 private:
  uintptr_t begin_;
  uintptr_t end_;
  uintptr_t next_;
  bool failed_ = false;
};

}  // namespace eloqkv
