// Process-shared synchronisation for state in a shared memory region.
//
// Invariant: every primitive here is a plain 32- or 64-bit word usable from any process that maps
// the region, at any address; waiting uses futexes without FUTEX_PRIVATE_FLAG. None of them
// survives its holder dying: as in Postgres, a process that dies while holding one makes the host
// reinitialise the region and recover from disk.
#pragma once

#include <atomic>
#include <cstdint>

namespace eloqkv {

// Blocks while *word == expected (or until woken / timeout_ns elapses; 0 = no timeout).
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, uint64_t timeout_ns = 0);
void FutexWakeAll(std::atomic<uint32_t>* word);
void FutexWakeOne(std::atomic<uint32_t>* word);

// A mutex: spins briefly, then sleeps on a futex (Drepper's three-state lock).
class ShmMutex {
 public:
  void Lock();
  bool TryLock() {
    uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire);
  }
  void Unlock();

 private:
  std::atomic<uint32_t> state_{0};  // 0 free, 1 locked, 2 locked with waiters
};

class ShmLockGuard {
 public:
  explicit ShmLockGuard(ShmMutex& m) : m_(m) { m_.Lock(); }
  ~ShmLockGuard() { m_.Unlock(); }
  ShmLockGuard(const ShmLockGuard&) = delete;
  ShmLockGuard& operator=(const ShmLockGuard&) = delete;

 private:
  ShmMutex& m_;
};

// A monotonically increasing 64-bit position that processes wait on: "wait until it reaches x".
class ShmWatermark {
 public:
  uint64_t Load() const { return value_.load(std::memory_order_acquire); }
  // Only ever raises the value; wakes waiters when it moves.
  void Advance(uint64_t to);
  // Waits until Load() >= target or *abort becomes non-zero. Returns Load() >= target.
  bool WaitFor(uint64_t target, const std::atomic<uint32_t>* abort);
  // Wakes every waiter without changing the value (after setting an abort flag).
  void WakeAll();
  // Change detection for waiters with their own condition: read Epoch(), test, WaitEpoch().
  uint32_t Epoch() const { return epoch_.load(); }
  // Sleeps until the epoch differs from `seen` (or timeout_ns passes).
  void WaitEpoch(uint32_t seen, uint64_t timeout_ns);
  void Reset(uint64_t v) { value_.store(v, std::memory_order_release); }

 private:
  std::atomic<uint64_t> value_{0};
  std::atomic<uint32_t> epoch_{0};  // futex word: bumped on every advance
  std::atomic<uint32_t> waiters_{0};
};

// Seqlock-style version word for optimistic readers (index nodes and entries).
// Writers (already serialised by another lock) bracket changes with BeginWrite/EndWrite; readers
// take a stable (even) version before reading and check it is unchanged afterwards.
class VersionLock {
 public:
  uint64_t ReadBegin() const;  // spins while a write is in progress
  bool ReadValidate(uint64_t v) const {
    std::atomic_thread_fence(std::memory_order_acquire);
    return version_.load(std::memory_order_relaxed) == v;
  }
  void BeginWrite() {
    const uint64_t v = version_.load(std::memory_order_relaxed);
    version_.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  void EndWrite() { version_.fetch_add(1, std::memory_order_release); }
  uint64_t RawLoad() const { return version_.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> version_{0};
};

// Pause hint for spin loops.
inline void CpuRelax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

}  // namespace eloqkv
