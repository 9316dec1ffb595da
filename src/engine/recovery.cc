// Recovery: the only way the shared state comes to life. Load the newest usable checkpoint,
// replay the log after it batch by batch, cut a torn tail at the last whole batch, and start a
// fresh segment for new writes.
//
// Replay rules (idempotent, so a record seen twice or already in the checkpoint is harmless):
//  * a put applies unless the entry has a newer seq; an expired put acts as a delete;
//  * a delete removes the entry unless it has a newer seq;
//  * a catalog record updates the keyspace table;
//  * records of a batch apply only once its last record (flag kBatchEnd) has been read.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <map>
#include <set>

#include "engine/coding.h"
#include "engine/data_dir_lock.h"
#include "engine/engine_impl.h"

namespace eloqkv {

std::vector<std::pair<uint64_t, std::string>> ListCheckpoints(const std::string& dir);

namespace {

constexpr size_t kReadChunk = size_t{8} << 20;

struct PendingRecord {
  RecordHeader header;
  std::string key;
  std::string value;  // catalog records only
  uint32_t offset;
};

// Reads a segment file sequentially, record by record.
class SegmentScanner {
 public:
  SegmentScanner(int fd, uint64_t file_size, uint64_t start)
      : fd_(fd), file_size_(file_size), pos_(start) {}

  // Next record at pos(). kOk fills *rv (valid until the next call); kZero at a clean end.
  DecodeResult Next(uint32_t segment, RecordView* rv, Status* io) {
    for (;;) {
      if (pos_ >= file_size_) return DecodeResult::kZero;
      if (pos_ >= buf_pos_ && pos_ < buf_pos_ + buf_end_) {
        const char* p = buf_.data() + (pos_ - buf_pos_);
        const size_t have = static_cast<size_t>(buf_pos_ + buf_end_ - pos_);
        const DecodeResult d = DecodeRecord(p, have, segment, rv);
        if (d != DecodeResult::kIncomplete) return d;
        if (pos_ + have >= file_size_) return d;  // the file ends inside this record
        RecordHeader h;
        size_t want = kReadChunk;
        if (DecodeRecordHeader(p, have, &h) == DecodeResult::kOk) want = std::max(want, h.total_size());
        if (buf_pos_ == pos_ && have >= want) return d;  // cannot make progress
        if (!Fill(want, io)) return DecodeResult::kIncomplete;
        continue;
      }
      if (!Fill(kReadChunk, io)) return DecodeResult::kIncomplete;
    }
  }
  void Advance(size_t n) { pos_ += n; }
  uint64_t pos() const { return pos_; }

 private:
  bool Fill(size_t want, Status* io) {
    const uint64_t len = std::min<uint64_t>(want, file_size_ - pos_);
    buf_.resize(len);
    size_t done = 0;
    while (done < len) {
      const ssize_t r = ::pread(fd_, buf_.data() + done, len - done, static_cast<off_t>(pos_ + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        *io = Status::FromErrno(errno, "read segment", "");
        return false;
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    buf_.resize(done);
    buf_pos_ = pos_;
    buf_end_ = done;
    return done > 0;
  }

  int fd_;
  uint64_t file_size_;
  uint64_t pos_;
  std::string buf_;
  uint64_t buf_pos_ = 0;
  size_t buf_end_ = 0;
};

// Counts the bytes in [from, file end) that are not zero, i.e. how much a cut drops.
uint64_t NonZeroTail(int fd, uint64_t from, uint64_t file_size) {
  std::string buf(size_t{1} << 20, '\0');
  uint64_t last_nonzero = from;
  bool any = false;
  for (uint64_t at = from; at < file_size;) {
    const ssize_t r = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), file_size - at),
                              static_cast<off_t>(at));
    if (r <= 0) break;
    for (ssize_t i = r; i-- > 0;) {
      if (buf[static_cast<size_t>(i)] != 0) {
        last_nonzero = std::max(last_nonzero, at + static_cast<uint64_t>(i));
        any = true;
        break;
      }
    }
    at += static_cast<uint64_t>(r);
  }
  return any ? last_nonzero + 1 - from : 0;
}

// Ends a segment at `offset` with a seal record and gives back everything after it, durably, so
// a cut is permanent: nothing written after it can be read again.
Status SealAt(int fd, uint32_t id, uint64_t offset, const std::string& path) {
  char seal[kRecordHeaderSize];
  RecordHeader h;
  h.type = RecordType::kSeal;
  h.segment = id;
  EncodeRecord(h, {}, {}, seal);
  if (::pwrite(fd, seal, sizeof(seal), static_cast<off_t>(offset)) != static_cast<ssize_t>(sizeof(seal)) ||
      ::ftruncate(fd, static_cast<off_t>(offset + sizeof(seal))) != 0 || ::fsync(fd) != 0) {
    return Status::FromErrno(errno, "seal segment", path);
  }
  return Status::OK();
}

// Rewrites a segment as empty: a valid header and a seal. Keeps segment ids contiguous.
Status SealEmpty(int fd, uint32_t id, const std::string& path) {
  const std::string header = EncodeSegmentHeader(id);
  if (::pwrite(fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
    return Status::FromErrno(errno, "rewrite segment header", path);
  return SealAt(fd, id, kSegmentHeaderSize, path);
}

}  // namespace

// The highest "durable segment" stamp among the valid records at the start of these segments.
uint32_t Engine::Impl::MaxDurableSegment(const std::vector<uint32_t>& ids) {
  uint32_t best = 0;
  for (uint32_t id : ids) {
    const std::string path = files->Path(id);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (::fstat(fd, &st) == 0) {
      SegmentScanner scan(fd, static_cast<uint64_t>(st.st_size), kSegmentHeaderSize);
      RecordView rv;
      Status io;
      while (scan.Next(id, &rv, &io) == DecodeResult::kOk) {
        best = std::max(best, rv.header.durable_segment);
        scan.Advance(rv.header.total_size());
      }
    }
    ::close(fd);
  }
  return best;
}

namespace {

}  // namespace

class Replayer {
 public:
  explicit Replayer(Engine::Impl* e) : e_(e), now_(NowMillis()) {}

  Status Apply(const std::vector<PendingRecord>& batch) {
    for (const PendingRecord& r : batch) {
      const RecordHeader& h = r.header;
      max_seq_ = std::max(max_seq_, h.seq);
      ++records_;
      switch (h.type) {
        case RecordType::kVoid:
        case RecordType::kSeal:
          break;
        case RecordType::kRetire:
          if (r.value.size() == 4 || r.value.size() == 12) {
            const uint32_t id = DecodeFixed32(r.value.data());
            retired_.insert(id);
            if (r.value.size() == 12) {
              const auto at = static_cast<int64_t>(DecodeFixed64(r.value.data() + 4));
              retired_at_[id] = std::max(retired_at_[id], at);
              expiry_clock_ = std::max(expiry_clock_, at);
            }
          }
          pinned_[h.segment] += h.total_size();
          break;
        case RecordType::kKeyspace: {
          KeyspaceRecord k;
          if (!DecodeKeyspaceRecord(r.value, &k))
            return Status::Corruption("bad keyspace record in segment " + std::to_string(h.segment));
          Status s = e_->keyspaces.Apply(r.key, k);
          if (!s.ok()) return s;
          catalog_.insert(h.segment);
          break;
        }
        case RecordType::kPut:
        case RecordType::kDelete: {
          if (h.type == RecordType::kDelete) pinned_[h.segment] += h.total_size();
          if (e_->keyspaces.Find(h.keyspace) == nullptr) break;  // dropped: nothing to keep
          EntryFields cur;
          const uint32_t ref = e_->index.Find(h.keyspace, r.key, &cur);
          if (ref != 0 && cur.seq > h.seq) break;  // the entry is newer
          const bool expired = h.expire_at_ms != 0 && h.expire_at_ms <= now_;
          if (h.type == RecordType::kDelete || expired) {
            if (ref != 0) e_->index.Remove(h.keyspace, r.key, ref);
            break;
          }
          EntryFields f;
          f.segment = h.segment;
          f.offset = r.offset;
          f.length = static_cast<uint32_t>(h.total_size());
          f.seq = h.seq;
          f.expire_at_ms = h.expire_at_ms;
          if (ref != 0) {
            e_->index.Update(ref, f);
          } else {
            Status s = e_->index.ReserveFor(1, r.key.size());
            if (!s.ok()) s = e_->index.ReserveForKeys({{h.keyspace, r.key}});
            if (!s.ok()) {
              return Status::IndexFull("index memory (" +
                                       std::to_string(e_->opts().index_memory >> 20) +
                                       " MiB) is too small for the keys on disk; raise the index "
                                       "memory setting");
            }
            if (e_->index.Insert(h.keyspace, r.key, f) == 0)
              return Status::IndexFull(
                  "index memory ran out re-indexing a key it had reserved "
                  "room for; raise the index memory setting");
          }
          break;
        }
      }
    }
    return Status::OK();
  }

  uint64_t max_seq() const { return max_seq_; }
  uint64_t records() const { return records_; }
  const std::set<uint32_t>& retired() const { return retired_; }
  // When segment `id` was retired (0: unknown, an older log's record).
  int64_t retired_at(uint32_t id) const {
    auto it = retired_at_.find(id);
    return it == retired_at_.end() ? 0 : it->second;
  }
  // The latest clock that removed expired keys' entries, of the retirements replayed.
  int64_t expiry_clock() const { return expiry_clock_; }
  const std::map<uint32_t, uint64_t>& pinned() const { return pinned_; }
  const std::set<uint32_t>& catalog() const { return catalog_; }

 private:
  Engine::Impl* e_;
  std::set<uint32_t> retired_;
  std::map<uint32_t, int64_t> retired_at_;
  int64_t expiry_clock_ = 0;
  std::map<uint32_t, uint64_t> pinned_;
  std::set<uint32_t> catalog_;
  int64_t now_;
  uint64_t max_seq_ = 0;
  uint64_t records_ = 0;
};

Status Engine::Impl::Recover() {
  uint32_t expected = static_cast<uint32_t>(EngineState::kFormatted);
  if (!rh->state.compare_exchange_strong(expected, static_cast<uint32_t>(EngineState::kRecovering)))
    return Status::InvalidArgument("the engine region was already recovered");
  const uint64_t t0 = NowNanos();
  const std::string dir = opts().data_dir;

  auto fail = [&](Status s) {
    SetFailure(s.ToString());
    Log(LogLevel::kError, "eloqkv: recovery of %s failed: %s", dir.c_str(), s.ToString().c_str());
    rh->state.store(static_cast<uint32_t>(EngineState::kFailed), std::memory_order_release);
    return s;
  };

  Status s = MakeDirs(dir);
  if (!s.ok()) return fail(s);
  // A host that holds the directory for its whole life (the postmaster) took the lock before
  // forking us; anyone else takes it for as long as this engine handle lives.
  if (!DataDirLock::HeldByProcess(dir)) {
    s = dir_lock.Acquire(dir);
    if (!s.ok()) return fail(s);
  }

  // I/O mode, chosen once and logged once.
  const auto mode = static_cast<IoMode>(opts().io_mode);
  if (mode == IoMode::kPosix) {
    rh->io_uring.store(0);
    Log(LogLevel::kInfo, "eloqkv: I/O through pread/pwrite (configured)");
  } else {
    std::string why;
    if (Io::ProbeIoUring(&why)) {
      rh->io_uring.store(1);
      Log(LogLevel::kInfo, "eloqkv: I/O through io_uring");
    } else if (mode == IoMode::kIoUring) {
      return fail(Status::Unavailable("io_uring was requested but is not available: " + why));
    } else {
      rh->io_uring.store(0);
      Log(LogLevel::kInfo, "eloqkv: io_uring is not available (%s); I/O through pread/pwrite",
          why.c_str());
    }
  }

  // What is on disk.
  std::set<uint32_t> on_disk;
  {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return fail(Status::FromErrno(errno, "open directory", dir));
    while (dirent* ent = ::readdir(d)) {
      uint32_t id;
      if (SegmentFiles::ParseName(ent->d_name, &id)) on_disk.insert(id);
    }
    ::closedir(d);
  }
  ::unlink((dir + "/checkpoint.tmp").c_str());
  const auto checkpoints = ListCheckpoints(dir);

  // The newest checkpoint that loads; an older one if it is damaged.
  LoadedCheckpoint ckpt;
  bool have_ckpt = false;
  size_t ckpt_index = 0;
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    LoadedCheckpoint c;
    s = LoadCheckpoint(checkpoints[i].second, &c);
    if (s.ok()) {
      ckpt = std::move(c);
      have_ckpt = true;
      ckpt_index = i;
      break;
    }
    if (s.IsIndexFull()) return fail(s);
    Log(LogLevel::kWarning, "eloqkv: checkpoint %s is unusable (%s); trying an older one",
        checkpoints[i].second.c_str(), s.ToString().c_str());
    Index::Format(base() + rh->index_off, rh->index_bytes);
    KeyspaceTable::Format(base() + rh->keyspaces_off, opts().max_keyspaces);
  }

  // Without a checkpoint the log is replayed from its first segment; any segment missing before
  // the last one must have been retired by compaction (checked after replay).
  const uint64_t replay_from =
      have_ckpt ? ckpt.lsn
                : MakeLsn(on_disk.empty() ? 1 : *on_disk.begin(), kSegmentHeaderSize);
  const uint32_t first_replay = LsnSegment(replay_from);

  // Segments below the replay start: those the checkpoint lists are kept, others are leftovers
  // of compaction (retired before the checkpoint) and are removed.
  std::set<uint32_t> listed;
  for (const auto& [id, size] : ckpt.segments) {
    if (id >= first_replay) continue;
    listed.insert(id);
    if (on_disk.count(id) == 0) continue;  // checked against the index below
    struct stat st;
    const uint64_t cap = ::stat(files->Path(id).c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : size;
    if (!segments.Add(id, SegmentState::kSealed, size, cap))
      return fail(Status::NoSpace("too many segments to track"));
  }
  for (uint32_t id : on_disk) {
    if (id < first_replay && listed.count(id) == 0) {
      Log(LogLevel::kInfo, "eloqkv: removing compacted segment %s", files->Path(id).c_str());
      (void)files->Delete(id);
    }
  }

  // Replay.
  std::vector<uint32_t> replay;
  for (uint32_t id : on_disk)
    if (id >= first_replay) replay.push_back(id);
  if (have_ckpt && replay.empty()) {
    return fail(Status::Corruption("segment file " + files->Path(first_replay) +
                                   ", where the checkpoint's replay starts, is missing"));
  }
  std::vector<uint32_t> gaps;  // must turn out to be retired
  const uint32_t expected_first = have_ckpt ? first_replay : 1;
  for (uint32_t id = expected_first; !replay.empty() && id < replay.back(); ++id)
    if (on_disk.count(id) == 0) gaps.push_back(id);
  Replayer replayer(this);
  uint64_t replayed_bytes = 0;
  bool log_ended = false;  // the log's end was found before the last segment file
  for (size_t i = 0; i < replay.size(); ++i) {
    const uint32_t id = replay[i];
    const bool last = i + 1 == replay.size();
    const std::string path = files->Path(id);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail(Status::FromErrno(errno, "open segment", path));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st;
    if (::fstat(fd, &st) != 0) return fail(Status::FromErrno(errno, "stat segment", path));
    const auto file_size = static_cast<uint64_t>(st.st_size);
    if (log_ended) {
      // Written after the end of the log: nothing in it was ever acknowledged as durable.
      s = SealEmpty(fd, id, path);
      if (!s.ok()) return fail(s);
      if (!segments.Add(id, SegmentState::kSealed, kSegmentHeaderSize + kRecordHeaderSize,
                        kSegmentHeaderSize + kRecordHeaderSize))
        return fail(Status::NoSpace("too many segments to track"));
      continue;
    }
    char header[kSegmentHeaderSize];
    uint32_t header_id = 0;
    const ssize_t hr = ::pread(fd, header, sizeof(header), 0);
    if (hr != static_cast<ssize_t>(sizeof(header)) ||
        !DecodeSegmentHeader(header, sizeof(header), &header_id) || header_id != id) {
      if (!last || NonZeroTail(fd, 0, file_size) != 0)
        return fail(Status::Corruption("segment file " + path + " has a bad header"));
      // Created but never written (a crash during a segment roll).
      s = SealEmpty(fd, id, path);
      if (!s.ok()) return fail(s);
      if (!segments.Add(id, SegmentState::kSealed, kSegmentHeaderSize + kRecordHeaderSize,
                        kSegmentHeaderSize + kRecordHeaderSize))
        return fail(Status::NoSpace("too many segments to track"));
      break;
    }
    const uint64_t start = id == first_replay
                               ? std::max<uint64_t>(LsnOffset(replay_from), kSegmentHeaderSize)
                               : kSegmentHeaderSize;
    SegmentScanner scan(fd, file_size, start);
    std::vector<PendingRecord> batch;
    uint64_t batch_start = start;
    bool sealed = false;
    Status io;
    RecordView rv;
    while (scan.Next(id, &rv, &io) == DecodeResult::kOk) {
      const auto offset = static_cast<uint32_t>(scan.pos());
      scan.Advance(rv.header.total_size());
      if (rv.header.type == RecordType::kSeal) {
        sealed = batch.empty();  // a seal inside a batch is not a valid log
        break;
      }
      PendingRecord pr;
      pr.header = rv.header;
      pr.key.assign(rv.key);
      if (rv.header.type == RecordType::kKeyspace || rv.header.type == RecordType::kRetire)
        pr.value.assign(rv.value);
      pr.offset = offset;
      const bool ends = (rv.header.flags & kRecordBatchEnd) != 0 ||
                        (rv.header.type == RecordType::kVoid && batch.empty());
      batch.push_back(std::move(pr));
      if (ends) {
        s = replayer.Apply(batch);
        if (!s.ok()) return fail(s);
        batch.clear();
        batch_start = scan.pos();
      }
    }
    if (!io.ok()) return fail(Status::IOError(io.message() + " " + path));
    replayed_bytes += scan.pos() - start;
    if (sealed) {
      if (!segments.Add(id, SegmentState::kSealed, scan.pos(), file_size))
        return fail(Status::NoSpace("too many segments to track"));
      continue;
    }
    // The log ends inside this segment, at the end of the last whole batch.
    const uint64_t cut = batch_start;
    const uint64_t dropped = NonZeroTail(fd, cut, file_size);
    if (!last) {
      // Later files exist. If any record in them was written after this segment had been
      // completed and synced, the damage is to acknowledged data: refuse rather than drop it.
      // Otherwise a crash interrupted the writes at the end of this segment (its seal, or a
      // reservation) and nothing after the cut was ever acknowledged.
      const uint32_t durable = MaxDurableSegment(std::vector<uint32_t>(replay.begin() + i + 1, replay.end()));
      if (durable > id) {
        return fail(Status::Corruption(
            "segment file " + path + " is damaged at offset " + std::to_string(cut) +
            " after it was complete and synced; refusing to drop acknowledged data"));
      }
      Log(LogLevel::kWarning,
          "eloqkv: the log ends in segment %s at offset %" PRIu64
          "; %zu later segment files hold only unacknowledged writes and are emptied",
          path.c_str(), cut, replay.size() - i - 1);
      log_ended = true;
    }
    if (dropped > 0 || !batch.empty()) {
      Log(LogLevel::kWarning,
          "eloqkv: segment %s: torn or corrupt tail cut at offset %" PRIu64 ": dropped %" PRIu64
          " bytes (%zu records of an incomplete batch)",
          path.c_str(), cut, dropped, batch.size());
    }
    s = SealAt(fd, id, cut, path);
    if (!s.ok()) return fail(s);
    if (!segments.Add(id, SegmentState::kSealed, cut + kRecordHeaderSize, cut + kRecordHeaderSize))
      return fail(Status::NoSpace("too many segments to track"));
  }
  uint32_t last_id = 0;
  if (!on_disk.empty()) last_id = *on_disk.rbegin();
  if (!ckpt.segments.empty()) last_id = std::max(last_id, ckpt.segments.back().first);
  if (!replayer.retired().empty()) last_id = std::max(last_id, *replayer.retired().rbegin());

  for (uint32_t id : gaps) {
    if (replayer.retired().count(id) == 0) {
      return fail(Status::Corruption("segment file " + files->Path(id) +
                                     " is missing from the log and was not compacted away"));
    }
  }
  // Bookkeeping compaction needs: pinned bytes and catalog records of the replayed segments;
  // segments only known from the checkpoint wait below the horizon before being compacted.
  for (uint32_t id : segments.Ids()) {
    SegmentSlot* slot = segments.Get(id);
    if (id < first_replay) {
      segments.SetFlags(id, kSegmentAccountingUnknown);
      continue;
    }
    auto p = replayer.pinned().find(id);
    if (p != replayer.pinned().end()) slot->pinned_bytes.store(static_cast<int64_t>(p->second));
    if (replayer.catalog().count(id) != 0) segments.SetFlags(id, kSegmentHasCatalog);
  }
  // Compacted before the crash but not yet deleted: their copies are durable, so delete them.
  for (uint32_t id : replayer.retired())
    if (segments.Get(id) != nullptr) DeleteSegment(id);

  rh->log.next_seq = std::max<uint64_t>({ckpt.next_seq, replayer.max_seq() + 1, 1});
  rh->log.published_seq.store(rh->log.next_seq, std::memory_order_release);
  // Every entry must point into a segment we have, but for dead ones (a dropped or truncated
  // keyspace's, an expired key's): they wait for the sweep, and a compaction after that sweep
  // deleted their segment without copying them. The checkpoint or the replay (replaying a drop
  // or a truncate removes no entry) brought them back: they go now. An expired key's entry is
  // judged at the time its segment was retired if the clock now reads earlier (it was stepped
  // back): the sweep removed it by then, and it must not count as live and stop the restart.
  {
    const int64_t now_ms = NowMillis();
    rh->expiry_clock_ms = std::max(now_ms, replayer.expiry_clock());
    std::map<uint32_t, uint64_t> dead_in_missing;  // per missing segment, for the log
    std::vector<ScanItem> items;
    uint32_t ks = 0;
    std::string from;
    bool more = true;
    while (more) {
      items.clear();
      uint32_t rks = 0;
      std::string resume;
      more = index.ScanLeaf(ks, from, true, true, &items, &rks, &resume);
      for (const ScanItem& it : items) {
        if (segments.Get(it.entry.fields.segment) != nullptr) continue;
        const int64_t judged_at = std::max(now_ms, replayer.retired_at(it.entry.fields.segment));
        if (!IsLive(it.entry, keyspaces.Find(it.entry.keyspace), judged_at)) {
          index.Remove(it.entry.keyspace, it.key, it.entry.ref);
          ++dead_in_missing[it.entry.fields.segment];
          continue;
        }
        return fail(Status::Corruption("segment file " + files->Path(it.entry.fields.segment) +
                                       " is missing but the checkpoint references it"));
      }
      ks = rks;
      from = std::move(resume);
    }
    for (const auto& [id, n] : dead_in_missing)
      Log(LogLevel::kInfo,
          "eloqkv: removed %" PRIu64 " dead index entries that pointed into compacted segment %s",
          n, files->Path(id).c_str());
  }
  // Once the dead entries above are gone: counted, they would stay counted for good.
  RecomputeAccounting();

  // A fresh segment for new writes.
  last_id = std::max(last_id, on_disk.empty() ? 0u : *on_disk.rbegin());
  s = StartSegment(last_id + 1, opts().segment_size);
  if (!s.ok()) return fail(s);
  (void)SyncDirectory(dir);
  const uint64_t start_lsn = MakeLsn(last_id + 1, kSegmentHeaderSize);
  rh->log.reserved_lsn.store(start_lsn);
  rh->log.written.Reset(start_lsn);
  rh->log.durable.Reset(start_lsn);
  rh->log.last_sync_ms.store(NowMillis());
  rh->log.appended_bytes.store(replayed_bytes);
  CheckpointShared& ck = rh->ckpt;
  ck.newest_lsn.store(have_ckpt ? ckpt.lsn : 0);
  ck.oldest_lsn.store(have_ckpt && checkpoints.size() > ckpt_index + 1 ? checkpoints[ckpt_index + 1].first : 0);
  ck.appended_at_last.store(0);
  ck.last_ms.store(NowMillis());

  const uint64_t us = (NowNanos() - t0) / 1000;
  rh->stats.recovery_us.store(us);
  rh->stats.recovered_records.store(replayer.records());
  Log(LogLevel::kInfo,
      "eloqkv: recovered %s in %.1f ms: %" PRIu64 " keys (checkpoint: %s), replayed %" PRIu64
      " records",
      dir.c_str(), static_cast<double>(us) / 1000.0, index.entry_count(),
      have_ckpt ? checkpoints[ckpt_index].second.c_str() : "none", replayer.records());
  rh->state.store(static_cast<uint32_t>(EngineState::kReady), std::memory_order_release);
  return Status::OK();
}

}  // namespace eloqkv
