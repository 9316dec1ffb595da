// CLIENT PAUSE and UNPAUSE, shared by every listener worker (a part of ListenerStats, in the
// host's shared memory).
//
// Invariants:
//  * One word holds the pause's end (NowMillis's clock) and its mode, so a worker never reads
//    the end of one pause with the mode of another.
//  * As in Redis, a new pause keeps the later of the two ends and the stricter of the two modes
//    (ALL over WRITE) while the earlier pause is still in force; UNPAUSE ends it at once.
//  * A pause whose end has passed is no pause, whether or not a reader has cleared it yet.
#ifndef ELOQKV_RESP_CLIENT_PAUSE_H_
#define ELOQKV_RESP_CLIENT_PAUSE_H_

#include <atomic>
#include <cstdint>

namespace eloqkv::resp {

class ClientPause {
 public:
  enum class Mode : uint64_t { kNone = 0, kWrite = 1, kAll = 2 };

  // Pauses until end_ms (write commands only, or every command), or extends the pause in force.
  void Pause(int64_t end_ms, Mode mode);
  void Unpause() { state_.store(0, std::memory_order_release); }
  // The mode in force now, and when it ends. One load when nothing is paused.
  // A pause that ended is cleared by the first reader that sees it.
  Mode InForce(int64_t* end_ms);
  // Whether the pause in force holds a command, and until when. writes() (whether the command
  // writes) is asked only under a WRITE pause: nothing is paused, on the hot path.
  template <typename Writes>
  bool Holds(Writes&& writes, int64_t* end_ms) {
    const Mode mode = InForce(end_ms);
    return mode == Mode::kAll || (mode == Mode::kWrite && writes());
  }

 private:
  static constexpr uint64_t kModeBits = 2;
  std::atomic<uint64_t> state_{0};  // end_ms << kModeBits | mode; 0: never paused
};

}  // namespace eloqkv::resp

#endif  // ELOQKV_RESP_CLIENT_PAUSE_H_
