// Maintenance: the sweep that drops dead index entries (expired keys, durable deletes, truncated
// or dropped keyspaces) and the compaction that rewrites segments whose live fraction is low.
//
// Compaction copies the live puts of a segment to the head of the log (same seq, flag
// kRelocated), then deletes the file (above the checkpoint horizon, after a retire record). A copy
// is a conditional write (the entry must still point at the old place), made under the write mutex
// like any write, so it never overwrites a newer value and it lands before any later delete of
// the key: replay order by sequence number survives compaction. Reads and writes keep flowing.
//
// Below the older retained checkpoint nothing is ever replayed, so deletes are simply dropped.
// Above it, replay from that checkpoint may read the segment's range, so its deletes are carried
// forward and a retirement record tells recovery the file's absence is deliberate. Segments that
// hold catalog records are not compacted until they fall below (catalog replay is order-based).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cinttypes>

#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

// Each relocation batch holds the write mutex while it checks and moves its entries; SETs from
// every process wait behind it. 4 MiB batches (~14K small records) held it for 2-5 ms and put
// that into the listener's tail latency during compaction.
constexpr size_t kRelocationBatchBytes = size_t{256} << 10;
constexpr size_t kCompactionReadChunk = size_t{8} << 20;

// Background maintenance skips a round when another process holds the lock; an explicit
// request (Engine::Compact) waits for it instead, so that it never reports "nothing to do"
// merely because the maintenance worker was busy.
struct MaintenanceLock {
  explicit MaintenanceLock(ShmMutex& m, bool wait = false) : m_(m), held_(Acquire(m, wait)) {}
  static bool Acquire(ShmMutex& m, bool wait) {
    if (!wait) return m.TryLock();
    m.Lock();
    return true;
  }
  ~MaintenanceLock() {
    if (held_) m_.Unlock();
  }
  bool held() const { return held_; }

 private:
  ShmMutex& m_;
  bool held_;
};

}  // namespace

void Engine::Impl::RecomputeAccounting() {
  for (uint32_t id : segments.Ids())
    if (SegmentSlot* s = segments.Get(id)) s->live_bytes.store(0);
  for (uint32_t id : keyspaces.LiveIds()) {
    if (KeyspaceSlot* k = keyspaces.Find(id)) k->counters.ClearKeys();
  }
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
      const EntryFields& f = it.entry.fields;
      if (f.tombstone) continue;
      segments.AddLive(f.segment, f.length);
      KeyspaceSlot* k = keyspaces.Find(it.entry.keyspace);
      if (VisibleInKeyspace(k, f.seq)) k->counters.CountKey(1, f.length, f.expire_at_ms);
    }
    ks = rks;
    from = std::move(resume);
  }
}

size_t Engine::Impl::Sweep(size_t max_entries, bool wait) {
  MaintenanceLock lock(rh->maintenance_mu, wait);
  if (!lock.held()) return 0;
  const int64_t now = NowMillis();
  rh->expiry_clock_ms = std::max(rh->expiry_clock_ms, now);
  const ShmWatermark& visible = sync() == SyncPolicy::kAlways ? rh->log.durable : rh->log.written;
  std::vector<ScanItem> dead;
  std::vector<ScanItem> items;
  size_t scanned = 0;
  bool wrapped = false;
  while (scanned < max_entries) {
    items.clear();
    uint32_t rks = 0;
    std::string resume;
    const bool more = index.ScanLeaf(sweep_keyspace, sweep_key, true, true, &items, &rks, &resume);
    scanned += items.size() + 1;
    for (ScanItem& it : items) {
      const KeyspaceSlot* ks = keyspaces.Find(it.entry.keyspace);
      const EntryFields& f = it.entry.fields;
      const bool durable_tombstone = f.tombstone && it.entry.end_lsn() <= visible.Load();
      const bool expired = f.expire_at_ms != 0 && f.expire_at_ms <= now;
      const bool orphan = !VisibleInKeyspace(ks, f.seq);
      if (durable_tombstone || (!f.tombstone && (expired || orphan))) dead.push_back(std::move(it));
    }
    if (more) {
      sweep_keyspace = rks;
      sweep_key = std::move(resume);
    } else {
      sweep_keyspace = 0;
      sweep_key.clear();
      wrapped = true;
      break;
    }
  }
  size_t removed = 0;
  if (!dead.empty()) {
    ShmLockGuard g(rh->log.write_mu);
    for (const ScanItem& it : dead) {
      EntryFields f;
      const uint32_t ref = index.Find(it.entry.keyspace, it.key, &f);
      if (ref == 0 || f.seq != it.entry.fields.seq || f.tombstone != it.entry.fields.tombstone) continue;
      KeyspaceSlot* ks = keyspaces.Find(it.entry.keyspace);
      if (!f.tombstone) {
        segments.AddLive(f.segment, -static_cast<int64_t>(f.length));
        if (VisibleInKeyspace(ks, f.seq)) {  // an expired, counted key
          ks->counters.CountKey(-1, f.length, f.expire_at_ms);
          rh->stats.expired_swept.fetch_add(1, std::memory_order_relaxed);
        }
      }
      // Before the entry goes: a probe that no longer finds it must see the number it carried.
      std::atomic<uint64_t>& forgotten = ForgottenSlot(it.entry.keyspace, it.key);
      if (f.seq > forgotten.load(std::memory_order_relaxed))
        forgotten.store(f.seq, std::memory_order_seq_cst);
      index.Remove(it.entry.keyspace, it.key, ref);
      ++removed;
    }
  }
  if (wrapped) {
    // A full pass is done: dropped keyspaces whose entries are all gone can free their slot.
    ShmLockGuard g(rh->log.write_mu);
    for (const auto& snap : keyspaces.SnapshotAll()) {
      if ((snap.record.flags & kKeyspaceDropped) == 0) continue;
      items.clear();
      uint32_t rks = 0;
      std::string resume;
      index.ScanLeaf(snap.record.id, "", true, false, &items, &rks, &resume);
      if (items.empty() && rks != snap.record.id) keyspaces.Forget(snap.record.id);
    }
  }
  return removed;
}

Status Engine::Impl::CompactStep(uint64_t budget, bool* did_work, bool wait) {
  *did_work = false;
  MaintenanceLock lock(rh->maintenance_mu, wait);
  // Checked under the lock: HoldFiles waits for the holder, so no step starts after it returns.
  if (!lock.held() || write_failed() || files_held()) return Status::OK();
  GlobalCounters& g = rh->stats;

  if (compact_victim == 0) {
    // Below the older retained checkpoint nothing is ever replayed: deletes can be dropped.
    // Above it, deletes are carried forward and the deletion itself is logged; segments holding
    // catalog records, or whose pinned bytes are unknown, wait until they fall below.
    const uint32_t below = LsnSegment(rh->ckpt.oldest_lsn.load());
    // A segment is marked sealed when its seal record is staged, before the flusher has written
    // its last bytes; compaction reads the file, so it waits until the log is in the file past
    // it. Under sync = always "written" includes bytes still staged in the shared buffer (the
    // seal among them, while a large record is written directly): only "durable" means the
    // file has them. Reading a staged seal's zeros was reported as damage, and the segment was
    // then never compacted.
    const uint32_t written_past = LsnSegment(
        sync() == SyncPolicy::kAlways ? rh->log.durable.Load() : rh->log.written.Load());
    int64_t live_total = 0;
    uint64_t used_total = 0;
    uint32_t best = 0;
    double best_ratio = 2;
    // Another process may have compacted a segment deferred here (ids are never reused).
    std::erase_if(compact_deferred,
                  [&](const auto& d) { return segments.Get(d.first) == nullptr; });
    for (uint32_t id : segments.Ids()) {
      const SegmentSlot* s = segments.Get(id);
      if (s == nullptr) continue;
      const auto state = static_cast<SegmentState>(s->state.load());
      if (state == SegmentState::kRetired) continue;
      const int64_t live = std::max<int64_t>(0, s->live_bytes.load());
      const uint64_t used = s->size.load();
      live_total += live;
      used_total += used;
      if (state != SegmentState::kSealed || id >= written_past || used <= kSegmentHeaderSize ||
          compact_skip.count(id) != 0)
        continue;
      if (auto d = compact_deferred.find(id); d != compact_deferred.end()) {
        // Retried once the entries the sweep was to remove are gone.
        if (s->live_bytes.load() >= d->second) continue;
        compact_deferred.erase(d);
      }
      const bool carry = id >= below;
      if (carry && (s->flags.load() & (kSegmentHasCatalog | kSegmentAccountingUnknown)) != 0) continue;
      const int64_t keep = live + (carry ? std::max<int64_t>(0, s->pinned_bytes.load()) : 0);
      const double ratio = static_cast<double>(keep) / static_cast<double>(used - kSegmentHeaderSize);
      if (ratio < best_ratio) {
        best_ratio = ratio;
        best = id;
      }
    }
    if (best == 0) return Status::OK();
    const double amp = live_total > 0 ? static_cast<double>(used_total) / static_cast<double>(live_total)
                                      : (used_total > 0 ? 1e9 : 1.0);
    const bool qualifies = best_ratio < opts().compaction_live_ratio ||
                           (amp > opts().compaction_space_amp && best_ratio < 0.95);
    if (!qualifies) return Status::OK();
    compact_victim = best;
    compact_offset = kSegmentHeaderSize;
    compact_carry = best >= below;
    compact_orphan_bytes = 0;
    g.compacting_segment.store(best);
    g.compacting_done.store(0);
    g.compacting_total.store(segments.Get(best)->size.load());
  }

  *did_work = true;
  const uint32_t victim = compact_victim;
  SegmentSlot* slot = segments.Get(victim);
  if (slot == nullptr) {
    compact_victim = 0;
    return Status::OK();
  }
  const uint64_t end = slot->size.load();
  const std::string path = files->Path(victim);
  // Around the page cache when reads go that way: a victim is read once and then deleted, and
  // caching it would only evict the host's pages.
  SequentialFileReader reader(&compact_read_buffer, "segment for compaction");
  if (Status s = reader.Open(path, rh->opts.direct_reads != 0); !s.ok()) return s;

  WriteBatch batch;
  uint64_t moved = 0;
  bool done = false;
  uint64_t processed = 0;
  auto flush = [&]() -> Status {
    if (batch.Count() == 0) return Status::OK();
    moved += batch.ByteSize();
    Status st = Write(*WriteBatchInternal::rep(batch), nullptr);
    batch.Clear();
    return st;
  };
  auto damaged = [&](uint64_t at) {
    compact_victim = 0;
    compact_skip.insert(victim);
    g.compacting_segment.store(0);
    Log(LogLevel::kError, "eloqkv: sealed segment file %s is damaged at offset %" PRIu64
        "; it will not be compacted", path.c_str(), at);
    return Status::Corruption("sealed segment file " + path + " is damaged at offset " +
                              std::to_string(at));
  };
  // Queues a copy of a record that its entry still points at.
  auto consider = [&](const RecordView& rv, uint64_t rec_at) -> Status {
    if (rv.header.type == RecordType::kSeal) {
      done = true;
      return Status::OK();
    }
    if (rv.header.type == RecordType::kDelete || rv.header.type == RecordType::kRetire) {
      if (compact_carry) WriteBatchInternal::AddCarry(batch, rv);
      return Status::OK();
    }
    if (rv.header.type != RecordType::kPut) return Status::OK();  // void, or catalog below
    EntrySnapshot e;
    if (!index.Lookup(rv.header.keyspace, rv.key, &e) || e.fields.segment != victim ||
        e.fields.offset != rec_at || e.fields.seq != rv.header.seq || e.fields.tombstone)
      return Status::OK();
    // A dropped or truncated keyspace's record is dead, though its entry waits for the sweep:
    // nothing to copy.
    if (!VisibleInKeyspace(keyspaces.Find(rv.header.keyspace), e.fields.seq)) {
      compact_orphan_bytes += e.fields.length;
      return Status::OK();
    }
    WriteBatchInternal::AddRelocation(batch, rv, victim, static_cast<uint32_t>(rec_at));
    // Batches well below a segment, so a relocation never strands much of a segment's tail.
    const size_t limit = std::min<size_t>(kRelocationBatchBytes, opts().segment_size / 8);
    return batch.ByteSize() >= limit ? flush() : Status::OK();
  };
  // The puts of a chunk are checked a group at a time: each check is an index lookup that
  // misses the CPU cache twice (hash bucket, entry), and issued one after another they made
  // compaction memory-bound; prefetched together, their misses overlap.
  struct Decoded {
    RecordView rv;
    uint64_t at;
  };
  constexpr size_t kLookahead = 32;
  std::vector<Decoded> ahead;
  ahead.reserve(kLookahead);
  std::array<uint64_t, kLookahead> hashes{};
  auto consider_ahead = [&]() -> Status {
    for (size_t i = 0; i < ahead.size(); ++i) {
      if (ahead[i].rv.header.type != RecordType::kPut) continue;
      hashes[i] = index.PointHashOf(ahead[i].rv.header.keyspace, ahead[i].rv.key);
      index.PrefetchBucket(hashes[i]);
    }
    for (size_t i = 0; i < ahead.size(); ++i) {
      if (ahead[i].rv.header.type == RecordType::kPut) (void)index.PrefetchEntry(hashes[i]);
    }
    Status st;
    for (const Decoded& d : ahead) {
      st = consider(d.rv, d.at);
      if (!st.ok() || done) break;
    }
    ahead.clear();
    return st;
  };
  while (!done && processed < budget) {
    const uint64_t at = compact_offset;
    if (at >= end) {
      done = true;
      break;
    }
    // Less the alignment an O_DIRECT read may add in front, so the buffer stays one chunk.
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>(kCompactionReadChunk - AlignedBuffer::kAlign, end - at));
    std::string_view chunk;
    if (Status rs = reader.Read(at, want, &chunk); !rs.ok()) return rs;
    if (chunk.empty()) return Status::FromErrno(EIO, "read segment for compaction", path);
    const size_t got = chunk.size();
    size_t pos = 0;
    while (pos < got && !done) {
      RecordView rv;
      const DecodeResult d = DecodeRecord(chunk.data() + pos, got - pos, victim, &rv);
      if (d == DecodeResult::kIncomplete && pos > 0) break;  // re-read from this record
      if (d == DecodeResult::kIncomplete) {
        // A record larger than a read chunk, at the chunk's start (so nothing decoded waits in
        // `ahead`): read exactly it.
        RecordHeader h;
        if (DecodeRecordHeader(chunk.data(), got, &h) != DecodeResult::kOk ||
            at + h.total_size() > end)
          return damaged(at);
        std::string_view whole;  // replaces the chunk in the buffer
        if (!reader.Read(at, h.total_size(), &whole).ok() || whole.size() != h.total_size() ||
            DecodeRecord(whole.data(), whole.size(), victim, &rv) != DecodeResult::kOk)
          return damaged(at);
        Status st = consider(rv, at);
        if (!st.ok()) return st;
        pos = whole.size();
        break;
      }
      if (d != DecodeResult::kOk) return damaged(at + pos);
      ahead.push_back({rv, at + pos});
      pos += rv.header.total_size();
      // Nothing after a seal is decoded: the file past it is not log.
      if (ahead.size() == kLookahead || rv.header.type == RecordType::kSeal) {
        Status st = consider_ahead();
        if (!st.ok()) return st;
      }
    }
    Status st = consider_ahead();  // before the next read reuses the buffer
    if (!st.ok()) return st;
    compact_offset = at + pos;
    processed += pos;
    g.compacting_done.store(compact_offset);
  }
  // The buffer stays at one chunk: what a record larger than that grew it to is given back.
  if (compact_read_buffer.capacity() > kCompactionReadChunk) compact_read_buffer.Release();
  Status s = flush();
  if (!s.ok()) return s;
  g.compaction_bytes_moved.fetch_add(moved);
  if (!done) return Status::OK();

  compact_victim = 0;
  g.compacting_segment.store(0);
  const int64_t left = slot->live_bytes.load();
  if (left > 0) {
    // Each step of the sweep lowers it a little: wait until the entries it was to remove are
    // all gone, or the segment is read (and its deletes carried) once per step.
    compact_deferred[victim] = std::max<int64_t>(0, left - compact_orphan_bytes) + 1;
    // Bytes not explained by entries awaiting the sweep are an accounting error: say so.
    if (left > compact_orphan_bytes)
      Log(LogLevel::kWarning,
          "eloqkv: segment %s still has %" PRId64
          " live bytes after compaction; it is tried again once it holds fewer",
          path.c_str(), left);
    return Status::OK();
  }
  // Retired only now that nothing live is left in it: recovery deletes every segment a
  // retirement record names, whatever entries the checkpoint or the replay point into it. Below
  // the horizon too, where the replay never needs the file: the record carries the clock the
  // sweep removed expired entries by, which a checkpoint still holding such an entry needs if
  // the clock reads earlier at the restart. (Its write also waits out the write that took the
  // last live bytes out, or the truncate that made them dead, if that was still between taking
  // its sequence number and publishing its log end.)
  WriteBatchInternal::AddRetire(batch, victim, std::max(NowMillis(), rh->expiry_clock_ms));
  s = flush();
  if (!s.ok()) return s;
  // The copies, and whatever made the rest dead, durable before the file goes.
  s = GroupCommit(rh->log.reserved_lsn.load());
  if (!s.ok()) return s;
  // Safe to delete now: every live record has a durable copy later in the log, and recovery
  // never needs the file (below the replay start it is not read; above, the retirement record
  // explains the gap and the copies and carried deletes replay in sequence order).
  g.compactions.fetch_add(1);
  g.compaction_bytes_reclaimed.fetch_add(slot->capacity.load());
  DeleteSegment(victim);
  return Status::OK();
}

}  // namespace eloqkv
