#include "resp/client_pause.h"

#include <algorithm>
#include <cstdint>

#include "engine/eloqkv.h"

namespace eloqkv::resp {

void ClientPause::Pause(int64_t end_ms, Mode mode) {
  // Past this the end would not fit beside the mode: it is ~146 million years away anyway.
  end_ms = std::clamp<int64_t>(end_ms, 0, INT64_MAX >> kModeBits);
  uint64_t current = state_.load(std::memory_order_acquire);
  for (;;) {
    int64_t current_end = static_cast<int64_t>(current >> kModeBits);
    Mode current_mode = static_cast<Mode>(current & ((1u << kModeBits) - 1));
    if (current_end <= NowMillis()) {  // over: nothing to keep of it
      current_end = 0;
      current_mode = Mode::kNone;
    }
    const Mode next_mode = mode == Mode::kAll || current_mode == Mode::kAll ? Mode::kAll : mode;
    const uint64_t next = static_cast<uint64_t>(std::max(end_ms, current_end)) << kModeBits |
                          static_cast<uint64_t>(next_mode);
    if (state_.compare_exchange_weak(current, next, std::memory_order_acq_rel)) return;
  }
}

ClientPause::Mode ClientPause::InForce(int64_t* end_ms) {
  uint64_t s = state_.load(std::memory_order_acquire);
  if (s == 0) return Mode::kNone;
  *end_ms = static_cast<int64_t>(s >> kModeBits);
  if (*end_ms <= NowMillis()) {
    // Over: back to the one-load check (a failure means another pause came, as good).
    state_.compare_exchange_strong(s, 0, std::memory_order_acq_rel);
    return Mode::kNone;
  }
  return static_cast<Mode>(s & ((1u << kModeBits) - 1));
}

}  // namespace eloqkv::resp
