// INFO's instantaneous_* figures: the mean rate of the last 16 samples, as Redis computes them.

#include "resp/instant_rates.h"

#include <gtest/gtest.h>

#include "resp/commands.h"

namespace eloqkv::resp {
namespace {

TEST(RateSamplerTest, IsTheMeanOfTheLastSixteenRates) {
  RateSampler r;
  EXPECT_EQ(r.PerSecond(), 0);
  r.Sample(0, 1000);
  EXPECT_EQ(r.PerSecond(), 0) << "one sample is no rate yet";
  r.Sample(100, 1100);  // 1,000 per second over 100 ms
  EXPECT_DOUBLE_EQ(r.PerSecond(), 1000.0 / 16);
  for (int i = 2; i <= 16; ++i) r.Sample(100 * i, 1000 + 100 * i);
  EXPECT_DOUBLE_EQ(r.PerSecond(), 1000);
  // Sixteen idle samples push every busy one out.
  for (int i = 1; i <= 15; ++i) r.Sample(1600, 2600 + 100 * i);
  EXPECT_DOUBLE_EQ(r.PerSecond(), 1000.0 / 16);
  r.Sample(1600, 4200);
  EXPECT_EQ(r.PerSecond(), 0);
}

TEST(RateSamplerTest, UsesTheTimeThatPassedBetweenSamples) {
  RateSampler r;
  r.Sample(0, 0);
  r.Sample(500, 250);  // a late sample: 2,000 per second
  EXPECT_DOUBLE_EQ(r.PerSecond(), 2000.0 / 16);
  r.Sample(900, 250);  // no time passed: no rate, and the next one spans from 250 ms
  EXPECT_DOUBLE_EQ(r.PerSecond(), 2000.0 / 16);
  r.Sample(1000, 350);
  EXPECT_DOUBLE_EQ(r.PerSecond(), (2000.0 + 5000.0) / 16);
}

TEST(RateSamplerTest, ACounterResetIsNoChangeNotANegativeRate) {
  RateSampler r;
  r.Sample(5000, 0);
  r.Sample(0, 100);  // CONFIG RESETSTAT
  EXPECT_EQ(r.PerSecond(), 0);
  r.Sample(100, 200);
  EXPECT_DOUBLE_EQ(r.PerSecond(), 1000.0 / 16);
}

TEST(InstantRatesTest, SamplesTheSharedCountersAtMostEveryInterval) {
  ListenerStats stats;
  InstantRates rates;
  EXPECT_TRUE(rates.MaybeSample(stats, 0));
  stats.commands_processed.store(1000);
  stats.net_input_bytes.store(10 * 1024);
  stats.net_output_bytes.store(20 * 1024);
  EXPECT_FALSE(rates.MaybeSample(stats, InstantRates::kIntervalMs - 1));
  EXPECT_EQ(rates.ops_per_sec(), 0);
  EXPECT_TRUE(rates.MaybeSample(stats, 1000));
  EXPECT_DOUBLE_EQ(rates.ops_per_sec(), 1000.0 / 16);
  EXPECT_DOUBLE_EQ(rates.input_kbps(), 10.0 / 16);
  EXPECT_DOUBLE_EQ(rates.output_kbps(), 20.0 / 16);
}

TEST(ListenerStatsTest, EachStartHasItsOwnRunId) {
  ListenerStats a, b;
  const std::string id(a.run_id);
  EXPECT_EQ(id.size(), 40u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_NE(id, std::string(b.run_id));
}

}  // namespace
}  // namespace eloqkv::resp
