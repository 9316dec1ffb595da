// INFO commandstats and errorstats, counted as Redis 7 counts them.
//
// Invariants:
//  * Every worker counts its commands in a row of its own (ListenerConfig::worker_index): the
//    hot path never writes a cache line another worker writes. INFO sums the rows.
//  * A command that was refused before it ran (wrong arity, NOAUTH, READONLY, ...), or for
//    lack of privileges (NOPERM, as Redis's ACLs), counts as rejected, not called; one that ran
//    and replied another error counts as called and failed.
//  * Every error reply a client is sent (or would be, under CLIENT REPLY OFF) is counted once,
//    under its first word (ERR, WRONGTYPE, ...), in total_error_replies and errorstats.
#ifndef ELOQKV_RESP_COMMAND_STATS_H_
#define ELOQKV_RESP_COMMAND_STATS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace eloqkv::resp {

// eloqkv.resp_workers' maximum: every per-worker array in shared memory has this many rows.
inline constexpr int kMaxListenerWorkers = 64;

struct CommandCounts {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> nanos{0};  // time in the command's handler
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> failed{0};
};

struct ErrorCount {
  std::atomic<uint32_t> state{0};  // kFree, kNaming, kNamed
  char code[33] = {};              // at most 31 bytes before the space that ends it, and a NUL
  std::atomic<uint64_t> count{0};
};

// The counters every worker shares (a part of ListenerStats, in the host's shared memory).
struct CommandStatsShared {
  static constexpr int kMaxWorkers = kMaxListenerWorkers;
  static constexpr int kMaxCommands = 192;   // commands and subcommands: Dispatcher checks
  static constexpr int kMaxErrorCodes = 128;  // as Redis: past that, in the total only
  alignas(64) CommandCounts rows[kMaxWorkers][kMaxCommands];
  ErrorCount errors[kMaxErrorCodes];
  std::atomic<uint64_t> error_replies{0};
};

// One worker's view: what it counts, and what INFO prints from every worker's counts.
class CommandStats {
 public:
  // A worker_index outside [0, kMaxWorkers) counts nothing (a misconfigured test harness).
  CommandStats(CommandStatsShared* shared, int worker_index);

  // Index 0 is "no command" (unknown, or an unknown subcommand): nothing is counted for it.
  void Called(uint32_t index, uint64_t nanos, bool failed) {
    if (row_ == nullptr || index == 0) return;
    CommandCounts& c = row_[index];
    c.calls.fetch_add(1, std::memory_order_relaxed);
    c.nanos.fetch_add(nanos, std::memory_order_relaxed);
    if (failed) c.failed.fetch_add(1, std::memory_order_relaxed);
  }
  void Rejected(uint32_t index) {
    if (row_ != nullptr && index != 0) row_[index].rejected.fetch_add(1, std::memory_order_relaxed);
  }
  // A command counted as called that failed after all (a gathered write run again alone).
  void FailedLater(uint32_t index) {
    if (row_ != nullptr && index != 0) row_[index].failed.fetch_add(1, std::memory_order_relaxed);
  }
  // `reply` is a RESP error ("-CODE message\r\n"): counted under CODE.
  void CountError(std::string_view reply);
  // A command counted as failed with `reply` whose error was never sent (a gathered command run
  // again alone): both counts are taken back (not below 0: a CONFIG RESETSTAT may have come
  // between).
  void SucceededLater(uint32_t index, std::string_view reply);

  // "cmdstat_<name>:calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=.." for each
  // command with anything counted; names[i] is index i's name.
  static void AppendCommandStats(const CommandStatsShared& shared,
                                 const std::vector<std::string>& names, std::string* out);
  // "errorstat_<CODE>:count=.." for each code with a count.
  static void AppendErrorStats(const CommandStatsShared& shared, std::string* out);
  static uint64_t ErrorReplies(const CommandStatsShared& shared) {
    return shared.error_replies.load(std::memory_order_relaxed);
  }
  // CONFIG RESETSTAT.
  static void Reset(CommandStatsShared* shared);

 private:
  static constexpr uint32_t kFree = 0, kNaming = 1, kNamed = 2;
  // The slot named after the code of error reply `reply`; null when it has none.
  ErrorCount* Named(std::string_view code);
  static std::string_view CodeOf(std::string_view reply);
  CommandStatsShared* shared_;
  CommandCounts* row_;
};

}  // namespace eloqkv::resp

#endif  // ELOQKV_RESP_COMMAND_STATS_H_
