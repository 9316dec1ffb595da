#include "resp/command_stats.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace eloqkv::resp {

CommandStats::CommandStats(CommandStatsShared* shared, int worker_index)
    : shared_(shared),
      row_(shared != nullptr && worker_index >= 0 && worker_index < CommandStatsShared::kMaxWorkers
               ? shared->rows[worker_index]
               : nullptr) {}

std::string_view CommandStats::CodeOf(std::string_view reply) {
  if (!reply.empty() && reply[0] == '-') reply.remove_prefix(1);
  // As Redis's afterErrorReply: the text before a space within the first 32 bytes, else ERR.
  const size_t space = reply.substr(0, 32).find(' ');
  return space == std::string_view::npos ? std::string_view("ERR") : reply.substr(0, space);
}

ErrorCount* CommandStats::Named(std::string_view code) {
  for (ErrorCount& e : shared_->errors)
    if (e.state.load(std::memory_order_acquire) == kNamed && code == e.code) return &e;
  return nullptr;
}

void CommandStats::CountError(std::string_view reply) {
  if (shared_ == nullptr) return;
  shared_->error_replies.fetch_add(1, std::memory_order_relaxed);
  const std::string_view code = CodeOf(reply);
  if (code.empty()) return;
  if (ErrorCount* named = Named(code); named != nullptr) {
    named->count.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // A new code. Two workers naming the same one at once get a slot each; INFO adds them up.
  for (ErrorCount& e : shared_->errors) {
    uint32_t expected = kFree;
    if (!e.state.compare_exchange_strong(expected, kNaming, std::memory_order_acquire)) continue;
    code.copy(e.code, code.size());
    e.code[code.size()] = '\0';
    e.count.fetch_add(1, std::memory_order_relaxed);
    e.state.store(kNamed, std::memory_order_release);
    return;
  }
}

namespace {
void TakeBackOne(std::atomic<uint64_t>& counter) {
  uint64_t n = counter.load(std::memory_order_relaxed);
  while (n > 0 && !counter.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
  }
}
}  // namespace

void CommandStats::SucceededLater(uint32_t index, std::string_view reply) {
  if (shared_ == nullptr) return;
  if (row_ != nullptr && index != 0) TakeBackOne(row_[index].failed);
  TakeBackOne(shared_->error_replies);
  if (ErrorCount* named = Named(CodeOf(reply)); named != nullptr) TakeBackOne(named->count);
}

void CommandStats::AppendCommandStats(const CommandStatsShared& shared,
                                      const std::vector<std::string>& names, std::string* out) {
  std::map<std::string_view, size_t> by_name;
  const size_t n = std::min<size_t>(names.size(), CommandStatsShared::kMaxCommands);
  for (size_t i = 1; i < n; ++i) by_name.emplace(names[i], i);
  for (const auto& [name, i] : by_name) {
    uint64_t calls = 0, nanos = 0, rejected = 0, failed = 0;
    for (const auto& row : shared.rows) {
      calls += row[i].calls.load(std::memory_order_relaxed);
      nanos += row[i].nanos.load(std::memory_order_relaxed);
      rejected += row[i].rejected.load(std::memory_order_relaxed);
      failed += row[i].failed.load(std::memory_order_relaxed);
    }
    if (calls == 0 && rejected == 0 && failed == 0) continue;
    const uint64_t usec = nanos / 1000;
    char per_call[32];
    std::snprintf(per_call, sizeof(per_call), "%.2f",
                  calls == 0 ? 0.0 : static_cast<double>(usec) / static_cast<double>(calls));
    out->append("cmdstat_").append(name);
    out->append(":calls=").append(std::to_string(calls));
    out->append(",usec=").append(std::to_string(usec));
    out->append(",usec_per_call=").append(per_call);
    out->append(",rejected_calls=").append(std::to_string(rejected));
    out->append(",failed_calls=").append(std::to_string(failed));
    out->append("\r\n");
  }
}

void CommandStats::AppendErrorStats(const CommandStatsShared& shared, std::string* out) {
  std::map<std::string, uint64_t> by_code;
  for (const ErrorCount& e : shared.errors) {
    if (e.state.load(std::memory_order_acquire) != kNamed) continue;
    const uint64_t count = e.count.load(std::memory_order_relaxed);
    if (count != 0) by_code[e.code] += count;
  }
  for (const auto& [code, count] : by_code)
    out->append("errorstat_")
        .append(code)
        .append(":count=")
        .append(std::to_string(count))
        .append("\r\n");
}

void CommandStats::Reset(CommandStatsShared* shared) {
  for (auto& row : shared->rows) {
    for (CommandCounts& c : row) {
      c.calls.store(0, std::memory_order_relaxed);
      c.nanos.store(0, std::memory_order_relaxed);
      c.rejected.store(0, std::memory_order_relaxed);
      c.failed.store(0, std::memory_order_relaxed);
    }
  }
  // The codes keep their slots: a worker may be counting into one right now.
  for (ErrorCount& e : shared->errors) e.count.store(0, std::memory_order_relaxed);
  shared->error_replies.store(0, std::memory_order_relaxed);
}

}  // namespace eloqkv::resp
