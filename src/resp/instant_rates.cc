#include "resp/instant_rates.h"

#include "resp/commands.h"

namespace eloqkv::resp {

void RateSampler::Sample(uint64_t value, int64_t now_ms) {
  if (started_) {
    if (now_ms <= last_ms_) return;  // no time passed: the next sample spans from last_ms_
    const uint64_t delta = value >= last_value_ ? value - last_value_ : 0;
    rates_[next_] = static_cast<double>(delta) * 1000.0 / static_cast<double>(now_ms - last_ms_);
    next_ = (next_ + 1) % kSamples;
  }
  started_ = true;
  last_value_ = value;
  last_ms_ = now_ms;
}

double RateSampler::PerSecond() const {
  double sum = 0;
  for (double r : rates_) sum += r;
  return sum / kSamples;
}

bool InstantRates::MaybeSample(const ListenerStats& stats, int64_t now_ms) {
  if (sampled_ && now_ms - last_ms_ < kIntervalMs) return false;
  sampled_ = true;
  last_ms_ = now_ms;
  ops_.Sample(stats.commands_processed.load(std::memory_order_relaxed), now_ms);
  input_.Sample(stats.net_input_bytes.load(std::memory_order_relaxed), now_ms);
  output_.Sample(stats.net_output_bytes.load(std::memory_order_relaxed), now_ms);
  return true;
}

}  // namespace eloqkv::resp
