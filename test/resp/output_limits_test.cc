// Parsing of client-output-buffer-limit values (Redis's syntax and units), and when a client is
// over its limit.
#include "resp/output_limits.h"

#include <gtest/gtest.h>

namespace eloqkv::resp {
namespace {

TEST(OutputLimitsTest, RedisDefaults) {
  const OutputBufferLimits d;
  EXPECT_EQ(FormatOutputBufferLimits(d), "normal 0 0 0 pubsub 33554432 8388608 60");
}

TEST(OutputLimitsTest, ParsesRedisSyntaxAndUnits) {
  OutputBufferLimits l;
  std::string error;
  ASSERT_TRUE(ParseOutputBufferLimits("normal 1gb 64kb 10  PUBSUB 1m 1000k 0", &l, &error))
      << error;
  EXPECT_EQ(l.normal.hard_bytes, uint64_t{1} << 30);
  EXPECT_EQ(l.normal.soft_bytes, 64u * 1024);
  EXPECT_EQ(l.normal.soft_seconds, 10);
  EXPECT_EQ(l.pubsub.hard_bytes, 1000000u);
  EXPECT_EQ(l.pubsub.soft_bytes, 1000000u);
  EXPECT_EQ(l.pubsub.soft_seconds, 0);
  // What Format prints parses back to the same limits.
  OutputBufferLimits again;
  ASSERT_TRUE(ParseOutputBufferLimits(FormatOutputBufferLimits(l), &again, &error));
  EXPECT_EQ(FormatOutputBufferLimits(again), FormatOutputBufferLimits(l));
}

TEST(OutputLimitsTest, ClassesNotNamedKeepTheirLimits) {
  OutputBufferLimits l;
  std::string error;
  ASSERT_TRUE(ParseOutputBufferLimits("normal 100 50 5", &l, &error));
  EXPECT_EQ(FormatOutputBufferLimits(l), "normal 100 50 5 pubsub 33554432 8388608 60");
}

TEST(OutputLimitsTest, BadValuesAreRefusedWithoutChangingAnything) {
  const struct {
    const char* text;
    const char* error;
  } cases[] = {
      {"", "expected groups of four words: <class> <hard limit> <soft limit> <soft seconds>"},
      {"normal 1mb 1mb",
       "expected groups of four words: <class> <hard limit> <soft limit> <soft seconds>"},
      {"replica 1mb 1mb 60", "unknown client class \"replica\" (normal or pubsub)"},
      {"normal 1tb 0 0",
       "invalid size in \"normal 1tb 0\" (a byte count, or a number with b, k, kb, m, mb, g or "
       "gb)"},
      {"normal -1 0 0",
       "invalid size in \"normal -1 0\" (a byte count, or a number with b, k, kb, m, mb, g or gb)"},
      {"normal 99999999999999999999gb 0 0",
       "invalid size in \"normal 99999999999999999999gb 0\" (a byte count, or a number with b, k, "
       "kb, m, mb, g or gb)"},
      {"normal 0 0 -1", "invalid soft seconds \"-1\" (0 or more)"},
      {"normal 0 0 x", "invalid soft seconds \"x\" (0 or more)"},
      {"normal 1 1 1 pubsub 1 1",
       "expected groups of four words: <class> <hard limit> <soft limit> <soft seconds>"},
      {"normal 1 1 1 pubsub 1 1 z", "invalid soft seconds \"z\" (0 or more)"},
  };
  for (const auto& c : cases) {
    OutputBufferLimits l;
    std::string error;
    EXPECT_FALSE(ParseOutputBufferLimits(c.text, &l, &error)) << c.text;
    EXPECT_EQ(error, c.error) << c.text;
    EXPECT_EQ(FormatOutputBufferLimits(l), FormatOutputBufferLimits(OutputBufferLimits()))
        << c.text;
  }
}

TEST(OutputLimitsTest, HardLimitAtOnceSoftLimitAfterItsSeconds) {
  const OutputLimit l{1000, 100, 2};
  int64_t since = 0;
  EXPECT_FALSE(OverOutputLimit(l, 100, 0, &since));
  EXPECT_TRUE(OverOutputLimit(l, 1001, 0, &since));
  EXPECT_FALSE(OverOutputLimit(l, 101, 10'000, &since));  // starts the clock
  EXPECT_EQ(since, 10'000);
  EXPECT_FALSE(OverOutputLimit(l, 500, 12'000, &since));  // exactly its seconds: not yet
  EXPECT_TRUE(OverOutputLimit(l, 500, 12'001, &since));
  EXPECT_FALSE(OverOutputLimit(l, 50, 12'002, &since));  // back under: the clock stops
  EXPECT_EQ(since, 0);
  const OutputLimit none{};
  EXPECT_FALSE(OverOutputLimit(none, uint64_t{1} << 40, 0, &since));
}

}  // namespace
}  // namespace eloqkv::resp
