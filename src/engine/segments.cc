#include "engine/segments.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "engine/record.h"

namespace eloqkv {

void SegmentTable::Format(void* region) {
  auto* h = new (region) Header();
  h->disk_bytes.store(0);
  h->count.store(0);
  h->deletions.store(0);
  auto* s = reinterpret_cast<SegmentSlot*>(h + 1);
  for (uint32_t i = 0; i < kSlots; ++i) {
    new (&s[i]) SegmentSlot();
    s[i].id.store(0);
    s[i].state.store(static_cast<uint32_t>(SegmentState::kFree));
  }
}

SegmentSlot* SegmentTable::Get(uint32_t id) const {
  SegmentSlot* s = &slots()[id % kSlots];
  if (id == 0 || s->id.load(std::memory_order_acquire) != id ||
      s->state.load(std::memory_order_acquire) == static_cast<uint32_t>(SegmentState::kFree))
    return nullptr;
  return s;
}

bool SegmentTable::Add(uint32_t id, SegmentState state, uint64_t size, uint64_t capacity) {
  SegmentSlot* s = &slots()[id % kSlots];
  if (s->state.load() != static_cast<uint32_t>(SegmentState::kFree)) return false;
  s->size.store(size);
  s->capacity.store(capacity);
  s->live_bytes.store(0);
  s->pinned_bytes.store(0);
  s->flags.store(0);
  s->id.store(id, std::memory_order_release);
  s->state.store(static_cast<uint32_t>(state), std::memory_order_release);
  h_->disk_bytes.fetch_add(capacity);
  h_->count.fetch_add(1);
  return true;
}

void SegmentTable::Remove(uint32_t id) {
  SegmentSlot* s = Get(id);
  if (s == nullptr) return;
  h_->disk_bytes.fetch_sub(s->capacity.load());
  h_->count.fetch_sub(1);
  s->state.store(static_cast<uint32_t>(SegmentState::kFree), std::memory_order_release);
  h_->deletions.fetch_add(1, std::memory_order_release);
}

void SegmentTable::AddLive(uint32_t id, int64_t delta) {
  SegmentSlot* s = Get(id);
  if (s != nullptr) s->live_bytes.fetch_add(delta, std::memory_order_relaxed);
}

void SegmentTable::AddPinned(uint32_t id, int64_t delta) {
  SegmentSlot* s = Get(id);
  if (s != nullptr) s->pinned_bytes.fetch_add(delta, std::memory_order_relaxed);
}

void SegmentTable::SetFlags(uint32_t id, uint32_t flags) {
  SegmentSlot* s = Get(id);
  if (s != nullptr) s->flags.fetch_or(flags, std::memory_order_relaxed);
}

void SegmentTable::SetCapacity(uint32_t id, uint64_t capacity) {
  SegmentSlot* s = Get(id);
  if (s == nullptr) return;
  const uint64_t old = s->capacity.exchange(capacity);
  h_->disk_bytes.fetch_add(capacity - old);  // unsigned wrap-around subtracts
}

std::vector<uint32_t> SegmentTable::Ids() const {
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < kSlots; ++i) {
    const SegmentSlot& s = slots()[i];
    if (s.state.load(std::memory_order_acquire) != static_cast<uint32_t>(SegmentState::kFree))
      ids.push_back(s.id.load(std::memory_order_acquire));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

SegmentFiles::~SegmentFiles() {
  for (auto& [id, f] : fds_) {
    if (f.write >= 0) ::close(f.write);
    if (f.read >= 0) ::close(f.read);
  }
}

std::string SegmentFiles::Name(uint32_t id) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%010u.seg", id);
  return buf;
}

bool SegmentFiles::ParseName(const std::string& name, uint32_t* id) {
  if (name.size() != 14 || name.compare(10, 4, ".seg") != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < 10; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  if (v == 0 || v > UINT32_MAX) return false;
  *id = static_cast<uint32_t>(v);
  return true;
}

Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open directory", dir);
  Status s;
  if (::fsync(fd) != 0) s = Status::FromErrno(errno, "fsync directory", dir);
  ::close(fd);
  return s;
}

Status SegmentFiles::Create(uint32_t id, uint64_t capacity) {
  const std::string path = Path(id);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, "create segment", path);
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(path.c_str());
    return s;
  };
  int rc = ::fallocate(fd, 0, 0, static_cast<off_t>(capacity));
  if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
    rc = ::posix_fallocate(fd, 0, static_cast<off_t>(capacity));
    if (rc != 0) {
      errno = rc;
      rc = -1;
    }
  }
  if (rc != 0) return fail(Status::FromErrno(errno, "preallocate segment", path));
  const std::string header = EncodeSegmentHeader(id);
  if (::pwrite(fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
    return fail(Status::FromErrno(errno, "write segment header", path));
  if (::fsync(fd) != 0) return fail(Status::FromErrno(errno, "fsync segment", path));
  Status s = SyncDirectory(dir_);
  if (!s.ok()) return fail(s);
  std::lock_guard<std::mutex> lock(mu_);
  Fds& f = fds_[id];
  if (f.write >= 0) ::close(f.write);
  f.write = fd;
  return Status::OK();
}

Status SegmentFiles::Open(uint32_t id, Fds* fds) {
  const std::string path = Path(id);
  if (fds->write < 0) {
    fds->write = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fds->write < 0) return Status::FromErrno(errno, "open segment", path);
  }
  if (fds->read < 0) {
    if (direct_) {
      fds->read = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
      fds->direct = fds->read >= 0;
    }
    if (fds->read < 0) {
      if (direct_) direct_refused_.store(true, std::memory_order_relaxed);
      fds->read = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      fds->direct = false;
    }
    if (fds->read < 0) return Status::FromErrno(errno, "open segment", path);
  }
  return Status::OK();
}

Status SegmentFiles::WriteFd(uint32_t id, int* fd) {
  std::lock_guard<std::mutex> lock(mu_);
  Fds& f = fds_[id];
  if (f.write < 0) {
    Status s = Open(id, &f);
    if (!s.ok()) return s;
  }
  *fd = f.write;
  return Status::OK();
}

Status SegmentFiles::ReadFd(uint32_t id, int* fd, bool* direct) {
  std::lock_guard<std::mutex> lock(mu_);
  Fds& f = fds_[id];
  if (f.read < 0) {
    Status s = Open(id, &f);
    if (!s.ok()) {
      fds_.erase(id);
      return s;
    }
  }
  *fd = f.read;
  *direct = f.direct;
  return Status::OK();
}

void SegmentFiles::DropStale(const SegmentTable& table) {
  const uint64_t deletions = table.deletions();
  std::lock_guard<std::mutex> lock(mu_);
  if (deletions == seen_deletions_) return;
  seen_deletions_ = deletions;
  for (auto it = fds_.begin(); it != fds_.end();) {
    if (table.Get(it->first) == nullptr) {
      if (it->second.write >= 0) ::close(it->second.write);
      if (it->second.read >= 0) ::close(it->second.read);
      it = fds_.erase(it);
    } else {
      ++it;
    }
  }
}

Status SegmentFiles::Delete(uint32_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fds_.find(id);
    if (it != fds_.end()) {
      if (it->second.write >= 0) ::close(it->second.write);
      if (it->second.read >= 0) ::close(it->second.read);
      fds_.erase(it);
    }
  }
  const std::string path = Path(id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Status::FromErrno(errno, "delete segment", path);
  return Status::OK();
}

}  // namespace eloqkv
