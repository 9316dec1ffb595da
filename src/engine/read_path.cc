// The read path: a lock-free index lookup, then the value cache, then exactly one device read
// (one batch of reads for a multi-get), verified against the record's checksum and identity.
#include <algorithm>
#include <cstring>

#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

constexpr uint64_t kAlign = AlignedBuffer::kAlign;
constexpr int kMaxMovedRetries = 4;

thread_local AlignedBuffer t_read_buffer;

struct DeviceRead {
  uint64_t start = 0;  // aligned (or exact) file offset of the transfer
  size_t length = 0;
  size_t record_at = 0;  // the record's offset inside the transfer
};

DeviceRead PlanRead(const EntrySnapshot& e, bool direct) {
  DeviceRead d;
  const uint64_t off = e.fields.offset;
  const uint64_t end = off + e.fields.length;
  d.start = direct ? off / kAlign * kAlign : off;
  const uint64_t stop = direct ? (end + kAlign - 1) / kAlign * kAlign : end;
  d.length = static_cast<size_t>(stop - d.start);
  d.record_at = static_cast<size_t>(off - d.start);
  return d;
}

}  // namespace

bool Engine::Impl::IsLive(const EntrySnapshot& e, const KeyspaceSlot* ks, int64_t now_ms) const {
  if (e.fields.tombstone || !VisibleInKeyspace(ks, e.fields.seq)) return false;
  return e.fields.expire_at_ms == 0 || e.fields.expire_at_ms > now_ms;
}

bool Engine::Impl::WaitVisible(const EntrySnapshot& e) {
  const ShmWatermark& mark = sync() == SyncPolicy::kAlways ? rh->log.durable : rh->log.written;
  const uint64_t end = e.end_lsn();
  if (mark.Load() >= end) return true;
  // A deferred write (WriteDeferred) may not be synced by anyone yet: lead the sync rather
  // than wait for it, so a reader never waits on a writer that is itself waiting to read.
  if (sync() == SyncPolicy::kAlways) return GroupCommit(end).ok();
  return const_cast<ShmWatermark&>(mark).WaitFor(end, &rh->write_failed);
}

bool Engine::Impl::DeferVisible(const EntrySnapshot& e, ReadInfo* info) const {
  if (info == nullptr || !info->unsynced_ok) return false;
  const uint64_t end = e.end_lsn();
  if (rh->log.durable.Load() >= end) return true;
  if (rh->log.written.Load() < end) return false;  // not even in the log yet: wait as usual
  if (end > info->depends_on_lsn) info->depends_on_lsn = end;
  return true;
}

namespace {

// Verifies that the bytes read are the record the entry names. *moved is set when the segment
// file is gone (compaction moved the record and deleted the file): the caller looks up again.
Status CheckRecord(const Engine::Impl& impl, const char* data, size_t avail, uint32_t keyspace,
                   std::string_view key, const EntrySnapshot& e, RecordView* rv) {
  const DecodeResult d = DecodeRecord(data, avail, e.fields.segment, rv);
  auto where = [&] {
    return impl.files->Path(e.fields.segment) + " at offset " + std::to_string(e.fields.offset);
  };
  if (d != DecodeResult::kOk)
    return Status::Corruption("record in segment file " + where() + " failed its checksum");
  if (rv->header.type != RecordType::kPut || rv->header.keyspace != keyspace ||
      rv->key != key || rv->header.seq != e.fields.seq ||
      rv->header.total_size() != e.fields.length)
    return Status::Corruption("record in segment file " + where() + " is not the one indexed");
  return Status::OK();
}

}  // namespace

Status Engine::Impl::ReadValue(uint32_t keyspace, std::string_view key, const EntrySnapshot& e,
                               std::string* value, ReadInfo* info, KeyspaceCounters* counters) {
  if (cache.Get(e.cache_pos, e.ref, e.fields.seq, value)) {
    counters->cache_hits.fetch_add(1, std::memory_order_relaxed);
    if (info != nullptr) ++info->cache_hits;
    return Status::OK();
  }
  counters->cache_misses.fetch_add(1, std::memory_order_relaxed);
  int fd;
  bool direct;
  Status s = files->ReadFd(e.fields.segment, &fd, &direct);
  if (!s.ok()) return s;
  const DeviceRead plan = PlanRead(e, direct);
  char* buf = t_read_buffer.Reserve(plan.length);
  if (buf == nullptr) return Status::IOError("out of memory for a read buffer");
  ReadRequest req{fd, buf, plan.length, plan.start, 0};
  io()->ReadBatch(std::span<ReadRequest>(&req, 1));
  counters->device_reads.fetch_add(1, std::memory_order_relaxed);
  if (info != nullptr) ++info->device_reads;
  if (req.result < 0)
    return Status::FromErrno(static_cast<int>(-req.result), "read segment",
                             files->Path(e.fields.segment));
  const size_t got = static_cast<size_t>(req.result);
  if (got < plan.record_at + e.fields.length)
    return Status::Corruption("segment file " + files->Path(e.fields.segment) +
                              " is shorter than the index says");
  RecordView rv;
  s = CheckRecord(*this, buf + plan.record_at, e.fields.length, keyspace, key, e, &rv);
  if (!s.ok()) return s;
  value->assign(rv.value);
  if (rv.value.size() <= cache.max_value_size()) cache.Insert(e.ref, e.fields.seq, e.cache_pos, rv.value);
  return Status::OK();
}

Status Engine::Impl::Get(uint32_t keyspace, std::string_view key, std::string* value,
                         ReadInfo* info) {
  const uint64_t t0 = NowNanos();
  files->DropStale(segments);  // close descriptors of deleted segments (cheap when none)
  KeyspaceSlot* ks = keyspaces.Find(keyspace);
  if (ks == nullptr)
    return Status::NotFound("keyspace " + std::to_string(keyspace) + " does not exist");
  ks->counters.reads.fetch_add(1, std::memory_order_relaxed);
  Status s;
  for (int attempt = 0;; ++attempt) {
    EntrySnapshot e;
    if (!index.Lookup(keyspace, key, &e)) {
      s = Status::NotFound();
      break;
    }
    cache.Prefetch(e.cache_pos);  // overlaps the (likely) miss with the checks below
    // A value not yet durable is served unsynced only from the cache: its bytes may still be
    // in the shared log buffer rather than in the file.
    const uint64_t durable = rh->log.durable.Load();
    const bool deferred = durable < e.end_lsn() && DeferVisible(e, info) &&
                          cache.Get(e.cache_pos, e.ref, e.fields.seq, value);
    if (deferred) {
      ks->counters.cache_hits.fetch_add(1, std::memory_order_relaxed);
      ++info->cache_hits;
    } else if (!WaitVisible(e)) {
      s = Status::IOError("writes failed before this key became durable: " + Failure());
      break;
    }
    if (!IsLiveNow(e, ks)) {
      s = Status::NotFound();
      break;
    }
    if (info != nullptr) {
      info->seq = e.fields.seq;
      info->expire_at_ms = e.fields.expire_at_ms;
    }
    if (deferred) break;
    s = ReadValue(keyspace, key, e, value, info, &ks->counters);
    // A compaction may have moved the record and deleted its file since the lookup.
    if (s.ok() || attempt >= kMaxMovedRetries || segments.Get(e.fields.segment) != nullptr) break;
    files->DropStale(segments);
  }
  ks->counters.read_latency.Record(NowNanos() - t0);
  return s;
}

namespace {

// A key whose value is not in the cache: read in one batch with the others.
struct ColdRead {
  size_t i;  // index into the caller's keys
  EntrySnapshot e;
  DeviceRead plan;
  size_t buf_off = 0;
  bool retry = false;  // not read (file gone, short read): the single-key path reports it
  Status status;
  std::string_view value;  // into the calling thread's read buffer, until its next read
};

// Submits every cold read in one batch, checks each record, and caches the values that fit.
void ReadColdBatch(Engine::Impl& m, uint32_t keyspace, std::span<const std::string_view> keys,
                   KeyspaceSlot* ks, std::vector<ColdRead>* cold, ReadInfo* info) {
  if (cold->empty()) return;
  std::vector<ReadRequest> batch;
  std::vector<ColdRead*> batched;
  batch.reserve(cold->size());
  batched.reserve(cold->size());
  size_t total = 0;
  for (ColdRead& c : *cold) {
    int fd;
    bool direct;
    if (!m.files->ReadFd(c.e.fields.segment, &fd, &direct).ok()) {
      c.retry = true;
      continue;
    }
    c.plan = PlanRead(c.e, direct);
    c.buf_off = total;
    total += (c.plan.length + kAlign - 1) / kAlign * kAlign;
    batch.push_back(ReadRequest{fd, nullptr, c.plan.length, c.plan.start, 0});
    batched.push_back(&c);
  }
  char* buf = t_read_buffer.Reserve(std::max<size_t>(total, 1));
  for (size_t k = 0; k < batch.size(); ++k) batch[k].buf = buf + batched[k]->buf_off;
  m.io()->ReadBatch(batch);
  ks->counters.device_reads.fetch_add(batch.size(), std::memory_order_relaxed);
  if (info != nullptr) info->device_reads += static_cast<uint32_t>(batch.size());
  for (size_t k = 0; k < batch.size(); ++k) {
    ColdRead& c = *batched[k];
    const ReadRequest& req = batch[k];
    if (req.result < 0 || static_cast<size_t>(req.result) < c.plan.record_at + c.e.fields.length) {
      c.retry = true;
      continue;
    }
    RecordView rv;
    c.status = CheckRecord(m, req.buf + c.plan.record_at, c.e.fields.length, keyspace, keys[c.i],
                           c.e, &rv);
    if (!c.status.ok()) {
      if (m.segments.Get(c.e.fields.segment) == nullptr) c.retry = true;
      continue;
    }
    c.value = rv.value;
    if (rv.value.size() <= m.cache.max_value_size())
      m.cache.Insert(c.e.ref, c.e.fields.seq, c.e.cache_pos, rv.value);
  }
}

}  // namespace

size_t Engine::Impl::Prefetch(uint32_t keyspace, std::span<const std::string_view> keys,
                              Engine::PrefetchDepth depth) {
  KeyspaceSlot* ks = keyspaces.Find(keyspace);
  if (ks == nullptr) return 0;
  // Each pass issues every key's next memory access before the batch waits on any of them:
  // home buckets, then the entries they name, then the cached values.
  thread_local std::vector<uint64_t> hashes;
  thread_local std::vector<uint32_t> refs;
  hashes.resize(keys.size());
  refs.resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    hashes[i] = index.PointHashOf(keyspace, keys[i]);
    index.PrefetchBucket(hashes[i]);
  }
  for (size_t i = 0; i < keys.size(); ++i) refs[i] = index.PrefetchEntry(hashes[i]);
  if (depth == Engine::PrefetchDepth::kIndex) return 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (refs[i] != 0) cache.Prefetch(index.LoadCachePos(refs[i]));
  }
  if (depth == Engine::PrefetchDepth::kMemory) return 0;
  const uint64_t durable =
      (sync() == SyncPolicy::kAlways ? rh->log.durable : rh->log.written).Load();
  const int64_t now = NowMillis();
  std::vector<ColdRead> cold;
  for (size_t i = 0; i < keys.size(); ++i) {
    EntrySnapshot e;
    // Only what a read would fetch from the device without waiting: durable, live, uncached.
    if (!index.Lookup(keyspace, keys[i], &e) || e.end_lsn() > durable || !IsLive(e, ks, now) ||
        e.fields.length > cache.max_value_size() + kRecordHeaderSize + keys[i].size() ||
        cache.Contains(e.cache_pos, e.ref, e.fields.seq))
      continue;
    cold.push_back(ColdRead{.i = i, .e = e});
  }
  ReadColdBatch(*this, keyspace, keys, ks, &cold, nullptr);
  return cold.size();
}

void Engine::Impl::MultiGet(uint32_t keyspace, std::span<const std::string_view> keys,
                            std::vector<std::string>* values, std::vector<Status>* statuses,
                            ReadInfo* info, std::vector<uint64_t>* seqs) {
  const uint64_t t0 = NowNanos();
  const size_t n = keys.size();
  values->assign(n, std::string());
  statuses->assign(n, Status::OK());
  if (seqs != nullptr) seqs->assign(n, 0);
  KeyspaceSlot* ks = keyspaces.Find(keyspace);
  if (ks == nullptr) {
    statuses->assign(n, Status::NotFound("keyspace " + std::to_string(keyspace) + " does not exist"));
    return;
  }
  ks->counters.reads.fetch_add(n, std::memory_order_relaxed);
  std::vector<ColdRead> cold;
  std::vector<size_t> retry;
  const int64_t now = NowMillis();
  for (size_t i = 0; i < n; ++i) {
    EntrySnapshot e;
    if (!index.Lookup(keyspace, keys[i], &e)) {
      (*statuses)[i] = Status::NotFound();
      continue;
    }
    if (!WaitVisible(e)) {
      (*statuses)[i] = Status::IOError("writes failed before this key became durable");
      continue;
    }
    if (!IsLive(e, ks, now)) {
      (*statuses)[i] = Status::NotFound();
      continue;
    }
    if (seqs != nullptr) (*seqs)[i] = e.fields.seq;
    if (cache.Get(e.cache_pos, e.ref, e.fields.seq, &(*values)[i])) {
      ks->counters.cache_hits.fetch_add(1, std::memory_order_relaxed);
      if (info != nullptr) ++info->cache_hits;
      continue;
    }
    ks->counters.cache_misses.fetch_add(1, std::memory_order_relaxed);
    cold.push_back(ColdRead{.i = i, .e = e});
  }
  ReadColdBatch(*this, keyspace, keys, ks, &cold, info);
  for (const ColdRead& c : cold) {
    if (c.retry) {
      retry.push_back(c.i);
    } else if (!c.status.ok()) {
      (*statuses)[c.i] = c.status;
    } else {
      (*values)[c.i].assign(c.value);
    }
  }
  for (size_t i : retry) {
    ks->counters.reads.fetch_sub(1, std::memory_order_relaxed);  // Get counts it again
    ReadInfo one;
    (*statuses)[i] = Get(keyspace, keys[i], &(*values)[i], &one);
    if (seqs != nullptr) (*seqs)[i] = one.seq;
    if (info != nullptr) {
      info->cache_hits += one.cache_hits;
      info->device_reads += one.device_reads;
    }
  }
  ks->counters.read_latency.Record(NowNanos() - t0);
}

}  // namespace eloqkv
