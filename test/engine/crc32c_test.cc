#include "engine/crc32c.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace eloqkv {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) test vectors.
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c::Value(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(crc32c::Value(ones.data(), ones.size()), 0x62A8AB43u);
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
  EXPECT_EQ(crc32c::Value(inc.data(), inc.size()), 0x46DD794Eu);
}

TEST(Crc32c, HardwareMatchesPortableAndExtendComposes) {
  std::mt19937_64 rng(7);
  for (size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 1000u, 4096u, 100000u}) {
    std::string buf(n, '\0');
    for (auto& c : buf) c = static_cast<char>(rng());
    const uint32_t portable = crc32c::internal::ExtendPortable(0, buf.data(), n);
    EXPECT_EQ(crc32c::Value(buf.data(), n), portable) << n;
    if (crc32c::internal::HardwareAvailable()) {
      EXPECT_EQ(crc32c::internal::ExtendHardware(0, buf.data(), n), portable) << n;
    }
    const size_t split = n / 3;
    EXPECT_EQ(crc32c::Extend(crc32c::Value(buf.data(), split), buf.data() + split, n - split), portable);
  }
}

}  // namespace
}  // namespace eloqkv
