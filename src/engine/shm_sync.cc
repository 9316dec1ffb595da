#include "engine/shm_sync.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>

namespace eloqkv {
namespace {

long Futex(std::atomic<uint32_t>* word, int op, uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, val, ts, nullptr, 0);
}

constexpr int kSpins = 100;

}  // namespace

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, uint64_t timeout_ns) {
  timespec ts{};
  if (timeout_ns != 0) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
  }
  Futex(word, FUTEX_WAIT, expected, timeout_ns ? &ts : nullptr);
}

void FutexWakeAll(std::atomic<uint32_t>* word) { Futex(word, FUTEX_WAKE, INT_MAX, nullptr); }
void FutexWakeOne(std::atomic<uint32_t>* word) { Futex(word, FUTEX_WAKE, 1, nullptr); }

void ShmMutex::Lock() {
  for (int i = 0; i < kSpins; ++i) {
    if (TryLock()) return;
    CpuRelax();
  }
  uint32_t c = state_.exchange(2, std::memory_order_acquire);
  while (c != 0) {
    FutexWait(&state_, 2);
    c = state_.exchange(2, std::memory_order_acquire);
  }
}

void ShmMutex::Unlock() {
  if (state_.exchange(0, std::memory_order_release) == 2) FutexWakeOne(&state_);
}

void ShmWatermark::Advance(uint64_t to) {
  uint64_t cur = value_.load(std::memory_order_relaxed);
  // Sequentially consistent on purpose: the value store and the waiters_ load pair with the
  // waiter's waiters_ increment and value load (a Dekker handshake).
  while (cur < to && !value_.compare_exchange_weak(cur, to)) {
  }
  if (cur < to) {
    epoch_.fetch_add(1);
    if (waiters_.load() != 0) FutexWakeAll(&epoch_);
  }
}

void ShmWatermark::WakeAll() {
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  FutexWakeAll(&epoch_);
}

bool ShmWatermark::WaitFor(uint64_t target, const std::atomic<uint32_t>* abort) {
  for (int i = 0; i < kSpins; ++i) {
    if (Load() >= target) return true;
    CpuRelax();
  }
  while (Load() < target) {
    if (abort != nullptr && abort->load(std::memory_order_acquire) != 0) return false;
    const uint32_t e = epoch_.load();
    waiters_.fetch_add(1);
    // Re-check after announcing ourselves so an Advance between the check and the wait is seen.
    if (value_.load() < target && (abort == nullptr || abort->load() == 0))
      FutexWait(&epoch_, e, 50'000'000);  // 50 ms cap: a lost wake-up only costs latency
    waiters_.fetch_sub(1);
  }
  return true;
}

void ShmWatermark::WaitEpoch(uint32_t seen, uint64_t timeout_ns) {
  waiters_.fetch_add(1);
  if (epoch_.load() == seen) FutexWait(&epoch_, seen, timeout_ns);
  waiters_.fetch_sub(1);
}

uint64_t VersionLock::ReadBegin() const {
  for (int spins = 0;; ++spins) {
    const uint64_t v = version_.load(std::memory_order_acquire);
    if ((v & 1u) == 0) return v;
    if (spins < 1000) {
      CpuRelax();
    } else {
      sched_yield();  // the writer may have been descheduled
    }
  }
}

}  // namespace eloqkv
