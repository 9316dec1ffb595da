// Client output buffer limits, as Redis's `client-output-buffer-limit`: per client class, a hard
// limit (a client whose unsent output exceeds it is disconnected at once) and a soft limit (one
// whose unsent output stays above it for soft_seconds is disconnected). 0 turns a limit off.
//
// Invariant: ParseOutputBufferLimits either accepts the whole text or changes nothing, and what
// FormatOutputBufferLimits prints parses back to the same limits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace eloqkv::resp {

// Subscribers (the targets of CLIENT TRACKING REDIRECT) receive output they did not ask for
// command by command, so they are limited separately, as in Redis.
enum class ClientClass { kNormal, kPubsub };

struct OutputLimit {
  uint64_t hard_bytes = 0;
  uint64_t soft_bytes = 0;
  int64_t soft_seconds = 0;
};

struct OutputBufferLimits {
  // Redis's defaults: normal clients unlimited (the listener stops reading a client with 64 MiB
  // of unsent replies, which bounds them), subscribers 32mb hard, 8mb for 60 s.
  OutputLimit normal{};
  OutputLimit pubsub{uint64_t{32} << 20, uint64_t{8} << 20, 60};

  const OutputLimit& For(ClientClass c) const {
    return c == ClientClass::kPubsub ? pubsub : normal;
  }
};

// Redis's syntax: one or more "<class> <hard> <soft> <soft seconds>" groups, class `normal` or
// `pubsub`, sizes as Redis writes them (1048576, 1mb, 1m = 10^6, 64kb, 1gb). Classes not named
// keep their current limits. On error, *error says what is wrong.
bool ParseOutputBufferLimits(std::string_view text, OutputBufferLimits* limits, std::string* error);
// As Redis's CONFIG GET prints it: "normal 0 0 0 pubsub 33554432 8388608 60".
std::string FormatOutputBufferLimits(const OutputBufferLimits& limits);

// Whether a client with `pending` unsent bytes is over its limit at `now_ms`. *soft_since_ms is
// the client's memory of when it went over the soft limit (0: it is not).
bool OverOutputLimit(const OutputLimit& limit, uint64_t pending, int64_t now_ms,
                     int64_t* soft_since_ms);

}  // namespace eloqkv::resp
