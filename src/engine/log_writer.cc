// The log writer: space reservation in segment files, the shared log buffer, and group commit.
//
// Every append takes a ticket (its slot in LogShared::ring) under the write mutex, in log order.
// Its bytes then reach the log one of two ways:
//  * staged: copied into the shared log buffer (sync = always, pieces up to a quarter of it);
//    the flusher writes every staged piece of a group with one write per contiguous run, through
//    io_uring, then one fdatasync. Only the flusher writes the file while it syncs, so the sync
//    does not chase other writers' fresh pages, and a group costs two system calls;
//  * direct: the writer writes its own bytes (large pieces, and every piece under the interval
//    and off policies, whose writes must reach the file without waiting for a sync).
// "Written" means staged or in the file; under sync = always readers wait for "durable" anyway.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

constexpr size_t kSealSize = kRecordHeaderSize;
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kDirect = UINT64_MAX;

// Padding that keeps a small first record from straddling a 4 KiB block, so a cold read of it
// is one block. Only when the gap can hold a void record.
size_t PadFor(uint64_t offset, size_t first_record) {
  if (first_record > kBlock) return 0;
  const uint64_t gap = kBlock - offset % kBlock;
  if (gap == kBlock || first_record <= gap || gap < kRecordHeaderSize) return 0;
  return static_cast<size_t>(gap);
}

bool AddsData(const WriteBatch::Rep& rep) {
  for (const auto& op : rep.ops)
    if (op.type == RecordType::kPut && !op.relocation) return true;
  return false;
}

}  // namespace

char* Engine::Impl::stage_ring() const { return base() + rh->stage_off; }

// Write mutex held. Takes the next ticket for `piece`, staging it when it qualifies; waits
// (rarely) for ring slots or buffer space, flushing itself if nobody else is.
Status Engine::Impl::TakeTicket(LogPiece* piece, bool seal) {
  LogShared& log = rh->log;
  const uint64_t t = log.next_ticket;
  const bool stage = sync() == SyncPolicy::kAlways && piece->length <= log.stage_capacity / 4;
  for (int spins = 0;; ++spins) {
    if (write_failed()) return WritesDisabled();
    // A slot is free again once its ticket no longer needs it: under sync = always the flusher
    // reads a slot to write its staged piece and wakes its waiter, so only once the ticket is
    // durable; otherwise once it is written. (Reusing a written but unflushed slot made the
    // flusher skip that piece: a hole in the log, found when RESP writers stopped waiting for
    // each round's sync and more than kRing tickets were in flight.)
    const uint64_t released = sync() == SyncPolicy::kAlways
                                  ? log.durable_ticket.load(std::memory_order_acquire)
                                  : log.written_ticket.load(std::memory_order_acquire);
    const bool slot_free = t - released < LogShared::kRing;
    const bool room = !stage || log.stage_head + piece->length - log.stage_tail.load() <= log.stage_capacity;
    if (slot_free && room) break;
    // The flusher frees slots and buffer space; it needs no write mutex.
    if ((!room || !slot_free) && sync() == SyncPolicy::kAlways && log.flush_mu.TryLock()) {
      Status s = FlushAndUnlock();
      if (!s.ok()) return s;
      continue;
    }
    if (spins > 100) sched_yield();
  }
  ++log.next_ticket;
  CommitSlot& c = log.ring[t % LogShared::kRing];
  c.end_lsn.store(MakeLsn(piece->segment, piece->offset + piece->length), std::memory_order_relaxed);
  c.length.store(static_cast<uint32_t>(piece->length), std::memory_order_relaxed);
  c.seal.store(seal ? 1 : 0, std::memory_order_relaxed);
  c.stage_pos.store(stage ? log.stage_head : kDirect, std::memory_order_relaxed);
  c.host_end.store(0, std::memory_order_relaxed);
  piece->ticket = t;
  piece->stage_pos = stage ? log.stage_head : kDirect;
  if (stage) log.stage_head += piece->length;
  return Status::OK();
}

void Engine::Impl::CompleteTicket(uint64_t ticket) {
  LogShared& log = rh->log;
  log.ring[ticket % LogShared::kRing].done.store(ticket + 1, std::memory_order_release);
  uint64_t lsn = 0;
  uint64_t host = 0;
  {
    ShmLockGuard g(log.advance_mu);
    uint64_t t = log.written_ticket.load(std::memory_order_relaxed);
    while (log.ring[t % LogShared::kRing].done.load(std::memory_order_acquire) == t + 1) {
      lsn = log.ring[t % LogShared::kRing].end_lsn.load(std::memory_order_relaxed);
      host =
          std::max(host, log.ring[t % LogShared::kRing].host_end.load(std::memory_order_relaxed));
      ++t;
    }
    log.written_ticket.store(t, std::memory_order_release);
    // Without the log buffer (sync other than always) a completed ticket is in its file.
    if (sync() != SyncPolicy::kAlways && host > log.file_host.load(std::memory_order_relaxed))
      log.file_host.store(host, std::memory_order_release);
  }
  if (lsn != 0) log.written.Advance(lsn);
}

Status Engine::Impl::StartSegment(uint32_t id, uint64_t capacity) {
  if (segments.Get(id) != nullptr ||
      !segments.Add(id, SegmentState::kActive, kSegmentHeaderSize, capacity)) {
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

Status Engine::Impl::ReserveLog(const WriteBatch::Rep& rep, LogReservation* r) {
  LogShared& log = rh->log;
  const size_t size = rep.data.size();
  const size_t first = rep.ops.front().size;
  size_t pad = PadFor(log.active_offset, first);
  // Writes that add data stop two segments short of the limit, so deletes and compaction
  // (which need log space to free space) still work when the disk is "full". Checked on every
  // such write, not only when the log rolls: segments that came without the check (the one
  // recovery starts, compaction's) must not let data in past the limit. It never refuses what
  // the check at the roll let in (that segment is already counted in disk_bytes).
  const uint64_t limit = opts().max_disk_bytes;
  const uint64_t headroom = limit != 0 && AddsData(rep) ? 2 * opts().segment_size : 0;
  auto over_limit = [&] {
    return Status::NoSpace("the engine's disk limit (" + std::to_string(limit >> 20) +
                           " MiB) is reached; delete data or raise the limit");
  };
  if (headroom != 0 && segments.disk_bytes() + headroom > limit) return over_limit();
  if (log.active_offset + pad + size + kSealSize > log.active_capacity) {
    const uint32_t old = log.active_segment;
    const uint64_t old_offset = log.active_offset;
    const uint64_t need =
        (kSegmentHeaderSize + size + kBlock + kSealSize + kBlock - 1) / kBlock * kBlock;
    const uint64_t capacity = std::max<uint64_t>(opts().segment_size, need);
    if (limit != 0 && segments.disk_bytes() + capacity + headroom > limit) return over_limit();
    Status s = StartSegment(old + 1, capacity);
    if (!s.ok()) return s;
    if (SegmentSlot* slot = segments.Get(old)) {
      slot->size.store(old_offset + kSealSize, std::memory_order_release);
      slot->state.store(static_cast<uint32_t>(SegmentState::kSealed), std::memory_order_release);
    }
    r->sealed_previous = true;
    r->seal = LogPiece{old, old_offset, kSealSize, 0, kDirect};
    s = TakeTicket(&r->seal, /*seal=*/true);
    if (!s.ok()) return s;
    pad = PadFor(log.active_offset, first);
  }
  r->pad = pad;
  r->batch = LogPiece{log.active_segment, log.active_offset, pad + size, 0, kDirect};
  r->data_offset = log.active_offset + pad;
  log.active_offset += pad + size;
  if (SegmentSlot* slot = segments.Get(r->batch.segment))
    slot->size.store(log.active_offset, std::memory_order_release);
  r->end_lsn = MakeLsn(r->batch.segment, log.active_offset);
  r->durable_segment = LsnSegment(log.durable.Load());
  return TakeTicket(&r->batch, /*seal=*/false);
}

namespace {

// Copies bytes into the ring at a monotonic position, wrapping at the end.
void StageCopy(char* ring, uint64_t capacity, uint64_t pos, const char* data, size_t n) {
  const uint64_t at = pos % capacity;
  const size_t first = static_cast<size_t>(std::min<uint64_t>(n, capacity - at));
  std::memcpy(ring + at, data, first);
  if (first < n) std::memcpy(ring, data + first, n - first);
}

}  // namespace

Status Engine::Impl::AppendLog(const LogReservation& r, WriteBatch::Rep& rep) {
  const uint64_t cap = rh->log.stage_capacity;
  auto put = [&](const LogPiece& p, uint64_t at, const char* data, size_t n) -> Status {
    if (p.stage_pos != kDirect) {
      StageCopy(stage_ring(), cap, p.stage_pos + (at - p.offset), data, n);
      return Status::OK();
    }
    // Nothing reaches the files after a failure: a batch whose writer was told it failed (an
    // aborted transaction's, say) must not turn up in them later.
    if (write_failed()) return WritesDisabled();
    int fd;
    Status s = files->WriteFd(p.segment, &fd);
    if (s.ok()) s = io()->WriteAt(fd, data, n, at);
    return s;
  };
  Status s;
  if (r.sealed_previous) {
    char seal[kSealSize];
    RecordHeader h;
    h.type = RecordType::kSeal;
    h.segment = r.seal.segment;
    h.durable_segment = std::min(r.durable_segment, r.seal.segment);
    EncodeRecord(h, {}, {}, seal);
    s = put(r.seal, r.seal.offset, seal, kSealSize);
    if (s.ok() && r.seal.stage_pos == kDirect) TrimSealed(r.seal.segment, r.seal.offset + kSealSize);
  }
  if (s.ok() && r.pad != 0) {
    std::string pad(r.pad, '\0');
    RecordHeader h;
    h.type = RecordType::kVoid;
    h.segment = r.batch.segment;
    h.durable_segment = r.durable_segment;
    h.value_len = static_cast<uint32_t>(r.pad - kRecordHeaderSize);
    EncodeRecord(h, {}, std::string_view(pad).substr(kRecordHeaderSize), pad.data());
    s = put(r.batch, r.batch.offset, pad.data(), pad.size());
  }
  if (s.ok()) {
    for (const auto& op : rep.ops) ResealRecord(rep.data.data() + op.offset, op.size);
    // The host's log first: a file write survives a crash of this process, and the engine
    // must never hold a batch the host's log could lose.
    if (r.batch.stage_pos == kDirect && r.host_end != 0 && local.host_flush != nullptr)
      local.host_flush(local.replication_context, r.host_end);
    s = put(r.batch, r.data_offset, rep.data.data(), rep.data.size());
  }
  if (!s.ok()) {
    FailWrites(s);
    return s;
  }
  if (r.sealed_previous) CompleteTicket(r.seal.ticket);
  CompleteTicket(r.batch.ticket);
  return Status::OK();
}

// Gives a sealed segment's unused preallocated tail back. Only bytes past the seal go, and
// nothing is ever written there; a crash before the size change is durable leaves zeros that
// recovery ignores.
void Engine::Impl::TrimSealed(uint32_t segment, uint64_t end) {
  int fd;
  if (files->WriteFd(segment, &fd).ok() && ::ftruncate(fd, static_cast<off_t>(end)) == 0)
    segments.SetCapacity(segment, end);
}

// Makes the log durable up to `target`. One process at a time syncs (the flusher); the others
// do not queue on its lock, which would hand it over one waiter at a time and shrink every group
// to a writer or two. A writer sleeps on its own commit slot instead; the flusher wakes exactly
// the writers its sync covered, and the first writer it did not cover, which becomes the next
// flusher. Waiters without a ticket (Flush, checkpoints) watch the durable position.
Status Engine::Impl::GroupCommit(uint64_t target, uint64_t ticket) {
  LogShared& log = rh->log;
  if (log.durable.Load() >= target) return Status::OK();
  if (!log.written.WaitFor(target, &rh->write_failed)) return WritesDisabled();
  CommitSlot* slot = ticket == UINT64_MAX ? nullptr : &log.ring[ticket % LogShared::kRing];
  for (;;) {
    if (log.durable.Load() >= target) return Status::OK();
    if (write_failed()) return WritesDisabled();
    const uint32_t seen = slot ? slot->synced.load() : log.durable.Epoch();
    if (log.flush_mu.TryLock()) {
      Status s = FlushAndUnlock();
      if (!s.ok()) return s;
      continue;
    }
    if (slot != nullptr) {
      slot->waiting.store(1);
      if (log.durable.Load() < target && slot->synced.load() == seen && !write_failed())
        FutexWait(&slot->synced, seen, 2'000'000);
      slot->waiting.store(0);
    } else {
      log.durable.WaitEpoch(seen, 2'000'000);
    }
  }
}

// Writes the staged pieces of every written ticket, syncs, and wakes the writers it covered.
// A flusher that comes in while this one syncs writes out behind it and then syncs after it;
// one that finds its part already synced by then wakes no one twice (SyncFilesLocked).
Status Engine::Impl::FlushAndUnlock() {
  uint64_t upto, upto_ticket;
  Status s = WriteOutLocked(&upto, &upto_ticket);
  rh->log.flush_mu.Unlock();
  if (!s.ok()) return s;
  ShmLockGuard g(rh->log.sync_mu);
  return SyncFilesLocked(upto, upto_ticket);
}

Status Engine::Impl::WriteOutLocked(uint64_t* upto_out, uint64_t* upto_ticket_out) {
  LogShared& log = rh->log;
  // The staged pieces left behind by a failed write stay out of the files (see AppendLog).
  if (write_failed()) return WritesDisabled();
  uint64_t upto, upto_ticket;
  {
    ShmLockGuard g(log.advance_mu);
    upto_ticket = log.written_ticket.load();
    upto = upto_ticket == 0 ? log.written.Load()
                            : log.ring[(upto_ticket - 1) % LogShared::kRing].end_lsn.load();
  }
  // 0. The host's log up to every batch about to be written (see AppendLog).
  const uint64_t host = log.host_position.load(std::memory_order_acquire);
  if (host != 0 && local.host_flush != nullptr && upto_ticket > log.file_ticket)
    local.host_flush(local.replication_context, host);
  // 1. Staged pieces to their files, one write per contiguous run.
  struct Run {
    uint32_t segment = 0;
    uint64_t offset = 0, stage_pos = 0, length = 0;
  } run;
  const uint64_t cap = log.stage_capacity;
  auto write_run = [&]() -> Status {
    if (run.length == 0) return Status::OK();
    int fd;
    Status s = files->WriteFd(run.segment, &fd);
    const uint64_t at = run.stage_pos % cap;
    const uint64_t first = std::min(run.length, cap - at);
    if (s.ok()) s = io()->WriteAt(fd, stage_ring() + at, first, run.offset);
    if (s.ok() && first < run.length)
      s = io()->WriteAt(fd, stage_ring(), run.length - first, run.offset + first);
    run.length = 0;
    return s;
  };
  uint64_t stage_end = 0;
  uint64_t file_host = 0;
  Status s;
  for (uint64_t t = log.file_ticket; s.ok() && t < upto_ticket; ++t) {
    const CommitSlot& c = log.ring[t % LogShared::kRing];
    file_host = std::max(file_host, c.host_end.load(std::memory_order_relaxed));
    const uint64_t pos = c.stage_pos.load();
    if (pos == kDirect) continue;  // its writer wrote it
    const uint64_t len = c.length.load();
    const uint64_t end = c.end_lsn.load();
    const uint32_t seg = LsnSegment(end);
    const uint64_t off = LsnOffset(end) - len;
    if (run.length != 0 && (run.segment != seg || run.offset + run.length != off ||
                            run.stage_pos + run.length != pos))
      s = write_run();
    if (run.length == 0) run = Run{seg, off, pos, 0};
    run.length += len;
    stage_end = pos + len;
    if (c.seal.load() != 0 && s.ok()) {
      s = write_run();
      if (s.ok()) TrimSealed(seg, off + len);
    }
  }
  if (s.ok()) s = write_run();
  if (!s.ok()) {
    FailWrites(s);
    return s;
  }
  log.file_ticket = upto_ticket;
  if (stage_end != 0) log.stage_tail.store(stage_end, std::memory_order_release);
  if (upto > log.file_lsn.load(std::memory_order_relaxed))
    log.file_lsn.store(upto, std::memory_order_release);
  if (file_host > log.file_host.load(std::memory_order_relaxed))
    log.file_host.store(file_host, std::memory_order_release);
  *upto_out = upto;
  *upto_ticket_out = upto_ticket;
  return Status::OK();
}

// Reads go around the page cache (O_DIRECT; values are cached in shared memory), so the synced
// pages of the log only crowd out the host's own cached files: they are let go once on the
// device. The page the log ends in stays, or the next write into it would read it back first.
void Engine::Impl::DropSyncedPages(uint64_t from, uint64_t upto) {
  if (!files->reads_direct()) return;
  constexpr uint64_t kPage = AlignedBuffer::kAlign;
  for (uint32_t seg = LsnSegment(from); seg <= LsnSegment(upto); ++seg) {
    int fd;
    if (segments.Get(seg) == nullptr || !files->WriteFd(seg, &fd).ok()) continue;
    const uint64_t start = seg == LsnSegment(from) ? LsnOffset(from) / kPage * kPage : 0;
    // Length 0: to the end of the file (the log has moved on to a later segment).
    uint64_t length = 0;
    if (seg == LsnSegment(upto)) {
      const uint64_t end = LsnOffset(upto) / kPage * kPage;
      if (end <= start) continue;
      length = end - start;
    }
    (void)::posix_fadvise(fd, static_cast<off_t>(start), static_cast<off_t>(length),
                          POSIX_FADV_DONTNEED);
  }
}

Status Engine::Impl::SyncFilesLocked(uint64_t upto, uint64_t upto_ticket) {
  LogShared& log = rh->log;
  Status s;
  // 2. One sync per segment touched.
  const uint64_t from = log.durable.Load();
  // Once the writers are woken (on every return below): nobody waits for it.
  struct DropPagesOnReturn {
    Impl* impl;
    uint64_t from, upto;
    ~DropPagesOnReturn() {
      if (upto > from) impl->DropSyncedPages(from, upto);
    }
  } drop_pages{this, from, 0};
  if (upto > from) {
    for (uint32_t seg = LsnSegment(from); seg <= LsnSegment(upto); ++seg) {
      if (segments.Get(seg) == nullptr) continue;
      int fd;
      s = files->WriteFd(seg, &fd);
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
    drop_pages.upto = upto;
    log.last_sync_ms.store(NowMillis(), std::memory_order_relaxed);
  }

  // 3. Wake the covered writers, then hand over to the first uncovered one, if it is waiting.
  // The slots are released (durable_ticket) only after their writers are woken: TakeTicket
  // reuses a slot once its ticket is below durable_ticket.
  const uint64_t first = log.durable_ticket.load();
  uint64_t durable_host = 0;
  for (uint64_t t = first; t < upto_ticket; ++t) {
    CommitSlot& c = log.ring[t % LogShared::kRing];
    if (const uint64_t h = c.host_end.load(std::memory_order_relaxed); h != 0) durable_host = h;
    c.synced.store(static_cast<uint32_t>(t + 1));
    if (c.waiting.load() != 0) FutexWakeOne(&c.synced);
  }
  // Before durable_ticket: Retention() must never see a ticket durable whose host position it
  // does not count yet.
  if (durable_host != 0) log.durable_host.store(durable_host, std::memory_order_release);
  if (upto_ticket > first) log.durable_ticket.store(upto_ticket, std::memory_order_release);
  // A sync that ran behind another (SyncWritten) covered nothing new: whoever moved
  // durable_ticket past upto_ticket handed over, and the slot may hold a newer ticket by now.
  if (upto_ticket < first) return Status::OK();
  CommitSlot& next = log.ring[upto_ticket % LogShared::kRing];
  if (next.waiting.load() != 0) {
    next.synced.fetch_add(0x80000000u);  // a change, not a value: wakes it to become the flusher
    FutexWakeOne(&next.synced);
  }
  return Status::OK();
}

Status Engine::Impl::SyncUpTo(uint64_t target) { return GroupCommit(target); }

}  // namespace eloqkv
