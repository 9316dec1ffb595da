// Checkpoints: a fuzzy, sorted dump of the index taken while writes continue, so that recovery
// loads it and replays only the log written after its start position.
//
// File "ckpt-<lsn as 16 hex digits>.ckpt": a sequence of blocks [u32 length][u32 crc32c][payload].
// The first payload is the header, then keyspace, segment and entry blocks, then a trailer with
// the counts. Any bad block makes the whole file unusable (recovery falls back to the older one).
//
// Why fuzzy is safe: the start position L is taken under the write mutex, so every record before
// L is already in the index; entries changed during the dump are replayed from L with the
// idempotent rules of recovery (apply a record only if its seq is not older than the entry's).
// Before the file is named, the log is made durable up to wherever it reached, so no entry in the
// file points at bytes that could still be lost.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "engine/coding.h"
#include "engine/crc32c.h"
#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

constexpr uint64_t kCheckpointMagic = 0x31544E504B434C45ull;  // "ELCKPNT1"
constexpr uint32_t kCheckpointVersion = 1;
constexpr size_t kBlockTarget = size_t{1} << 20;
constexpr size_t kMaxBlock = size_t{64} << 20;

enum BlockType : uint8_t { kHeader = 1, kKeyspaces = 2, kSegments = 3, kEntries = 4, kTrailer = 9 };

std::string CheckpointName(uint64_t lsn) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "ckpt-%016" PRIx64 ".ckpt", lsn);
  return buf;
}

class BlockWriter {
 public:
  BlockWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  std::string* Begin(BlockType t) {
    payload_.clear();
    payload_.push_back(static_cast<char>(t));
    return &payload_;
  }
  Status End() {
    char head[8];
    EncodeFixed32(head, static_cast<uint32_t>(payload_.size()));
    EncodeFixed32(head + 4, crc32c::Value(payload_.data(), payload_.size()));
    out_.append(head, 8);
    out_.append(payload_);
    if (out_.size() >= kBlockTarget) return Drain();
    return Status::OK();
  }
  Status Drain() {
    size_t done = 0;
    while (done < out_.size()) {
      const ssize_t w = ::write(fd_, out_.data() + done, out_.size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "write checkpoint", path_);
      }
      done += static_cast<size_t>(w);
    }
    out_.clear();
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
  std::string payload_;
  std::string out_;
};

class BlockReader {
 public:
  BlockReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  // Reads the next block; *type and *payload describe it.
  Status Next(BlockType* type, std::string_view* payload) {
    char head[8];
    Status s = ReadExact(head, 8);
    if (!s.ok()) return s;
    const uint32_t len = DecodeFixed32(head);
    if (len == 0 || len > kMaxBlock) return Bad("block length out of range");
    block_.resize(len);
    s = ReadExact(block_.data(), len);
    if (!s.ok()) return s;
    if (crc32c::Value(block_.data(), len) != DecodeFixed32(head + 4)) return Bad("block checksum mismatch");
    *type = static_cast<BlockType>(block_[0]);
    *payload = std::string_view(block_).substr(1);
    return Status::OK();
  }
  Status Bad(const std::string& what) const {
    return Status::Corruption("checkpoint " + path_ + ": " + what + " near offset " +
                              std::to_string(offset_));
  }

 private:
  Status ReadExact(char* dst, size_t n) {
    while (n > 0) {
      if (pos_ == len_) {
        const ssize_t r = ::read(fd_, buf_, sizeof(buf_));
        if (r < 0) {
          if (errno == EINTR) continue;
          return Status::FromErrno(errno, "read checkpoint", path_);
        }
        if (r == 0) return Bad("unexpected end of file");
        pos_ = 0;
        len_ = static_cast<size_t>(r);
      }
      const size_t take = std::min(n, len_ - pos_);
      std::memcpy(dst, buf_ + pos_, take);
      pos_ += take;
      dst += take;
      n -= take;
      offset_ += take;
    }
    return Status::OK();
  }

  int fd_;
  std::string path_;
  char buf_[1 << 16];
  size_t pos_ = 0, len_ = 0;
  uint64_t offset_ = 0;
  std::string block_;
};

bool ParseCheckpointName(const std::string& name, uint64_t* lsn) {
  if (name.size() != 26 || name.compare(0, 5, "ckpt-") != 0 || name.compare(21, 5, ".ckpt") != 0)
    return false;
  uint64_t v = 0;
  for (size_t i = 5; i < 21; ++i) {
    const char c = name[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = v * 16 + static_cast<uint64_t>(d);
  }
  *lsn = v;
  return true;
}

}  // namespace

// Lists checkpoint files newest first.
std::vector<std::pair<uint64_t, std::string>> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    uint64_t lsn;
    if (ParseCheckpointName(e->d_name, &lsn)) out.emplace_back(lsn, dir + "/" + e->d_name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

Status Engine::Impl::WriteCheckpoint() {
  CheckpointShared& ck = rh->ckpt;
  if (!ck.mu.TryLock()) return Status::OK();  // another process is taking one
  struct Unlock {
    ShmMutex& m;
    ~Unlock() { m.Unlock(); }
  } unlock{ck.mu};
  // It deletes older checkpoint files, which a copy of the data directory may have listed
  // (HoldFiles waits for this lock, so none starts once the hold is taken). Recovery replays
  // from the last checkpoint instead.
  if (files_held()) return Status::OK();

  const uint64_t t0 = NowNanos();
  ck.started.fetch_add(1);
  uint64_t lsn, next_seq;
  uint32_t next_keyspace;
  std::vector<KeyspaceTable::Snapshot> catalog;
  std::vector<std::pair<uint32_t, uint64_t>> segs;
  const uint64_t appended = rh->log.appended_bytes.load();
  {
    ShmLockGuard g(rh->log.write_mu);
    if (write_failed()) return Status::IOError("writes are disabled: " + Failure());
    lsn = MakeLsn(rh->log.active_segment, rh->log.active_offset);
    next_seq = rh->log.next_seq;
    next_keyspace = keyspaces.next_id();
    catalog = keyspaces.SnapshotAll();
    for (uint32_t id : segments.Ids()) {
      const SegmentSlot* s = segments.Get(id);
      if (s == nullptr || s->state.load() == static_cast<uint32_t>(SegmentState::kRetired)) continue;
      segs.emplace_back(id, s->size.load());
    }
  }

  const std::string dir = opts().data_dir;
  const std::string tmp = dir + "/checkpoint.tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, "create checkpoint", tmp);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  BlockWriter w(fd, tmp);

  std::string* p = w.Begin(kHeader);
  PutFixed64(p, kCheckpointMagic);
  PutFixed32(p, kCheckpointVersion);
  PutFixed64(p, lsn);
  PutFixed64(p, next_seq);
  PutFixed32(p, next_keyspace);
  PutFixed64(p, static_cast<uint64_t>(NowMillis()));
  Status s = w.End();

  p = w.Begin(kKeyspaces);
  for (const auto& k : catalog) {
    PutLengthPrefixed(p, k.name);
    PutFixed32(p, k.record.id);
    PutFixed32(p, k.record.flags);
    PutFixed64(p, k.record.min_seq);
  }
  if (s.ok()) s = w.End();

  p = w.Begin(kSegments);
  for (const auto& [id, size] : segs) {
    PutFixed32(p, id);
    PutFixed64(p, size);
  }
  if (s.ok()) s = w.End();

  // Entries, in index order. Dead entries (tombstones, expired, truncated or dropped keyspaces)
  // are left out: they are dead for every reader already.
  uint64_t entries = 0;
  std::vector<ScanItem> items;
  uint32_t ks = 0;
  std::string from;
  bool inclusive = true;
  bool more = true;
  const int64_t now = NowMillis();
  while (s.ok() && more) {
    items.clear();
    uint32_t resume_ks = 0;
    std::string resume;
    more = index.ScanLeaf(ks, from, inclusive, /*all_keyspaces=*/true, &items, &resume_ks, &resume);
    p = w.Begin(kEntries);
    size_t in_block = 0;
    for (const ScanItem& it : items) {
      if (!IsLive(it.entry, keyspaces.Find(it.entry.keyspace), now)) continue;
      const EntryFields& f = it.entry.fields;
      PutVarint64(p, it.entry.keyspace);
      PutLengthPrefixed(p, it.key);
      PutVarint64(p, f.segment);
      PutVarint64(p, f.offset);
      PutVarint64(p, f.length);
      PutVarint64(p, f.seq);
      PutVarint64(p, static_cast<uint64_t>(f.expire_at_ms));
      ++in_block;
    }
    if (in_block > 0) s = w.End();
    entries += in_block;
    ks = resume_ks;
    from = std::move(resume);
    inclusive = true;
  }

  p = w.Begin(kTrailer);
  PutFixed64(p, entries);
  PutFixed64(p, catalog.size());
  PutFixed64(p, segs.size());
  PutFixed64(p, kCheckpointMagic);
  if (s.ok()) s = w.End();
  if (s.ok()) s = w.Drain();
  if (s.ok() && ::fsync(fd) != 0) s = Status::FromErrno(errno, "fsync checkpoint", tmp);
  // Every entry dumped points below the log's current end: make all of it durable first.
  if (s.ok()) s = GroupCommit(rh->log.reserved_lsn.load(std::memory_order_acquire));
  const std::string final_path = dir + "/" + CheckpointName(lsn);
  if (s.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0)
    s = Status::FromErrno(errno, "rename checkpoint", final_path);
  if (s.ok()) s = SyncDirectory(dir);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    Log(LogLevel::kWarning, "eloqkv: checkpoint failed: %s", s.ToString().c_str());
    return s;
  }

  // Keep the two newest checkpoints: recovery falls back to the older if the newer is damaged.
  auto files_now = ListCheckpoints(dir);
  for (size_t i = 2; i < files_now.size(); ++i) ::unlink(files_now[i].second.c_str());
  ck.newest_lsn.store(files_now.empty() ? lsn : files_now[0].first);
  ck.oldest_lsn.store(files_now.size() >= 2 ? files_now[1].first : 0);
  ck.completed.fetch_add(1);
  ck.appended_at_last.store(appended);
  ck.last_ms.store(NowMillis());
  rh->stats.checkpoints.fetch_add(1, std::memory_order_relaxed);
  rh->stats.last_checkpoint_lsn.store(lsn, std::memory_order_relaxed);
  rh->stats.last_checkpoint_us.store((NowNanos() - t0) / 1000, std::memory_order_relaxed);
  Log(LogLevel::kDebug, "eloqkv: checkpoint %s: %" PRIu64 " entries", final_path.c_str(), entries);
  return Status::OK();
}

void Engine::Impl::DeleteSegment(uint32_t id) {
  segments.Remove(id);  // readers that still hold the id retry their lookup
  Status st = files->Delete(id);
  if (!st.ok()) Log(LogLevel::kWarning, "eloqkv: %s", st.ToString().c_str());
  (void)SyncDirectory(opts().data_dir);
}

Status Engine::Impl::LoadCheckpoint(const std::string& path, LoadedCheckpoint* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open checkpoint", path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  BlockReader r(fd, path);
  BlockType type;
  std::string_view p;
  Status s = r.Next(&type, &p);
  if (!s.ok()) return s;
  if (type != kHeader || p.size() < 36 || DecodeFixed64(p.data()) != kCheckpointMagic)
    return r.Bad("not a checkpoint header");
  if (DecodeFixed32(p.data() + 8) != kCheckpointVersion) return r.Bad("unsupported version");
  out->lsn = DecodeFixed64(p.data() + 12);
  out->next_seq = DecodeFixed64(p.data() + 20);
  out->next_keyspace = DecodeFixed32(p.data() + 28);
  keyspaces.RaiseNextId(out->next_keyspace);

  uint64_t n_keyspaces = 0, n_entries = 0;
  for (;;) {
    s = r.Next(&type, &p);
    if (!s.ok()) return s;
    if (type == kTrailer) break;
    if (type == kKeyspaces) {
      while (!p.empty()) {
        std::string_view name;
        if (!GetLengthPrefixed(&p, &name) || p.size() < 16 || name.size() > kMaxKeyspaceNameSize)
          return r.Bad("bad keyspace item");
        KeyspaceRecord k;
        k.id = DecodeFixed32(p.data());
        k.flags = DecodeFixed32(p.data() + 4);
        k.min_seq = DecodeFixed64(p.data() + 8);
        p.remove_prefix(16);
        s = keyspaces.Apply(name, k);
        if (!s.ok()) return s;
        ++n_keyspaces;
      }
    } else if (type == kSegments) {
      if (p.size() % 12 != 0) return r.Bad("bad segment list");
      for (size_t i = 0; i < p.size(); i += 12)
        out->segments.emplace_back(DecodeFixed32(p.data() + i), DecodeFixed64(p.data() + i + 4));
    } else if (type == kEntries) {
      while (!p.empty()) {
        uint64_t ks, seg, off, len, seq, exp;
        std::string_view key;
        if (!GetVarint64(&p, &ks) || !GetLengthPrefixed(&p, &key) || !GetVarint64(&p, &seg) ||
            !GetVarint64(&p, &off) || !GetVarint64(&p, &len) || !GetVarint64(&p, &seq) ||
            !GetVarint64(&p, &exp) || key.size() > kMaxKeySize || ks > UINT32_MAX ||
            seg > UINT32_MAX || off > UINT32_MAX || len > UINT32_MAX)
          return r.Bad("bad entry");
        ++n_entries;
        if (keyspaces.Find(static_cast<uint32_t>(ks)) == nullptr) continue;
        // Cheap worst-case check first; the exact one only near the end of memory.
        s = index.ReserveFor(1, key.size());
        if (!s.ok()) s = index.ReserveForKeys({{static_cast<uint32_t>(ks), key}});
        if (!s.ok()) {
          return Status::IndexFull("index memory (" + std::to_string(opts().index_memory >> 20) +
                                   " MiB) is too small to load the checkpoint (" + path +
                                   "); raise the index memory setting");
        }
        EntryFields f;
        f.segment = static_cast<uint32_t>(seg);
        f.offset = static_cast<uint32_t>(off);
        f.length = static_cast<uint32_t>(len);
        f.seq = seq;
        f.expire_at_ms = static_cast<int64_t>(exp);
        if (index.Insert(static_cast<uint32_t>(ks), key, f) == 0)
          return Status::IndexFull("index memory ran out loading the checkpoint (" + path +
                                   ") after reserving room; raise the index memory setting");
      }
    } else {
      return r.Bad("unknown block type");
    }
  }
  if (p.size() != 32 || DecodeFixed64(p.data()) != n_entries ||
      DecodeFixed64(p.data() + 8) != n_keyspaces ||
      DecodeFixed64(p.data() + 16) != out->segments.size() ||
      DecodeFixed64(p.data() + 24) != kCheckpointMagic)
    return r.Bad("trailer does not match the contents (truncated file?)");
  out->entries = n_entries;
  return Status::OK();
}

}  // namespace eloqkv
