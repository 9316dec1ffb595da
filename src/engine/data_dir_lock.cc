#include "engine/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>

namespace eloqkv {

namespace {

// Locks held for the process, by directory. Never closed: the kernel drops them at exit.
std::mutex g_process_locks_mu;
std::map<std::string, int>& ProcessLocks() {
  static auto* locks = new std::map<std::string, int>();
  return *locks;
}

Status LockFile(const std::string& dir, int* fd_out) {
  Status s = MakeDirs(dir);
  if (!s.ok()) return s;
  const std::string path = dir + "/LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, "open lock file", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) return Status::FromErrno(err, "lock", path);
    return Status::Unavailable("data directory " + dir +
                               " is in use by another engine (lock file " + path + ")");
  }
  *fd_out = fd;
  return Status::OK();
}

}  // namespace

Status MakeDirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i < path.size(); ++i) {
    cur.push_back(path[i]);
    if ((path[i] == '/' && i > 0) || i + 1 == path.size()) {
      if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
        return Status::FromErrno(errno, "create directory", cur);
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat", path);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(path + " is not a directory");
  return Status::OK();
}

Status DataDirLock::HoldForProcess(const std::string& dir) {
  std::lock_guard<std::mutex> guard(g_process_locks_mu);
  auto& locks = ProcessLocks();
  if (locks.count(dir) != 0) return Status::OK();
  int fd = -1;
  Status s = LockFile(dir, &fd);
  if (s.ok()) locks.emplace(dir, fd);
  return s;
}

bool DataDirLock::HeldByProcess(const std::string& dir) {
  std::lock_guard<std::mutex> guard(g_process_locks_mu);
  return ProcessLocks().count(dir) != 0;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

Status DataDirLock::Acquire(const std::string& dir) {
  if (fd_ >= 0) return Status::InvalidArgument("the lock is already held");
  return LockFile(dir, &fd_);
}

}  // namespace eloqkv
