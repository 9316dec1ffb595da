// The write path: conditions, sequence numbers, log space and index publication are decided
// under the write mutex, in log order; checksums, log writes and group commit (log_writer.cc)
// happen outside it.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <unordered_map>

#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

std::string OverlayKey(uint32_t keyspace, std::string_view key) {
  std::string k(reinterpret_cast<const char*>(&keyspace), sizeof(keyspace));
  k.append(key);
  return k;
}

// Whether the entry counts towards its keyspace's keys/bytes.
bool Counted(const EntryFields& f, const KeyspaceSlot* ks) {
  return !f.tombstone && VisibleInKeyspace(ks, f.seq);
}

}  // namespace

Status Engine::Impl::Write(WriteBatch::Rep& rep, WriteResult* result, bool wait_durable) {
  if (rep.ops.empty()) return Status::OK();
  Status s = CheckReady();
  if (!s.ok()) return s;
  const uint64_t start_ns = NowNanos();
  const int64_t now = NowMillis();
  const size_t n = rep.ops.size();
  // Per op: whether it applies, its keyspace, and its index entry. Step 1 looks the entry up for
  // the first op of the batch on each key; nothing changes that entry before step 3 (later ops
  // on the key, and step 3's own changes, come after), so step 3 reuses it instead of searching
  // the index again. Step 3 leaves in `ref` the entry a put wrote.
  struct OpState {
    bool applied = true;
    bool looked_up = false;
    uint32_t ref = 0;
    EntryFields entry;
    KeyspaceSlot* slot = nullptr;
  };
  std::vector<OpState> st(n);
  Status index_failure;  // an insert that found no room after all (step 3)
  LogReservation r;
  uint64_t first_seq = 0;
  LogShared& log = rh->log;
  // Compaction copies are physical: they keep their records' numbers, take none and are not
  // replicated, so the numbers of logical batches stay contiguous (ReplicatedBatch).
  const bool physical = std::all_of(rep.ops.begin(), rep.ops.end(), [](const auto& op) {
    return op.relocation || op.type == RecordType::kRetire;
  });
  if (local.replication_log != nullptr && !physical && !rep.replicated &&
      rep.data.size() > kMaxLoggedBatchSize) {
    return Status::TooLarge("write batch of " + std::to_string(rep.data.size() >> 20) +
                            " MiB exceeds the " + std::to_string(kMaxLoggedBatchSize >> 20) +
                            " MiB a replicated batch may hold");
  }
  {
    ShmLockGuard guard(log.write_mu);
    if (write_failed()) return WritesDisabled();
    if (log.active_segment == 0) return Status::Unavailable("the engine is not open for writes");
    if (!rep.replicated && !physical && rh->replica.load(std::memory_order_acquire) != 0) {
      return Status::Unavailable(
          "the engine is applying a primary's writes and takes none of its own");
    }
    if (rep.replicated && rep.replicated_first_seq != log.next_seq &&
        !(rep.allow_gap && rep.replicated_first_seq > log.next_seq)) {
      return Status::InvalidArgument("replicated batch starts at sequence " +
                                     std::to_string(rep.replicated_first_seq) +
                                     "; the engine is at " + std::to_string(log.next_seq));
    }

    // 1. Keyspaces and write conditions, in batch order (earlier ops of the batch count).
    // Earlier ops of the batch on the same key. A physical batch needs none: it copies records
    // its index entries point at, one per key.
    const bool use_overlay = n > 1 && !physical;
    std::unordered_map<std::string, bool> overlay;
    std::vector<Index::NewKey> new_keys;
    for (size_t i = 0; i < n; ++i) {
      WriteBatch::Rep::Op& op = rep.ops[i];
      if (op.type == RecordType::kKeyspace) {
        if (rep.replicated) {  // the primary's id and state, applied as they are
          if (keyspaces.Find(op.keyspace_record.id) == nullptr &&
              (op.keyspace_record.flags & kKeyspaceDropped) == 0) {
            s = keyspaces.CheckNewName(rep.key(op));
            if (!s.ok()) return s;
          }
        } else if (op.cond == WriteCondition::kIfAbsent) {  // create: a fresh id for a new name
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
      if (ks == nullptr && (op.relocation || rep.replicated)) {
        st[i].applied = false;  // dropped meanwhile (or before a standby replayed the write)
        continue;
      }
      if (ks == nullptr) {
        if (result != nullptr) result->failed_op = i;
        return Status::NotFound("keyspace " + std::to_string(op.keyspace) + " does not exist");
      }
      st[i].slot = ks;
      const std::string_view key = rep.key(op);
      bool exists = false;
      uint64_t cur_seq = 0;
      bool ok = true;
      auto it = use_overlay ? overlay.find(OverlayKey(op.keyspace, key)) : overlay.end();
      if (it != overlay.end()) {
        exists = it->second;
        cur_seq = UINT64_MAX;  // written earlier in this batch: its seq is not known yet
        if (op.relocation) ok = false;
      } else {
        EntryFields& f = st[i].entry;
        const uint32_t ref = index.Find(op.keyspace, key, &f);
        st[i].looked_up = true;
        st[i].ref = ref;
        exists = ref != 0 && Counted(f, ks) && !(f.expire_at_ms != 0 && f.expire_at_ms <= now);
        cur_seq = exists ? f.seq : 0;
        if (ref == 0 && op.type == RecordType::kPut) new_keys.push_back({op.keyspace, key});
        if (op.relocation) {
          ok = ref != 0 && !f.tombstone && f.segment == op.old_segment &&
               f.offset == op.old_offset && f.seq == op.expected_seq;
        }
      }
      switch (op.cond) {
        case WriteCondition::kNone:
          break;
        case WriteCondition::kIfAbsent:
          ok = ok && !exists;
          break;
        case WriteCondition::kIfPresent:
          ok = ok && exists;
          break;
        case WriteCondition::kIfSeq:
          ok = ok && cur_seq == op.expected_seq;
          break;
        case WriteCondition::kIfUntouchedSince:
          // An entry that does not count as the key (a delete, an expired or truncated put)
          // still carries the number of the write that left it so.
          ok = ok && !exists && (st[i].ref == 0 || st[i].entry.seq < op.expected_seq) &&
               ForgottenSlot(op.keyspace, key).load(std::memory_order_acquire) < op.expected_seq;
          break;
      }
      if (!ok) {
        if (op.on_fail == OnConditionFailure::kSkip) {
          st[i].applied = false;
          continue;
        }
        if (result != nullptr) result->failed_op = i;
        if (op.cond == WriteCondition::kIfAbsent) return Status::KeyExists("key already exists");
        if (op.cond == WriteCondition::kIfPresent)
          return Status::ConditionFailed("key does not exist");
        return Status::ConditionFailed("key changed since it was read");
      }
      if (use_overlay && op.type != RecordType::kVoid)
        overlay[OverlayKey(op.keyspace, key)] = op.type == RecordType::kPut;
    }
    s = index.ReserveForKeys(new_keys);
    if (!s.ok()) return s;

    // 2. Space in the log.
    s = ReserveLog(rep, &r);
    if (!s.ok()) return s;

    // 3. Sequence numbers, then publication in the index (readers wait for durability).
    first_seq = rep.replicated ? rep.replicated_first_seq : log.next_seq;
    if (!physical)
      std::atomic_ref<uint64_t>(log.next_seq).store(first_seq + n, std::memory_order_release);
    const uint32_t durable_segment = r.durable_segment;
    const bool feed_on = feed.active();
    for (size_t i = 0; i < n; ++i) {
      WriteBatch::Rep::Op& op = rep.ops[i];
      char* rec = rep.data.data() + op.offset;
      const uint64_t seq = op.relocation ? op.expected_seq
                           : physical     ? first_seq - 1  // a retirement: no number of its own
                                          : first_seq + i;
      const auto rec_offset = static_cast<uint32_t>(r.data_offset + op.offset);
      PatchRecordSeq(rec, seq);
      PatchRecordSegment(rec, r.batch.segment);
      PatchRecordDurableSegment(rec, durable_segment);
      uint8_t flags = op.relocation ? kRecordRelocated : 0;
      if (i + 1 == n) flags |= kRecordBatchEnd;
      PatchRecordFlags(rec, flags);
      if (!st[i].applied || op.type == RecordType::kVoid) {  // skipped, or a Check
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
        if (feed_on && kr.min_seq == seq) feed.Append(kr.id, 0, rep.origin, true);
        segments.SetFlags(r.batch.segment, kSegmentHasCatalog);
        if (KeyspaceSlot* ks = keyspaces.Find(kr.id); ks != nullptr && kr.min_seq == seq)
          ks->counters.ClearKeys();
        continue;
      }
      if (op.type == RecordType::kRetire || (op.relocation && op.type == RecordType::kDelete)) {
        segments.AddPinned(r.batch.segment, static_cast<int64_t>(op.size));
        continue;
      }
      KeyspaceSlot* ks = st[i].slot;
      EntryFields old = st[i].entry;
      const uint32_t ref = st[i].looked_up ? st[i].ref : index.Find(op.keyspace, key, &old);
      if (op.relocation) {
        index.Relocate(ref, r.batch.segment, rec_offset);
        segments.AddLive(old.segment, -static_cast<int64_t>(old.length));
        segments.AddLive(r.batch.segment, static_cast<int64_t>(op.size));
        continue;
      }
      if (ref != 0 && !old.tombstone) {
        segments.AddLive(old.segment, -static_cast<int64_t>(old.length));
        if (Counted(old, ks)) ks->counters.CountKey(-1, old.length, old.expire_at_ms);
      }
      EntryFields f;
      f.segment = r.batch.segment;
      f.offset = rec_offset;
      f.length = static_cast<uint32_t>(op.size);
      f.seq = seq;
      if (op.type == RecordType::kPut) {
        f.expire_at_ms = op.expire_at_ms;
        if (ref != 0) {
          index.Update(ref, f);
          st[i].ref = ref;
        } else {
          st[i].ref = index.Insert(op.keyspace, key, f);
          // The room was reserved above; running out anyway is a bug that must not pass quietly
          // (see below).
          if (st[i].ref == 0 && index_failure.ok())
            index_failure = Status::IndexFull(
                "index memory ran out while applying a write it had reserved room for; raise the "
                "index memory setting and restart");
        }
        segments.AddLive(r.batch.segment, static_cast<int64_t>(op.size));
        ks->counters.CountKey(1, static_cast<uint32_t>(op.size), op.expire_at_ms);
        ks->counters.writes.fetch_add(1, std::memory_order_relaxed);
      } else {
        if (ref != 0) {
          f.tombstone = true;  // hides the key until the sweep removes it once durable
          index.Update(ref, f);
        }
        segments.AddPinned(r.batch.segment, static_cast<int64_t>(op.size));
        ks->counters.deletes.fetch_add(1, std::memory_order_relaxed);
      }
      // After the index shows the change (change_feed.h).
      if (feed_on)
        feed.Append(op.keyspace, Engine::KeyFingerprint(op.keyspace, key), rep.origin_of(op),
                    false);
    }
    log.reserved_lsn.store(r.end_lsn, std::memory_order_release);
    if (!physical && index_failure.ok())
      log.published_seq.store(first_seq + n, std::memory_order_release);
    // An insert found no room: the index already shows the batch's other keys, so the batch is
    // handled as one whose log write failed: it reaches neither the host's log nor the files,
    // readers of its keys fail (they are past what is durable), and every write is refused
    // until a restart rebuilds the index from the log.
    if (!index_failure.ok()) {
      FailWrites(index_failure);
      return index_failure;
    }
    // In sequence order, before any byte of the batch reaches a file: host_flush runs before
    // the batch is written directly (AppendLog) or its staged copy is (FlushAndUnlock).
    if (local.replication_log != nullptr && !physical && !rep.replicated) {
      const uint64_t host_end = local.replication_log(
          local.replication_context,
          ReplicatedBatch{rep.data, first_seq, static_cast<uint32_t>(n)});
      r.host_end = host_end;
      if (host_end != 0) log.host_position.store(host_end, std::memory_order_release);
    }
    const uint64_t host_end = rep.replicated ? rep.replicated_host_end : r.host_end;
    if (host_end != 0 && !physical)
      log.ring[r.batch.ticket % LogShared::kRing].host_end.store(host_end,
                                                                 std::memory_order_relaxed);
  }

  // 4. Checksums, then the bytes to the log buffer or the file, outside the mutex.
  s = AppendLog(r, rep);
  if (!s.ok()) return s;
  log.appended_bytes.fetch_add(rep.data.size() + r.pad, std::memory_order_relaxed);
  rh->stats.batches.fetch_add(1, std::memory_order_relaxed);
  rh->stats.bytes_appended.fetch_add(rep.data.size(), std::memory_order_relaxed);

  // 5. Durability, by policy.
  if (!wait_durable) {
    // The caller syncs (SyncTo) before acknowledging.
  } else if (sync() == SyncPolicy::kAlways) {
    s = GroupCommit(r.end_lsn, r.batch.ticket);
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
    if (!st[i].applied || op.relocation || op.type != RecordType::kPut || st[i].ref == 0) continue;
    if (op.value_len <= cacheable) cache.Insert(st[i].ref, first_seq + i, 0, rep.value(op));
    if (timed == nullptr) timed = st[i].slot;
  }
  if (timed == nullptr && !rep.ops.empty()) timed = st[0].slot;
  if (timed != nullptr) timed->counters.write_latency.Record(NowNanos() - start_ns);
  if (result != nullptr) {
    result->first_seq = first_seq;
    result->end_lsn = r.end_lsn;
    result->applied.resize(n);
    for (size_t i = 0; i < n; ++i) result->applied[i] = st[i].applied;
  }
  return Status::OK();
}

}  // namespace eloqkv
