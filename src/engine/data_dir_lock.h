// DataDirLock: one engine per data directory, across processes.
//
// Invariants:
//  * A data directory is used by at most one engine at a time: whoever uses it holds an
//    exclusive flock on <dir>/LOCK, and a second holder is refused with kUnavailable.
//  * A lock taken with HoldForProcess() lives until the process exits, and processes forked
//    after it share it (flock belongs to the open file description). A host that outlives
//    its workers — the postmaster — takes it so that a worker exiting never releases the
//    directory while other processes still write to it.
//  * Taking a lock this process already holds for the process is a no-op, so a host that
//    re-initialises (a crash restart) keeps its lock rather than fighting itself.
#pragma once

#include <string>

#include "engine/status.h"

namespace eloqkv {

// Creates dir (and its parents) if missing; fails if it exists and is not a directory.
Status MakeDirs(const std::string& path);

class DataDirLock {
 public:
  // Takes the lock on dir for the rest of this process's life (and its forked children's).
  static Status HoldForProcess(const std::string& dir);
  // Whether this process (or the parent it was forked from) holds dir's lock for the process.
  static bool HeldByProcess(const std::string& dir);

  // A lock owned by one object, released when it is destroyed.
  DataDirLock() = default;
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  Status Acquire(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace eloqkv
