// InstantRates: Redis's instantaneous_* figures of INFO stats. Every kIntervalMs a worker
// samples the counters all workers share, so a figure follows the whole listener whichever
// worker answers; as in Redis, it is the mean of the rates of the last kSamples samples.
//
// Invariant: a counter that went down (CONFIG RESETSTAT) makes a sample of 0, never a negative
// rate.
#pragma once

#include <cstdint>

namespace eloqkv::resp {

struct ListenerStats;

class RateSampler {
 public:
  static constexpr int kSamples = 16;
  void Sample(uint64_t value, int64_t now_ms);
  // Per second; 0 until two samples were taken.
  double PerSecond() const;

 private:
  bool started_ = false;
  uint64_t last_value_ = 0;
  int64_t last_ms_ = 0;
  double rates_[kSamples] = {};
  int next_ = 0;
};

class InstantRates {
 public:
  static constexpr int64_t kIntervalMs = 100;  // Redis samples at its default hz (10)
  // Samples once kIntervalMs passed since the last sample; true when it did.
  bool MaybeSample(const ListenerStats& stats, int64_t now_ms);
  double ops_per_sec() const { return ops_.PerSecond(); }
  double input_kbps() const { return input_.PerSecond() / 1024; }
  double output_kbps() const { return output_.PerSecond() / 1024; }

 private:
  bool sampled_ = false;
  int64_t last_ms_ = 0;
  RateSampler ops_, input_, output_;
};

}  // namespace eloqkv::resp
