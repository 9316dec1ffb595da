// The write path: conditions, sequence numbers and space are decided under the write mutex;
// checksums, file writes and syncs happen outside it, and one fdatasync serves every writer
// whose bytes were in the file when it started (group commit).
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

constexpr size_t kSealSize = kRecordHeaderSize;
constexpr uint64_t kBlock = 4096;

struct Reservation {
  bool sealed_previous = false;
  uint32_t seal_segment = 0;
  uint64_t seal_offset = 0;
  uint64_t seal_ticket = 0;
  uint32_t segment = 0;
  uint64_t pad_offset = 0;
  size_t pad = 0;
  uint64_t offset = 0;
  uint64_t ticket = 0;
  uint64_t end_lsn = 0;
  uint32_t durable_segment = 0;
};

// Padding that keeps a small first record from straddling a 4 KiB block, so a cold read of it
// is one block. Only when the gap can hold a void record.
size_t PadFor(uint64_t offset, size_t first_record) {
  if (first_record > kBlock) return 0;
  const uint64_t gap = kBlock - offset % kBlock;
  if (gap == kBlock || first_record <= gap || gap < kRecordHeaderSize) return 0;
  return static_cast<size_t>(gap);
}

std::string OverlayKey(uint32_t keyspace, std::string_view key) {
  std::string k(reinterpret_cast<const char*>(&keyspace), sizeof(keyspace));
  k.append(key);
  return k;
}

}  // namespace

class WriteTickets {
 public:
  // Write mutex held. Waits (rarely) for the ring slot of the ticket LogShared::kRing back.
  static bool Take(RegionHeader* rh, uint64_t end_lsn, uint64_t* ticket) {
    LogShared& log = rh->log;
    const uint64_t t = log.next_ticket;
    for (int spins = 0; t - log.written_ticket.load(std::memory_order_acquire) >= LogShared::kRing;
         ++spins) {
      if (rh->write_failed.load(std::memory_order_acquire) != 0) return false;
      if (spins > 100) sched_yield();
    }
    ++log.next_ticket;
    log.ring[t % LogShared::kRing].end_lsn.store(end_lsn, std::memory_order_relaxed);
    *ticket = t;
    return true;
  }

  static void Complete(RegionHeader* rh, uint64_t ticket) {
    LogShared& log = rh->log;
    log.ring[ticket % LogShared::kRing].done.store(ticket + 1, std::memory_order_release);
    uint64_t lsn = 0;
    {
      ShmLockGuard g(log.advance_mu);
      uint64_t t = log.written_ticket.load(std::memory_order_relaxed);
      while (log.ring[t % LogShared::kRing].done.load(std::memory_order_acquire) == t + 1) {
        lsn = log.ring[t % LogShared::kRing].end_lsn.load(std::memory_order_relaxed);
        ++t;
      }
      log.written_ticket.store(t, std::memory_order_release);
    }
    if (lsn != 0) log.written.Advance(lsn);
  }
};

Status Engine::Impl::StartSegment(uint32_t id, uint64_t capacity) {
  if (segments.Get(id) != nullptr || !segments.Add(id, SegmentState::kActive, kSegmentHeaderSize,
                                                    capacity)) {
    return Status::NoSpace("too many live segments (" + std::to_string(SegmentTable::kSlots) +
                           "); compaction is behind");
  }
  Status s = files->Create(id, capacity);
  if (!s.ok()) {
    segments.Remove(id);
    return s;
  }
  LogShared& log = rh->log;
  log.active_segment = id;
  log.active_offset = kSegmentHeaderSize;
  log.active_capacity = capacity;
  return Status::OK();
}

namespace {

bool AddsData(const WriteBatch::Rep& rep) {
  for (const auto& op : rep.ops)
    if (op.type == RecordType::kPut && !op.relocation) return true;
  return false;
}

// Write mutex held. Finds room for the batch, rolling to a new segment when the active one is
// full. Fails without changing anything when no new segment can be created.
Status Reserve(Engine::Impl* e, const WriteBatch::Rep& rep, Reservation* r) {
  LogShared& log = e->rh->log;
  const size_t size = rep.data.size();
  const size_t first = rep.ops.front().size;
  size_t pad = PadFor(log.active_offset, first);
  if (log.active_offset + pad + size + kSealSize > log.active_capacity) {
    const uint32_t old = log.active_segment;
    const uint64_t old_offset = log.active_offset;
    const uint64_t need = (kSegmentHeaderSize + size + kBlock + kSealSize + kBlock - 1) / kBlock * kBlock;
    const uint64_t capacity = std::max<uint64_t>(e->opts().segment_size, need);
    // Writes that add data stop two segments short of the limit, so deletes and compaction
    // (which need log space to free space) still work when the disk is "full".
    const uint64_t limit = e->opts().max_disk_bytes;
    const uint64_t headroom = AddsData(rep) ? 2 * e->opts().segment_size : 0;
    if (limit != 0 && e->segments.disk_bytes() + capacity + headroom > limit) {
      return Status::NoSpace("the engine's disk limit (" + std::to_string(limit >> 20) +
                             " MiB) is reached; delete data or raise the limit");
    }
    Status s = e->StartSegment(old + 1, capacity);
    if (!s.ok()) return s;
    if (SegmentSlot* slot = e->segments.Get(old)) {
      slot->size.store(old_offset + kSealSize, std::memory_order_release);
      slot->state.store(static_cast<uint32_t>(SegmentState::kSealed), std::memory_order_release);
    }
    r->sealed_previous = true;
    r->seal_segment = old;
    r->seal_offset = old_offset;
    if (!WriteTickets::Take(e->rh, MakeLsn(old, old_offset + kSealSize), &r->seal_ticket))
      return Status::IOError("writes are disabled after a device error: " + e->Failure());
    pad = PadFor(log.active_offset, first);
  }
  r->segment = log.active_segment;
  r->pad_offset = log.active_offset;
  r->pad = pad;
  r->offset = log.active_offset + pad;
  log.active_offset = r->offset + size;
  if (SegmentSlot* slot = e->segments.Get(r->segment))
    slot->size.store(log.active_offset, std::memory_order_release);
  r->end_lsn = MakeLsn(r->segment, log.active_offset);
  if (!WriteTickets::Take(e->rh, r->end_lsn, &r->ticket))
    return Status::IOError("writes are disabled after a device error: " + e->Failure());
  return Status::OK();
}

// Whether the entry counts towards its keyspace's keys/bytes.
bool Counted(const EntryFields& f, const KeyspaceSlot* ks) {
  return !f.tombstone && f.seq >= ks->min_seq.load(std::memory_order_relaxed);
}

}  // namespace

Status Engine::Impl::Write(WriteBatch::Rep& rep, WriteResult* result) {
  if (rep.ops.empty()) return Status::OK();
  Status s = CheckReady();
  if (!s.ok()) return s;
  const uint64_t start_ns = NowNanos();
  const int64_t now = NowMillis();
  const size_t n = rep.ops.size();
  std::vector<uint8_t> applied(n, 1);
  std::vector<uint32_t> refs(n, 0);
  std::vector<KeyspaceSlot*> slots(n, nullptr);
  Reservation r;
  uint64_t first_seq = 0;
  LogShared& log = rh->log;
  {
    ShmLockGuard guard(log.write_mu);
    if (write_failed())
      return Status::IOError("writes are disabled after a device error: " + Failure());
    if (log.active_segment == 0) return Status::Unavailable("the engine is not open for writes");

    // 1. Keyspaces and write conditions, in batch order (earlier ops of the batch count).
    std::unordered_map<std::string, bool> overlay;
    std::vector<Index::NewKey> new_keys;
    for (size_t i = 0; i < n; ++i) {
      WriteBatch::Rep::Op& op = rep.ops[i];
      if (op.type == RecordType::kKeyspace) {
        if (op.cond == WriteCondition::kIfAbsent) {  // create: a fresh id for a new name
          s = keyspaces.CheckNewName(rep.key(op));
          if (!s.ok()) return s;
          op.keyspace_record.id = keyspaces.AllocateId();
          op.keyspace = op.keyspace_record.id;
          PatchRecordKeyspace(rep.data.data() + op.offset, op.keyspace);
        } else if (keyspaces.Find(op.keyspace_record.id) == nullptr) {
          return Status::NotFound("keyspace " + std::to_string(op.keyspace_record.id) +
                                  " does not exist");
        }
        continue;
      }
      if (op.type == RecordType::kRetire || (op.relocation && op.type != RecordType::kPut))
        continue;  // compaction bookkeeping: no key, no condition
      KeyspaceSlot* ks = keyspaces.Find(op.keyspace);
      if (ks == nullptr && op.relocation) {
        applied[i] = 0;  // dropped meanwhile: the copy is not needed
        continue;
      }
      if (ks == nullptr) {
        if (result != nullptr) result->failed_op = i;
        return Status::NotFound("keyspace " + std::to_string(op.keyspace) + " does not exist");
      }
      slots[i] = ks;
      const std::string_view key = rep.key(op);
      bool exists = false;
      uint64_t cur_seq = 0;
      bool ok = true;
      auto it = n > 1 ? overlay.find(OverlayKey(op.keyspace, key)) : overlay.end();
      if (it != overlay.end()) {
        exists = it->second;
        cur_seq = UINT64_MAX;  // written earlier in this batch: its seq is not known yet
        if (op.relocation) ok = false;
      } else {
        EntryFields f;
        const uint32_t ref = index.Find(op.keyspace, key, &f);
        exists = ref != 0 && Counted(f, ks) && !(f.expire_at_ms != 0 && f.expire_at_ms <= now);
        cur_seq = exists ? f.seq : 0;
        if (ref == 0 && op.type == RecordType::kPut) new_keys.push_back({op.keyspace, key});
        if (op.relocation) {
          ok = ref != 0 && !f.tombstone && f.segment == op.old_segment &&
               f.offset == op.old_offset && f.seq == op.expected_seq;
        }
      }
      switch (op.cond) {
        case WriteCondition::kNone: break;
        case WriteCondition::kIfAbsent: ok = ok && !exists; break;
        case WriteCondition::kIfPresent: ok = ok && exists; break;
        case WriteCondition::kIfSeq: ok = ok && cur_seq == op.expected_seq; break;
      }
      if (!ok) {
        if (op.on_fail == OnConditionFailure::kSkip) {
          applied[i] = 0;
          continue;
        }
        if (result != nullptr) result->failed_op = i;
        if (op.cond == WriteCondition::kIfAbsent) return Status::KeyExists("key already exists");
        if (op.cond == WriteCondition::kIfPresent) return Status::ConditionFailed("key does not exist");
        return Status::ConditionFailed("key changed since it was read");
      }
      if (n > 1) overlay[OverlayKey(op.keyspace, key)] = op.type == RecordType::kPut;
    }
    s = index.ReserveForKeys(new_keys);
    if (!s.ok()) return s;

    // 2. Space in the log.
    s = Reserve(this, rep, &r);
    if (!s.ok()) return s;

    // 3. Sequence numbers, then publication in the index (readers wait for durability).
    first_seq = log.next_seq;
    log.next_seq += n;
    const uint32_t durable_segment = LsnSegment(log.durable.Load());
    r.durable_segment = durable_segment;
    for (size_t i = 0; i < n; ++i) {
      WriteBatch::Rep::Op& op = rep.ops[i];
      char* rec = rep.data.data() + op.offset;
      const uint64_t seq = op.relocation ? op.expected_seq : first_seq + i;
      const auto rec_offset = static_cast<uint32_t>(r.offset + op.offset);
      PatchRecordSeq(rec, seq);
      PatchRecordSegment(rec, r.segment);
      PatchRecordDurableSegment(rec, durable_segment);
      uint8_t flags = op.relocation ? kRecordRelocated : 0;
      if (i + 1 == n) flags |= kRecordBatchEnd;
      PatchRecordFlags(rec, flags);
      if (!applied[i]) {
        PatchRecordType(rec, RecordType::kVoid);
        continue;
      }
      const std::string_view key = rep.key(op);
      if (op.type == RecordType::kKeyspace) {
        KeyspaceRecord kr = op.keyspace_record;
        if (kr.min_seq == UINT64_MAX) kr.min_seq = seq;  // truncate: hide everything before
        const std::string v = EncodeKeyspaceRecord(kr);
        std::memcpy(rec + kRecordHeaderSize + op.key_len, v.data(), v.size());
        keyspaces.Apply(key, kr);  // CheckNewName made room for it
        segments.SetFlags(r.segment, kSegmentHasCatalog);
        if (KeyspaceSlot* ks = keyspaces.Find(kr.id); ks != nullptr && kr.min_seq == seq) {
          ks->counters.keys.store(0);
          ks->counters.bytes.store(0);
        }
        continue;
      }
      if (op.type == RecordType::kRetire || (op.relocation && op.type == RecordType::kDelete)) {
        segments.AddPinned(r.segment, static_cast<int64_t>(op.size));
        continue;
      }
      KeyspaceSlot* ks = slots[i];
      EntryFields old;
      const uint32_t ref = index.Find(op.keyspace, key, &old);
      if (op.relocation) {
        index.Relocate(ref, r.segment, rec_offset);
        segments.AddLive(old.segment, -static_cast<int64_t>(old.length));
        segments.AddLive(r.segment, static_cast<int64_t>(op.size));
        continue;
      }
      if (ref != 0 && !old.tombstone) {
        segments.AddLive(old.segment, -static_cast<int64_t>(old.length));
        if (Counted(old, ks)) {
          ks->counters.keys.fetch_sub(1, std::memory_order_relaxed);
          ks->counters.bytes.fetch_sub(old.length, std::memory_order_relaxed);
        }
      }
      EntryFields f;
      f.segment = r.segment;
      f.offset = rec_offset;
      f.length = static_cast<uint32_t>(op.size);
      f.seq = seq;
      if (op.type == RecordType::kPut) {
        f.expire_at_ms = op.expire_at_ms;
        if (ref != 0) {
          index.Update(ref, f);
          refs[i] = ref;
        } else {
          refs[i] = index.Insert(op.keyspace, key, f);
        }
        segments.AddLive(r.segment, static_cast<int64_t>(op.size));
        ks->counters.keys.fetch_add(1, std::memory_order_relaxed);
        ks->counters.bytes.fetch_add(op.size, std::memory_order_relaxed);
        ks->counters.writes.fetch_add(1, std::memory_order_relaxed);
      } else {
        if (ref != 0) {
          f.tombstone = true;  // hides the key until the sweep removes it once durable
          index.Update(ref, f);
        }
        segments.AddPinned(r.segment, static_cast<int64_t>(op.size));
        ks->counters.deletes.fetch_add(1, std::memory_order_relaxed);
      }
    }
    log.reserved_lsn.store(r.end_lsn, std::memory_order_release);
  }

  // 4. Checksums and file writes, outside the mutex.
  Io* dev = io();
  auto write_at = [&](uint32_t segment, const char* data, size_t len, uint64_t offset) {
    int fd;
    Status ws = files->WriteFd(segment, &fd);
    if (ws.ok()) ws = dev->WriteAt(fd, data, len, offset);
    return ws;
  };
  if (r.sealed_previous) {
    char seal[kSealSize];
    RecordHeader h;
    h.type = RecordType::kSeal;
    h.segment = r.seal_segment;
    h.durable_segment = std::min(r.durable_segment, r.seal_segment);
    EncodeRecord(h, {}, {}, seal);
    s = write_at(r.seal_segment, seal, kSealSize, r.seal_offset);
    // Give the unused preallocated tail back. Only bytes past the seal go, and nothing is ever
    // written there; a crash before the size change is durable leaves zeros recovery ignores.
    int fd;
    if (s.ok() && files->WriteFd(r.seal_segment, &fd).ok() &&
        ::ftruncate(fd, static_cast<off_t>(r.seal_offset + kSealSize)) == 0) {
      segments.SetCapacity(r.seal_segment, r.seal_offset + kSealSize);
    }
  }
  if (s.ok() && r.pad != 0) {
    std::string pad(r.pad, '\0');
    RecordHeader h;
    h.type = RecordType::kVoid;
    h.segment = r.segment;
    h.durable_segment = r.durable_segment;
    h.value_len = static_cast<uint32_t>(r.pad - kRecordHeaderSize);
    EncodeRecord(h, {}, std::string_view(pad).substr(kRecordHeaderSize), pad.data());
    s = write_at(r.segment, pad.data(), pad.size(), r.pad_offset);
  }
  if (s.ok()) {
    for (const auto& op : rep.ops) ResealRecord(rep.data.data() + op.offset, op.size);
    s = write_at(r.segment, rep.data.data(), rep.data.size(), r.offset);
  }
  if (!s.ok()) {
    FailWrites(s);
    return s;
  }
  if (r.sealed_previous) WriteTickets::Complete(rh, r.seal_ticket);
  WriteTickets::Complete(rh, r.ticket);
  log.appended_bytes.fetch_add(rep.data.size() + r.pad, std::memory_order_relaxed);
  rh->stats.batches.fetch_add(1, std::memory_order_relaxed);
  rh->stats.bytes_appended.fetch_add(rep.data.size(), std::memory_order_relaxed);

  // 5. Durability, by policy.
  if (sync() == SyncPolicy::kAlways) {
    s = GroupCommit(r.end_lsn);
    if (!s.ok()) return s;
  } else if (sync() == SyncPolicy::kInterval &&
             now - log.last_sync_ms.load(std::memory_order_relaxed) >= opts().sync_interval_ms) {
    s = GroupCommit(log.written.Load());
    if (!s.ok()) return s;
  }

  // 6. Write-through of small values into the cache, and stats.
  const size_t cacheable = cache.max_value_size();
  KeyspaceSlot* timed = nullptr;
  for (size_t i = 0; i < n; ++i) {
    const WriteBatch::Rep::Op& op = rep.ops[i];
    if (!applied[i] || op.relocation || op.type != RecordType::kPut || refs[i] == 0) continue;
    if (op.value_len <= cacheable) cache.Insert(refs[i], first_seq + i, 0, rep.value(op));
    if (timed == nullptr) timed = slots[i];
  }
  if (timed == nullptr && !rep.ops.empty()) timed = slots[0];
  if (timed != nullptr) timed->counters.write_latency.Record(NowNanos() - start_ns);
  if (result != nullptr) {
    result->first_seq = first_seq;
    result->end_lsn = r.end_lsn;
    result->applied.assign(applied.begin(), applied.end());
  }
  return Status::OK();
}

Status Engine::Impl::GroupCommit(uint64_t target) {
  LogShared& log = rh->log;
  if (log.durable.Load() >= target) return Status::OK();
  if (!log.written.WaitFor(target, &rh->write_failed))
    return Status::IOError("writes are disabled after a device error: " + Failure());
  ShmLockGuard guard(log.flush_mu);
  if (log.durable.Load() >= target) return Status::OK();
  if (write_failed()) return Status::IOError("writes are disabled after a device error: " + Failure());
  const uint64_t upto = log.written.Load();
  const uint64_t from = log.durable.Load();
  for (uint32_t seg = LsnSegment(from); seg <= LsnSegment(upto); ++seg) {
    if (segments.Get(seg) == nullptr) continue;
    int fd;
    Status s = files->WriteFd(seg, &fd);
    const uint64_t t0 = NowNanos();
    if (s.ok()) s = io()->SyncData(fd);
    if (!s.ok()) {
      FailWrites(s);
      return s;
    }
    rh->stats.fsyncs.fetch_add(1, std::memory_order_relaxed);
    rh->stats.fsync_latency.Record(NowNanos() - t0);
  }
  log.durable.Advance(upto);
  log.last_sync_ms.store(NowMillis(), std::memory_order_relaxed);
  return Status::OK();
}

Status Engine::Impl::SyncUpTo(uint64_t target) { return GroupCommit(target); }

}  // namespace eloqkv
