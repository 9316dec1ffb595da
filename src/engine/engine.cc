// Engine: the public facade. Attaches a process to the shared region and forwards to the
// write path, read path, checkpoint, recovery and compaction.
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>

#include "engine/crc32c.h"
#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

size_t Align(size_t n) { return (n + 4095) / 4096 * 4096; }

struct Layout {
  size_t segments_off, keyspaces_off, index_off, index_bytes, cache_off, cache_bytes, stage_off,
      stage_bytes, feed_off, total;
};

Layout ComputeLayout(const Options& o) {
  Layout l{};
  size_t off = Align(sizeof(RegionHeader));
  l.segments_off = off;
  off += Align(SegmentTable::RequiredBytes());
  l.keyspaces_off = off;
  off += Align(KeyspaceTable::RequiredBytes(o.max_keyspaces));
  l.index_off = off;
  l.index_bytes = Index::RequiredBytes(o.index_memory);
  off += Align(l.index_bytes);
  l.cache_off = off;
  l.cache_bytes = ValueCache::RequiredBytes(o.cache_memory);
  off += Align(l.cache_bytes);
  l.stage_off = off;
  l.stage_bytes = Align(o.log_buffer);
  off += l.stage_bytes;
  l.feed_off = off;
  off += Align(ChangeFeed::RequiredBytes());
  l.total = off;
  return l;
}

Status CheckOptions(const Options& o) {
  if (o.data_dir.empty()) return Status::InvalidArgument("the data directory must be set");
  if (o.data_dir.size() >= sizeof(SharedOptions::data_dir))
    return Status::InvalidArgument("the data directory path is too long");
  if (o.data_dir.front() != '/')
    return Status::InvalidArgument("the data directory must be an absolute path");
  if (o.segment_size < (uint64_t{1} << 20) || o.segment_size > (uint64_t{1} << 31))
    return Status::InvalidArgument("segment size must be between 1 MiB and 2 GiB");
  if (o.index_memory < (size_t{1} << 20))
    return Status::InvalidArgument("index memory must be at least 1 MiB");
  // Entries are addressed in 8-byte units by 32-bit references (and so are the point hash's
  // buckets' entries).
  if (o.index_memory >= (size_t{32} << 30))
    return Status::InvalidArgument("index memory must be less than 32 GiB");
  if (o.cache_memory < (size_t{1} << 20))
    return Status::InvalidArgument("value cache memory must be at least 1 MiB");
  if (o.max_keyspaces == 0 || o.max_keyspaces > (1u << 20))
    return Status::InvalidArgument("max keyspaces must be between 1 and 1048576");
  if (o.sync_interval_ms == 0) return Status::InvalidArgument("sync interval must be positive");
  if (o.log_buffer < (size_t{1} << 20) || o.log_buffer > (size_t{1} << 30))
    return Status::InvalidArgument("log buffer must be between 1 MiB and 1 GiB");
  if (!(o.compaction_live_ratio > 0 && o.compaction_live_ratio < 1))
    return Status::InvalidArgument("compaction live ratio must be between 0 and 1");
  if (!(o.compaction_space_amp > 1))
    return Status::InvalidArgument("compaction space amplification must be above 1");
  if (o.max_disk_bytes != 0 && o.max_disk_bytes < 4 * o.segment_size)
    return Status::InvalidArgument("the disk limit must hold at least four segments");
  return Status::OK();
}

}  // namespace

const char* SyncPolicyName(SyncPolicy p) {
  switch (p) {
    case SyncPolicy::kAlways: return "always";
    case SyncPolicy::kInterval: return "interval";
    case SyncPolicy::kOff: return "off";
  }
  return "?";
}

const char* IoModeName(IoMode m) {
  switch (m) {
    case IoMode::kAuto: return "auto";
    case IoMode::kIoUring: return "io_uring";
    case IoMode::kPosix: return "pread";
  }
  return "?";
}

const char* EngineStateName(EngineState s) {
  switch (s) {
    case EngineState::kFormatted: return "starting";
    case EngineState::kRecovering: return "recovering";
    case EngineState::kReady: return "ready";
    case EngineState::kFailed: return "failed";
    case EngineState::kClosed: return "closed";
  }
  return "?";
}

namespace {
std::atomic<int64_t> g_clock_offset_ms{0};
}  // namespace

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() +
         g_clock_offset_ms.load(std::memory_order_relaxed);
}

int64_t CoarseNowMillis() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000 +
         g_clock_offset_ms.load(std::memory_order_relaxed);
}

void SetClockOffsetForTesting(int64_t offset_ms) {
  g_clock_offset_ms.store(offset_ms, std::memory_order_relaxed);
}

// ---- Impl helpers ----

Engine::Impl::~Impl() = default;

Io* Engine::Impl::io() {
  std::string why;
  Io* dev = Io::ForThread(rh->io_uring.load(std::memory_order_relaxed) ? IoMode::kIoUring
                                                                        : IoMode::kPosix,
                          &why);
  if (!why.empty())
    Log(LogLevel::kWarning, "eloqkv: this process cannot use io_uring (%s); using pread/pwrite",
        why.c_str());
  return dev;
}

void Engine::Impl::Log(LogLevel level, const char* fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (local.log != nullptr) {
    local.log(local.log_context, level, buf);
  } else if (level >= LogLevel::kWarning) {
    std::fprintf(stderr, "%s\n", buf);
  }
}

void Engine::Impl::SetFailure(const std::string& msg) {
  ShmLockGuard g(rh->failure_mu);
  std::snprintf(rh->failure, sizeof(rh->failure), "%s", msg.c_str());
}

std::string Engine::Impl::Failure() const {
  ShmLockGuard g(const_cast<ShmMutex&>(rh->failure_mu));
  return rh->failure;
}

void Engine::Impl::FailWrites(const Status& s) {
  uint32_t expected = 0;
  if (rh->write_failed.compare_exchange_strong(expected, 1)) {
    SetFailure(s.ToString());
    Log(LogLevel::kError,
        "eloqkv: write path failed (%s); writes are refused until the engine is reopened, "
        "reads continue",
        s.ToString().c_str());
  }
  rh->log.written.WakeAll();
  rh->log.durable.WakeAll();
}

Status Engine::Impl::CheckReady() const {
  const auto st = static_cast<EngineState>(rh->state.load(std::memory_order_acquire));
  if (st == EngineState::kReady) return Status::OK();
  if (st == EngineState::kFailed)
    return Status::Unavailable("the engine failed to open: " + Failure());
  return Status::Unavailable(std::string("the engine is ") + EngineStateName(st));
}

// ---- Engine ----

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

size_t Engine::SharedMemorySize(const Options& options) { return ComputeLayout(options).total; }

Status Engine::ValidateOptions(const Options& options) { return CheckOptions(options); }

Status Engine::LockDataDirectory(const std::string& dir) {
  return DataDirLock::HoldForProcess(dir);
}

Status Engine::FormatRegion(void* region, size_t size, const Options& o) {
  Status s = CheckOptions(o);
  if (!s.ok()) return s;
  const Layout l = ComputeLayout(o);
  if (size < l.total) return Status::InvalidArgument("shared memory region is too small");
  auto* base = static_cast<char*>(region);
  std::memset(base, 0, sizeof(RegionHeader));
  auto* rh = new (base) RegionHeader();
  rh->magic = RegionHeader::kMagic;
  rh->layout_version = RegionHeader::kLayoutVersion;
  rh->region_size = l.total;
  SharedOptions& so = rh->opts;
  std::snprintf(so.data_dir, sizeof(so.data_dir), "%s", o.data_dir.c_str());
  so.index_memory = o.index_memory;
  so.cache_memory = o.cache_memory;
  so.segment_size = (o.segment_size + 4095) / 4096 * 4096;
  so.max_disk_bytes = o.max_disk_bytes;
  so.checkpoint_log_bytes = o.checkpoint_log_bytes;
  so.sync_interval_ms = o.sync_interval_ms;
  so.max_keyspaces = o.max_keyspaces;
  so.checkpoint_interval_ms = o.checkpoint_interval_ms;
  so.sync = static_cast<uint8_t>(o.sync);
  so.io_mode = static_cast<uint8_t>(o.io_mode);
  so.direct_reads = o.direct_reads ? 1 : 0;
  so.compaction_live_ratio = o.compaction_live_ratio;
  so.compaction_space_amp = o.compaction_space_amp;
  rh->state.store(static_cast<uint32_t>(EngineState::kFormatted));
  rh->log.next_seq = 1;
  rh->log.published_seq.store(1);
  rh->log.host_position.store(0);
  rh->replica.store(0);
  rh->files_held.store(0);
  for (auto& slot : rh->log.ring) {
    slot.end_lsn.store(0);
    slot.done.store(0);
    slot.synced.store(0);
    slot.waiting.store(0);
  }
  rh->stats.Reset();
  rh->segments_off = l.segments_off;
  rh->keyspaces_off = l.keyspaces_off;
  rh->index_off = l.index_off;
  rh->index_bytes = l.index_bytes;
  rh->cache_off = l.cache_off;
  rh->cache_bytes = l.cache_bytes;
  rh->stage_off = l.stage_off;
  rh->log.stage_capacity = l.stage_bytes;
  rh->feed_off = l.feed_off;
  std::memset(base + l.feed_off, 0, ChangeFeed::RequiredBytes());
  SegmentTable::Format(base + l.segments_off);
  KeyspaceTable::Format(base + l.keyspaces_off, o.max_keyspaces);
  Index::Format(base + l.index_off, l.index_bytes);
  ValueCache::Format(base + l.cache_off, l.cache_bytes);
  return Status::OK();
}

Status Engine::Attach(void* region, const Options& local, std::unique_ptr<Engine>* out) {
  auto* base = static_cast<char*>(region);
  auto* rh = reinterpret_cast<RegionHeader*>(base);
  if (rh->magic != RegionHeader::kMagic || rh->layout_version != RegionHeader::kLayoutVersion)
    return Status::InvalidArgument("shared memory region is not a formatted eloqkv region");
  auto impl = std::make_unique<Impl>();
  impl->rh = rh;
  impl->local = local;
  impl->segments.Attach(base + rh->segments_off);
  impl->keyspaces.Attach(base + rh->keyspaces_off);
  impl->index.Attach(base + rh->index_off);
  impl->feed.Attach(&rh->feed, base + rh->feed_off);
  impl->cache.Attach(base + rh->cache_off, &impl->index);
  impl->files = std::make_unique<SegmentFiles>(rh->opts.data_dir, rh->opts.direct_reads != 0);
  out->reset(new Engine(std::move(impl)));
  return Status::OK();
}

Status Engine::Recover() { return impl_->Recover(); }

EngineState Engine::state() const {
  return static_cast<EngineState>(impl_->rh->state.load(std::memory_order_acquire));
}

std::string Engine::FailureMessage() const { return impl_->Failure(); }

bool Engine::writes_failed() const {
  return impl_->write_failed();
}

bool Engine::logged_writes_stranded() const {
  if (!impl_->write_failed()) return false;
  // Nothing becomes durable after a failure, so both positions are final by now: the last
  // batch logged (before the failure stopped writes under the write mutex) against the last
  // one synced. Replicated batches move only durable_host.
  const LogShared& log = impl_->rh->log;
  return log.host_position.load(std::memory_order_acquire) >
         log.durable_host.load(std::memory_order_acquire);
}

Status Engine::Shutdown() {
  Impl& m = *impl_;
  if (state() != EngineState::kReady) return Status::OK();
  Status s;
  if (!m.write_failed()) {
    s = m.GroupCommit(m.rh->log.reserved_lsn.load());
    if (s.ok()) s = m.WriteCheckpoint();
  }
  {
    ShmLockGuard g(m.rh->log.write_mu);
    m.rh->state.store(static_cast<uint32_t>(EngineState::kClosed), std::memory_order_release);
  }
  return s;
}

// ---- keyspaces ----

Status Engine::CreateKeyspace(std::string_view name, uint32_t* id) {
  WriteBatch b;
  WriteBatchInternal::AddKeyspaceRecord(b, name, KeyspaceRecord{});
  WriteBatch::Rep* rep = WriteBatchInternal::rep(b);
  rep->ops[0].cond = WriteCondition::kIfAbsent;
  if (name.size() > kMaxKeyspaceNameSize)
    return Status::InvalidArgument("keyspace name is longer than " +
                                   std::to_string(kMaxKeyspaceNameSize) + " bytes");
  Status s = impl_->Write(*rep, nullptr);
  if (s.ok()) *id = rep->ops[0].keyspace_record.id;
  return s;
}

bool Engine::KeyspaceExists(uint32_t id) const { return impl_->keyspaces.Find(id) != nullptr; }

Status Engine::FindKeyspace(std::string_view name, uint32_t* id) const {
  if (impl_->keyspaces.FindByName(name, id)) return Status::OK();
  return Status::NotFound("keyspace \"" + std::string(name) + "\" does not exist");
}

namespace {
Status ChangeKeyspace(Engine::Impl& m, uint32_t id, uint32_t flags) {
  const KeyspaceSlot* ks = m.keyspaces.Find(id);
  if (ks == nullptr) return Status::NotFound("keyspace " + std::to_string(id) + " does not exist");
  WriteBatch b;
  KeyspaceRecord r;
  r.id = id;
  r.flags = flags;
  r.min_seq = UINT64_MAX;  // becomes the record's own sequence number
  WriteBatchInternal::AddKeyspaceRecord(b, ks->name, r);
  WriteBatchInternal::rep(b)->ops[0].cond = WriteCondition::kIfPresent;
  return m.Write(*WriteBatchInternal::rep(b), nullptr);
}
}  // namespace

Status Engine::TruncateKeyspace(uint32_t id) { return ChangeKeyspace(*impl_, id, 0); }
Status Engine::DropKeyspace(uint32_t id) { return ChangeKeyspace(*impl_, id, kKeyspaceDropped); }

namespace {
KeyspaceStats StatsOf(const KeyspaceSlot& s) {
  KeyspaceStats k;
  k.id = s.id.load();
  k.name = s.name;
  const auto& c = s.counters;
  const KeyCounts counts = c.ReadKeyCounts();
  k.keys = static_cast<uint64_t>(std::max<int64_t>(0, counts.keys));
  k.bytes = static_cast<uint64_t>(std::max<int64_t>(0, counts.bytes));
  k.expiring = static_cast<uint64_t>(std::max<int64_t>(0, counts.expiring));
  if (k.expiring > 0) {
    // Keys past their time that the sweep has not removed yet pull it down: never below 0.
    const double left_ms = counts.mean_expire_at_ms - static_cast<double>(NowMillis());
    k.avg_ttl_ms = left_ms <= 0 ? 0 : static_cast<int64_t>(left_ms);
  }
  k.reads = c.reads.load();
  k.writes = c.writes.load();
  k.deletes = c.deletes.load();
  k.cache_hits = c.cache_hits.load();
  k.cache_misses = c.cache_misses.load();
  k.device_reads = c.device_reads.load();
  k.read_latency = c.read_latency.Summarize();
  k.write_latency = c.write_latency.Summarize();
  return k;
}
}  // namespace

std::vector<KeyspaceStats> Engine::ListKeyspaces() const {
  std::vector<KeyspaceStats> out;
  for (uint32_t id : impl_->keyspaces.LiveIds()) {
    if (const KeyspaceSlot* s = impl_->keyspaces.Find(id)) out.push_back(StatsOf(*s));
  }
  return out;
}

Status Engine::GetKeyspaceStats(uint32_t id, KeyspaceStats* out) const {
  const KeyspaceSlot* s = impl_->keyspaces.Find(id);
  if (s == nullptr) return Status::NotFound("keyspace " + std::to_string(id) + " does not exist");
  *out = StatsOf(*s);
  return Status::OK();
}

// ---- reads ----

Status Engine::Get(uint32_t keyspace, std::string_view key, std::string* value, ReadInfo* info) {
  Status s = impl_->CheckReady();
  if (!s.ok()) return s;
  std::string unused;  // a null value asks whether the key is there; the read is the same
  return impl_->Get(keyspace, key, value != nullptr ? value : &unused, info);
}

size_t Engine::Prefetch(uint32_t keyspace, std::span<const std::string_view> keys,
                        PrefetchDepth depth) {
  if (state() != EngineState::kReady) return 0;
  return impl_->Prefetch(keyspace, keys, depth);
}

void Engine::MultiGet(uint32_t keyspace, std::span<const std::string_view> keys,
                      std::vector<std::string>* values, std::vector<Status>* statuses,
                      ReadInfo* info, std::vector<uint64_t>* seqs) {
  Status s = impl_->CheckReady();
  if (!s.ok()) {
    values->assign(keys.size(), std::string());
    statuses->assign(keys.size(), s);
    return;
  }
  impl_->MultiGet(keyspace, keys, values, statuses, info, seqs);
}

Status Engine::Probe(uint32_t keyspace, std::string_view key, ReadInfo* info) {
  Status s = impl_->CheckReady();
  if (!s.ok()) return s;
  KeyspaceSlot* ks = impl_->keyspaces.Find(keyspace);
  if (ks == nullptr) return Status::NotFound("keyspace " + std::to_string(keyspace) + " does not exist");
  if (info != nullptr) info->seq = 0;
  EntrySnapshot e;
  if (!impl_->index.Lookup(keyspace, key, &e)) return Status::NotFound();
  if (!impl_->DeferVisible(e, info) && !impl_->WaitVisible(e))
    return Status::IOError("writes failed: " + impl_->Failure());
  if (info != nullptr) info->seq = e.fields.seq;
  if (!impl_->IsLiveNow(e, ks)) return Status::NotFound();
  if (info != nullptr) info->expire_at_ms = e.fields.expire_at_ms;
  return Status::OK();
}

uint64_t Engine::ForgottenSequence(uint32_t keyspace, std::string_view key) const {
  return impl_->ForgottenSlot(keyspace, key).load(std::memory_order_seq_cst);
}

uint64_t Engine::PublishedSequence() const {
  return impl_->rh->log.published_seq.load(std::memory_order_acquire);
}

namespace {

class EngineIterator final : public Iterator {
 public:
  EngineIterator(Engine::Impl* impl, uint32_t keyspace, const ScanOptions& opt)
      : impl_(impl), keyspace_(keyspace), opt_(opt) {
    if (!opt_.prefix.empty() && opt_.prefix > opt_.lower) {
      from_ = opt_.prefix;
      inclusive_ = true;
    } else {
      from_ = opt_.lower;
      inclusive_ = opt_.lower_inclusive;
    }
    status_ = impl_->CheckReady();
    ks_ = impl_->keyspaces.Find(keyspace);
    if (status_.ok() && ks_ == nullptr)
      status_ = Status::NotFound("keyspace " + std::to_string(keyspace) + " does not exist");
    more_ = status_.ok();
    Settle();
  }

  bool Valid() const override { return valid_; }
  void Next() override {
    ++pos_;
    Settle();
  }
  std::string_view key() const override { return buf_[pos_].key; }
  Status value(std::string* out) override {
    info_ = ReadInfo{};
    return impl_->Get(keyspace_, buf_[pos_].key, out, &info_);
  }
  const ReadInfo& info() const override { return info_; }
  Status status() const override { return status_; }

 private:
  bool BeyondEnd(std::string_view k) const {
    if (!opt_.prefix.empty() && k.substr(0, opt_.prefix.size()) != opt_.prefix) return true;
    if (opt_.has_upper) {
      const int c = k.compare(opt_.upper);
      if (c > 0 || (c == 0 && !opt_.upper_inclusive)) return true;
    }
    return false;
  }

  // Moves to the next live key within bounds, refilling from the index a leaf at a time.
  void Settle() {
    valid_ = false;
    for (;;) {
      while (pos_ < buf_.size()) {
        const ScanItem& item = buf_[pos_];
        if (BeyondEnd(item.key)) {
          more_ = false;
          buf_.clear();
          pos_ = 0;
          return;
        }
        if (impl_->IsLiveNow(item.entry, ks_)) {
          valid_ = true;
          return;
        }
        ++pos_;
      }
      if (!more_) return;
      buf_.clear();
      pos_ = 0;
      uint32_t resume_ks = keyspace_;
      std::string resume;
      more_ = impl_->index.ScanLeaf(keyspace_, from_, inclusive_, false, &buf_, &resume_ks, &resume);
      from_ = std::move(resume);
      inclusive_ = true;
    }
  }

  Engine::Impl* impl_;
  uint32_t keyspace_;
  ScanOptions opt_;
  const KeyspaceSlot* ks_ = nullptr;
  std::string from_;
  bool inclusive_ = true;
  std::vector<ScanItem> buf_;
  size_t pos_ = 0;
  bool more_ = false;
  bool valid_ = false;
  Status status_;
  ReadInfo info_;
};

}  // namespace

std::unique_ptr<Iterator> Engine::NewIterator(uint32_t keyspace, const ScanOptions& options) {
  return std::make_unique<EngineIterator>(impl_.get(), keyspace, options);
}

// ---- writes ----

Status Engine::Write(WriteBatch& batch, WriteResult* result) {
  return impl_->Write(*WriteBatchInternal::rep(batch), result);
}

Status Engine::WriteDeferred(WriteBatch& batch, WriteResult* result) {
  return impl_->Write(*WriteBatchInternal::rep(batch), result, /*wait_durable=*/false);
}

Status Engine::ApplyReplicated(const ReplicatedBatch& batch, bool discard, bool allow_gap,
                               WriteResult* result) {
  if (batch.count == 0) return Status::InvalidArgument("replicated batch has no records");
  WriteBatch wb;
  WriteBatch::Rep& rep = *WriteBatchInternal::rep(wb);
  rep.replicated = true;
  rep.allow_gap = allow_gap;
  rep.replicated_first_seq = batch.first_seq;
  rep.replicated_host_end = batch.host_end;
  if (discard) {  // one empty record per number, so that the numbers are used up durably
    for (uint32_t i = 0; i < batch.count; ++i) {
      WriteBatch::Rep::Op op;
      op.offset = rep.data.size();
      op.size = kRecordHeaderSize;
      op.type = RecordType::kVoid;
      RecordHeader h;
      h.type = RecordType::kVoid;
      AppendRecord(h, {}, {}, &rep.data);
      rep.ops.push_back(op);
    }
    return impl_->Write(rep, result, /*wait_durable=*/false);
  }
  rep.data.assign(batch.records);
  size_t pos = 0;
  while (pos < rep.data.size()) {
    RecordHeader h;
    if (DecodeRecordHeader(rep.data.data() + pos, rep.data.size() - pos, &h) != DecodeResult::kOk ||
        h.total_size() > rep.data.size() - pos || (h.flags & kRecordRelocated) != 0)
      return Status::Corruption("malformed replicated batch at byte " + std::to_string(pos));
    WriteBatch::Rep::Op op;
    op.offset = pos;
    op.size = h.total_size();
    op.type = h.type;
    op.keyspace = h.keyspace;
    op.key_len = h.key_len;
    op.value_len = h.value_len;
    op.expire_at_ms = h.expire_at_ms;
    switch (h.type) {
      case RecordType::kPut:
      case RecordType::kDelete:
      case RecordType::kVoid:
        break;
      case RecordType::kKeyspace:
        if (!DecodeKeyspaceRecord(rep.value(op), &op.keyspace_record))
          return Status::Corruption("malformed keyspace record in a replicated batch");
        op.keyspace = op.keyspace_record.id;
        break;
      default:
        return Status::Corruption("unexpected record type " +
                                  std::to_string(static_cast<int>(h.type)) +
                                  " in a replicated batch");
    }
    rep.max_key = std::max<size_t>(rep.max_key, h.key_len);
    rep.ops.push_back(op);
    pos += h.total_size();
  }
  if (rep.ops.size() != batch.count)
    return Status::Corruption("replicated batch holds " + std::to_string(rep.ops.size()) +
                              " records; its header says " + std::to_string(batch.count));
  return impl_->Write(rep, result, /*wait_durable=*/false);
}

void Engine::SetReplica(bool replica) {
  impl_->rh->replica.store(replica ? 1 : 0, std::memory_order_release);
}

namespace {

constexpr uint32_t kWatchedHold = 1;  // Engine::HoldFiles
constexpr uint32_t kCountedHold = 2;  // per Engine::AddFileHold

// A compaction step or checkpoint that began before a hold finishes first; those that take
// their lock after it see the hold (CompactStep, WriteCheckpoint).
void WaitOutFileChanges(RegionHeader* rh) {
  rh->maintenance_mu.Lock();
  rh->maintenance_mu.Unlock();
  rh->ckpt.mu.Lock();
  rh->ckpt.mu.Unlock();
}

}  // namespace

void Engine::HoldFiles(bool hold) {
  RegionHeader* rh = impl_->rh;
  if (!hold) {
    rh->files_held.fetch_and(~kWatchedHold, std::memory_order_acq_rel);
    return;
  }
  rh->files_held.fetch_or(kWatchedHold, std::memory_order_acq_rel);
  WaitOutFileChanges(rh);
}

bool Engine::files_hold_set() const {
  return (impl_->rh->files_held.load(std::memory_order_acquire) & kWatchedHold) != 0;
}

void Engine::AddFileHold() {
  impl_->rh->files_held.fetch_add(kCountedHold, std::memory_order_acq_rel);
  WaitOutFileChanges(impl_->rh);
}

void Engine::ReleaseFileHold() {
  impl_->rh->files_held.fetch_sub(kCountedHold, std::memory_order_acq_rel);
}

bool Engine::files_held() const {
  return impl_->files_held();
}

bool Engine::replica() const { return impl_->rh->replica.load(std::memory_order_acquire) != 0; }

Status Engine::SyncTo(uint64_t lsn) {
  Impl& m = *impl_;
  if (m.sync() == SyncPolicy::kAlways) return m.GroupCommit(lsn);
  if (!m.rh->log.written.WaitFor(lsn, &m.rh->write_failed)) return m.WritesDisabled();
  return Status::OK();
}

Status Engine::WriteOut(uint64_t lsn) {
  Impl& m = *impl_;
  LogShared& log = m.rh->log;
  if (!log.written.WaitFor(lsn, &m.rh->write_failed)) return m.WritesDisabled();
  if (log.file_lsn.load(std::memory_order_acquire) >= lsn) return Status::OK();
  ShmLockGuard g(log.flush_mu);
  if (log.file_lsn.load(std::memory_order_acquire) >= lsn) return Status::OK();
  uint64_t upto, upto_ticket;
  return m.WriteOutLocked(&upto, &upto_ticket);
}

uint64_t Engine::WrittenOutLsn() const {
  return impl_->rh->log.file_lsn.load(std::memory_order_acquire);
}

Status Engine::SyncWritten() {
  Impl& m = *impl_;
  LogShared& log = m.rh->log;
  uint64_t upto, upto_ticket;
  {
    // A consistent pair; the sync itself runs without flush_mu, so WriteOut goes on meanwhile.
    ShmLockGuard g(log.flush_mu);
    upto = log.file_lsn.load(std::memory_order_relaxed);
    upto_ticket = log.file_ticket;
  }
  ShmLockGuard g(log.sync_mu);
  // Someone synced past it meanwhile (durable and durable_ticket move together under sync_mu).
  if (log.durable.Load() >= upto) return Status::OK();
  return m.SyncFilesLocked(upto, upto_ticket);
}

Status Engine::WriteOutAll() {
  return WriteOut(impl_->rh->log.written.Load());
}

uint64_t Engine::HostWritten() const {
  return impl_->rh->log.file_host.load(std::memory_order_acquire);
}

Engine::HostRetention Engine::Retention() const {
  const LogShared& log = impl_->rh->log;
  HostRetention r;
  // Ticket before durable position: a batch durable by the time durable_host is read only
  // makes the answer more cautious than it needs to be.
  const uint64_t next = std::atomic_ref<uint64_t>(const_cast<uint64_t&>(log.next_ticket))
                            .load(std::memory_order_acquire);
  r.pending = log.durable_ticket.load(std::memory_order_acquire) < next;
  r.durable_host = log.durable_host.load(std::memory_order_acquire);
  return r;
}

uint64_t Engine::SyncedLsn() const {
  const Impl& m = *impl_;
  return (m.sync() == SyncPolicy::kAlways ? m.rh->log.durable : m.rh->log.written).Load();
}

uint64_t Engine::NextSequence() const {
  // Written under the write mutex; read here without it, hence the atomic view.
  return std::atomic_ref<uint64_t>(impl_->rh->log.next_seq).load(std::memory_order_acquire);
}

Status Engine::Put(uint32_t keyspace, std::string_view key, std::string_view value,
                   int64_t expire_at_ms) {
  WriteBatch b;
  Status s = b.Put(keyspace, key, value, expire_at_ms);
  if (!s.ok()) return s;
  return Write(b);
}

Status Engine::Delete(uint32_t keyspace, std::string_view key) {
  WriteBatch b;
  Status s = b.Delete(keyspace, key);
  if (!s.ok()) return s;
  return Write(b);
}

Status Engine::Flush() {
  Status s = impl_->CheckReady();
  if (!s.ok()) return s;
  return impl_->GroupCommit(impl_->rh->log.reserved_lsn.load(std::memory_order_acquire));
}

// ---- change feed ----

uint64_t Engine::SubscribeChanges() {
  // Under the write mutex: a write either finished publishing before this (and a read after it
  // sees the new value) or appends its change for this subscriber.
  ShmLockGuard g(impl_->rh->log.write_mu);
  return impl_->feed.Subscribe();
}

void Engine::UnsubscribeChanges() {
  ShmLockGuard g(impl_->rh->log.write_mu);
  impl_->feed.Unsubscribe();
}

uint64_t Engine::ChangePosition() const { return impl_->feed.Position(); }

bool Engine::ReadChanges(uint64_t* position, std::vector<KeyChange>* out) const {
  return impl_->feed.Read(position, out);
}

size_t Engine::KeyFootprint(size_t key_len, size_t value_len) {
  return Index::EntryBytes(key_len) + kRecordHeaderSize + key_len + value_len;
}

uint64_t Engine::KeyFingerprint(uint32_t keyspace, std::string_view key) {
  // 64-bit multiply-xorshift over 8-byte words: collisions only cost a spurious invalidation.
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = (uint64_t{keyspace} + 1) * kMul ^ key.size();
  size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, key.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  if (i < key.size()) std::memcpy(&tail, key.data() + i, key.size() - i);
  h = (h ^ tail) * kMul;
  h ^= h >> 32;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;  // 0 means "no key" (a whole-keyspace change)
}

// ---- maintenance ----

Status Engine::Tick() {
  Impl& m = *impl_;
  if (state() != EngineState::kReady) return m.CheckReady();
  if (m.write_failed()) return Status::IOError("writes are disabled: " + m.Failure());
  const int64_t now = NowMillis();
  LogShared& log = m.rh->log;
  if (m.sync() == SyncPolicy::kInterval && log.durable.Load() < log.written.Load() &&
      now - log.last_sync_ms.load() >= m.opts().sync_interval_ms) {
    Status s = m.GroupCommit(log.written.Load());
    if (!s.ok()) return s;
  }
  m.Sweep(8192);
  if (files_held()) return Status::OK();
  bool worked = false;
  Status s = m.CompactStep(uint64_t{32} << 20, &worked);
  if (!s.ok()) return s;
  const CheckpointShared& ck = m.rh->ckpt;
  const uint64_t appended = log.appended_bytes.load();
  const uint64_t since = appended - ck.appended_at_last.load();
  if (since >= m.opts().checkpoint_log_bytes ||
      (since > 0 && now - ck.last_ms.load() >= m.opts().checkpoint_interval_ms)) {
    return m.WriteCheckpoint();
  }
  return Status::OK();
}

namespace {
Status FilesHeld() {
  return Status::Unavailable(
      "a copy of the data directory is in progress (a base backup); compaction and checkpoints "
      "wait until it ends");
}
}  // namespace

Status Engine::Checkpoint() {
  Status s = impl_->CheckReady();
  if (!s.ok()) return s;
  if (files_held()) return FilesHeld();
  return impl_->WriteCheckpoint();
}

Status Engine::Compact(uint32_t max_segments) {
  Status s = impl_->CheckReady();
  if (!s.ok()) return s;
  if (files_held()) return FilesHeld();
  const uint64_t before = impl_->rh->stats.compactions.load();
  for (;;) {
    bool worked = false;
    s = impl_->CompactStep(uint64_t{64} << 20, &worked, /*wait=*/true);
    if (s.ok() && !worked && files_held()) return FilesHeld();  // held since the check above
    if (!s.ok() || !worked) return s;
    if (impl_->rh->stats.compactions.load() - before >= max_segments) return s;
  }
}

size_t Engine::SweepExpired(size_t max_entries) {
  if (!impl_->CheckReady().ok()) return 0;
  return impl_->Sweep(max_entries, /*wait=*/true);
}

void Engine::CacheUsage(uint64_t* used, uint64_t* limit) const {
  *used = impl_->cache.used_bytes();
  *limit = impl_->cache.capacity();
}

EngineInfo Engine::Info() const {
  const Impl& m = *impl_;
  const RegionHeader* rh = m.rh;
  EngineInfo i;
  i.version = kEngineVersion;
  i.data_dir = rh->opts.data_dir;
  i.io_mode = rh->io_uring.load() ? "io_uring" : "pread";
  i.direct_reads = rh->opts.direct_reads != 0;
  i.sync = SyncPolicyName(static_cast<SyncPolicy>(rh->opts.sync));
  i.state = EngineStateName(state());
  if (m.write_failed()) i.state += " (writes failed: " + m.Failure() + ")";
  i.checksum = crc32c::Implementation();
  i.index_memory_used = m.index.used_bytes();
  i.index_memory_limit = m.index.capacity_bytes();
  i.cache_memory_used = m.cache.used_bytes();
  i.cache_memory_limit = m.cache.capacity();
  i.keys = m.index.entry_count();
  int64_t live = 0;
  for (uint32_t id : m.segments.Ids()) {
    if (const SegmentSlot* s = m.segments.Get(id)) live += s->live_bytes.load();
  }
  i.live_bytes = static_cast<uint64_t>(std::max<int64_t>(0, live));
  i.disk_bytes = m.segments.disk_bytes();
  i.segments = m.segments.count();
  i.next_seq = rh->log.next_seq;
  i.durable_lsn = rh->log.durable.Load();
  const GlobalCounters& g = rh->stats;
  i.fsyncs = g.fsyncs.load();
  i.bytes_written = g.bytes_appended.load();
  i.fsync_latency = g.fsync_latency.Summarize();
  i.checkpoints = g.checkpoints.load();
  i.last_checkpoint_lsn = g.last_checkpoint_lsn.load();
  i.last_checkpoint_ms = static_cast<double>(g.last_checkpoint_us.load()) / 1000.0;
  i.recovery_ms = static_cast<double>(g.recovery_us.load()) / 1000.0;
  i.recovered_records = g.recovered_records.load();
  i.compactions = g.compactions.load();
  i.compaction_bytes_moved = g.compaction_bytes_moved.load();
  i.compaction_bytes_reclaimed = g.compaction_bytes_reclaimed.load();
  i.compacting_segment = g.compacting_segment.load();
  const uint64_t total = g.compacting_total.load();
  i.compacting_progress =
      total ? static_cast<double>(g.compacting_done.load()) / static_cast<double>(total) : 0.0;
  i.expired_swept = g.expired_swept.load();
  return i;
}

}  // namespace eloqkv
