// BackgroundSync: makes the log durable on a thread of its own, so that a listener's event
// loop keeps reading, running and answering other clients while an fsync is in flight.
//
// Invariants:
//  * synced() only grows, and every log position at or below it is durable (or, under a sync
//    policy other than `always`, written): a reply that waited for a position below it may go.
//  * The thread calls nothing but Engine::SyncTo and SyncWritten — never the host (Postgres) —
//    and blocks every signal, so the host's handlers run on the event loop's thread only.
//  * After a failed sync, failed() stays true: no later position is reported durable.
//  * In write-out mode (inline only, and only while the host keeps its log for the engine:
//    Engine::WriteOut), synced() means "in the host's durable log": the loop thread writes out,
//    and the thread syncs the engine's files behind it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "engine/eloqkv.h"

namespace eloqkv::resp {

// Host-provided: makes Engine::WriteOut happen in another process of the host, so that the
// event loop goes on serving while the host's log is flushed (only host processes may flush
// it, and a thread of the loop's process may not).
class RemoteWriteOut {
 public:
  virtual ~RemoteWriteOut() = default;
  // Asks for the engine's log to be written out up to `lsn`, and to be woken once it is written
  // out up to `wake_at` (<= lsn; positions asked for only grow). False when nobody can take it
  // now (the helper is not running): the caller writes out itself.
  virtual bool Request(uint64_t wake_at, uint64_t lsn) = 0;
  // An eventfd that becomes readable after the helper wrote out up to wake_at (or failed).
  virtual int event_fd() const = 0;
};

// Reads an eventfd, resetting its counter (a no-op when it was not signalled).
void ConsumeEvent(int event_fd);

class BackgroundSync {
 public:
  explicit BackgroundSync(Engine* engine) : engine_(engine) {}
  // Stops the thread, then syncs everything requested so far (on the caller's thread, which may
  // call the host).
  ~BackgroundSync();
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Creates the thread and the eventfd it signals. inline_sync: Request only notes the position,
  // and the loop calls Drain once it has served the clients that were ready (drain_due()), which
  // syncs everything requested so far on the loop's thread; the thread then only syncs behind
  // write-outs.
  Status Start(bool inline_sync = false);
  // Inline only: whether Drain may acknowledge after Engine::WriteOut instead of a full sync.
  // The host says so before every poll (it depends on the host keeping its log).
  void set_write_out(bool on) { write_out_ = inline_ && on; }
  // Write-out mode only: leave the write-out to `remote` (null: none). Its event_fd must be
  // watched; when it is readable, consume it and call Drain.
  void set_remote(RemoteWriteOut* remote) { remote_ = remote; }
  // A write-out asked of the remote helper is not known done yet.
  bool remote_pending() const { return remote_asked_ > synced_.load(std::memory_order_relaxed); }
  // The eventfd: readable when synced() or failed() changed.
  int event_fd() const { return event_fd_; }
  // Asks for the log to be durable up to `lsn`.
  void Request(uint64_t lsn);
  // Inline only: a Request came since the last Drain, which the loop must now call (the
  // replies held for it are released there, even when `lsn` was durable already).
  bool drain_due() const { return drain_due_; }
  // Consumes the eventfd's count if a Signal is pending (when epoll reports the eventfd, read it
  // first with ConsumeEvent: a count can outlive the flag); inline, also syncs.
  void Drain();
  uint64_t synced() const { return synced_.load(std::memory_order_acquire); }
  bool failed(std::string* message) const;

 private:
  void Run();
  // Write-out mode: `lsn` is in the host's durable log; the thread syncs the files behind.
  void Acknowledge(uint64_t lsn);
  // Write-out mode with a remote helper: true when Drain has nothing more to do for now.
  bool DrainRemote();
  void SyncNow(uint64_t target, bool signal);
  void Fail(const Status& s);
  void Signal();

  Engine* engine_;
  int event_fd_ = -1;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  uint64_t requested_ = 0;
  std::atomic<uint64_t> synced_{0};
  std::atomic<bool> signal_pending_{false};  // written to event_fd_, not yet drained
  bool stop_ = false;
  bool inline_ = false;
  bool write_out_ = false;
  bool drain_due_ = false;        // inline: the loop thread's
  bool files_idle_ = false;       // inline: the thread waits for files_requested_ to grow (mu_)
  uint64_t files_requested_ = 0;  // inline: written out, for the thread to sync (mu_)
  RemoteWriteOut* remote_ = nullptr;
  uint64_t remote_asked_ = 0;  // the furthest write-out asked of remote_ (loop thread)
  // Remote write-out: the positions held replies wait for, increasing (loop thread). Those
  // written out or synced meanwhile go at the next DrainRemote, so the front, the position the
  // helper is asked to wake the loop at, never goes down.
  std::deque<uint64_t> waits_;
  std::atomic<bool> failed_{false};
  std::string failure_;
};

}  // namespace eloqkv::resp
