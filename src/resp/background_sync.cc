#include "resp/background_sync.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace eloqkv::resp {

namespace {
constexpr std::chrono::milliseconds kFilesSyncInterval{10};
}  // namespace

BackgroundSync::~BackgroundSync() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  // Writes not yet synced (never acknowledged, or acknowledged after a write-out only) must not
  // be left to a later server's recovery: a clean shutdown does not replay WAL. On the owner's
  // thread, which may call the host.
  if (requested_ > 0 && !failed_.load()) (void)engine_->SyncTo(requested_);
  if (event_fd_ >= 0) ::close(event_fd_);
}

Status BackgroundSync::Start(bool inline_sync) {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return Status::FromErrno(errno, "eventfd", "");
  inline_ = inline_sync;
  // The thread inherits the creator's signal mask: block everything while creating it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return Status::IOError(std::string("could not start the sync thread: ") + e.what());
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return Status::OK();
}

void BackgroundSync::Request(uint64_t lsn) {
  if (inline_) {
    // Coalesced: the loop drains once it has served every ready client, with one sync (or one
    // write-out asked) for all of them. Not through the eventfd: that cost three system calls
    // and a pass through epoll per round, on the path of every acknowledgement.
    requested_ = std::max(requested_, lsn);
    if (write_out_ && remote_ != nullptr && (waits_.empty() || lsn > waits_.back()))
      waits_.push_back(lsn);
    drain_due_ = true;
    return;
  }
  if (lsn <= synced_.load()) {  // synced already: the loop still has to release the replies
    Signal();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lsn <= requested_) return;  // the sync in flight covers it and signals when done
    requested_ = lsn;
  }
  wake_.notify_one();
}

void ConsumeEvent(int event_fd) {
  uint64_t count;
  while (::read(event_fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

void BackgroundSync::Drain() {
  // The eventfd is read only when a Signal set the flag: most drains (inline, every round)
  // follow no Signal, and a Signal that sets the flag after the test writes a count that wakes
  // the loop again. Read first, cleared after: a Signal between the two finds the flag still
  // set and writes nothing, and we read what it stored before signalling below. Cleared first,
  // a Signal in between would write the count that the read then swallows, and leave the flag
  // set with nothing to wake the loop: every later Signal would skip its write and the held
  // replies would wait forever. The exchange pairs with Signal's, so what the sync thread
  // stored before signalling is visible below.
  if (signal_pending_.load(std::memory_order_acquire)) {
    ConsumeEvent(event_fd_);
    signal_pending_.exchange(false, std::memory_order_acq_rel);
  }
  drain_due_ = false;
  if (!inline_ || requested_ <= synced_.load() || failed_.load()) return;
  if (!write_out_) {
    SyncNow(requested_, false);
    return;
  }
  if (DrainRemote()) return;
  const Status s = engine_->WriteOut(requested_);
  if (!s.ok()) {
    Fail(s);
    return;
  }
  Acknowledge(requested_);
  waits_.clear();
}

bool BackgroundSync::DrainRemote() {
  if (remote_ == nullptr) return false;
  // Written out already, by the helper or by any other process's write-out: as far as that
  // goes, acknowledged now, though more was asked since (the replies it covers go out while
  // the rest waits for the next write-out).
  const uint64_t written = engine_->WrittenOutLsn();
  if (written > synced_.load()) Acknowledge(std::min(written, requested_));
  const uint64_t out = std::max(written, synced_.load());
  while (!waits_.empty() && waits_.front() <= out) waits_.pop_front();
  if (written >= requested_) return true;
  if (engine_->writes_failed()) {
    Fail(Status::IOError("writes are disabled after a device error: " + engine_->FailureMessage()));
    return true;
  }
  // Asked again on every drain, so that a helper that restarted meanwhile hears of it. The
  // loop is woken as soon as the oldest replies can go, not once everything asked is out: at
  // -P 1 the clients those free send again while the rest wait, instead of moving as one.
  const uint64_t wake_at = waits_.empty() ? requested_ : waits_.front();
  if (!remote_->Request(wake_at, requested_)) return false;
  remote_asked_ = std::max(remote_asked_, requested_);
  return true;
}

void BackgroundSync::Acknowledge(uint64_t lsn) {
  synced_.store(lsn, std::memory_order_release);
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    files_requested_ = lsn;
    wake = files_idle_;
  }
  // Only a thread waiting for work: one spacing its syncs out would wake just to sleep again, a
  // futex call and two context switches per acknowledgement.
  if (wake) wake_.notify_one();
}

// One write per wake-up: an eventfd written again before the loop read it wakes nobody more,
// and a round of 50 held replies asked for 50 (a system call per SET at -P 1).
void BackgroundSync::Signal() {
  if (signal_pending_.exchange(true, std::memory_order_acq_rel)) return;
  const uint64_t one = 1;
  while (::write(event_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

bool BackgroundSync::failed(std::string* message) const {
  if (!failed_.load(std::memory_order_acquire)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (message != nullptr) *message = failure_;
  return true;
}

void BackgroundSync::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  if (inline_) {
    // Behind write-outs: the engine's files, which nobody waits for.
    uint64_t done = 0;
    for (;;) {
      files_idle_ = true;
      wake_.wait(lock, [&] { return stop_ || (!failed_.load() && files_requested_ > done); });
      files_idle_ = false;
      if (stop_) return;
      const uint64_t target = files_requested_;
      lock.unlock();
      const Status s = engine_->SyncWritten();
      if (!s.ok()) {
        Fail(s);
        Signal();  // the loop stops acknowledging
      }
      lock.lock();
      done = target;
      // Nobody waits for these syncs, while every acknowledgement waits for the host's log
      // flush on the same device: one sync per loop round doubled that flush's latency.
      // Spaced out, they still free the engine's commit slots well before they run out.
      wake_.wait_for(lock, kFilesSyncInterval, [this] { return stop_; });
      if (stop_) return;
    }
  }
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || (!failed_.load() && requested_ > synced_.load()); });
    if (stop_) return;
    // Everything requested so far goes in one sync; requests arriving meanwhile wait for the
    // next one (the engine's group commit may cover them already).
    const uint64_t target = requested_;
    lock.unlock();
    SyncNow(target, true);
    lock.lock();
  }
}

void BackgroundSync::SyncNow(uint64_t target, bool signal) {
  const Status s = engine_->SyncTo(target);
  if (!s.ok()) {
    Fail(s);
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    synced_.store(target, std::memory_order_release);
  }
  if (signal) Signal();
}

void BackgroundSync::Fail(const Status& s) {
  std::lock_guard<std::mutex> lock(mu_);
  failure_ = s.ToString();
  failed_.store(true, std::memory_order_release);
}

}  // namespace eloqkv::resp
