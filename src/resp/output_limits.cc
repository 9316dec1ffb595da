#include "resp/output_limits.h"

#include <cctype>
#include <vector>

#include "resp/text.h"

namespace eloqkv::resp {

namespace {

// Redis's memtoull: digits with an optional unit b, k (10^3), kb (2^10), m, mb, g, gb.
bool ParseMemory(std::string_view s, uint64_t* out) {
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0 || digits > 19) return false;
  const std::string unit = ToLower(s.substr(digits));
  uint64_t mul;
  if (unit.empty() || unit == "b")
    mul = 1;
  else if (unit == "k")
    mul = 1000;
  else if (unit == "kb")
    mul = 1024;
  else if (unit == "m")
    mul = 1000 * 1000;
  else if (unit == "mb")
    mul = 1024 * 1024;
  else if (unit == "g")
    mul = 1000ull * 1000 * 1000;
  else if (unit == "gb")
    mul = 1024ull * 1024 * 1024;
  else
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < digits; ++i) v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  if (v > UINT64_MAX / mul) return false;
  *out = v * mul;
  return true;
}

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

}  // namespace

bool ParseOutputBufferLimits(std::string_view text, OutputBufferLimits* limits,
                             std::string* error) {
  const std::vector<std::string_view> words = Words(text);
  if (words.empty() || words.size() % 4 != 0) {
    *error = "expected groups of four words: <class> <hard limit> <soft limit> <soft seconds>";
    return false;
  }
  OutputBufferLimits parsed = *limits;
  for (size_t i = 0; i < words.size(); i += 4) {
    const std::string cls = ToLower(words[i]);
    OutputLimit* target;
    if (cls == "normal") {
      target = &parsed.normal;
    } else if (cls == "pubsub") {
      target = &parsed.pubsub;
    } else {
      *error = "unknown client class \"" + std::string(words[i]) + "\" (normal or pubsub)";
      return false;
    }
    OutputLimit l;
    if (!ParseMemory(words[i + 1], &l.hard_bytes) || !ParseMemory(words[i + 2], &l.soft_bytes)) {
      *error = "invalid size in \"" + std::string(words[i]) + " " + std::string(words[i + 1]) +
               " " + std::string(words[i + 2]) +
               "\" (a byte count, or a number with b, k, kb, m, mb, g or gb)";
      return false;
    }
    int64_t seconds;
    if (!ParseInt64(words[i + 3], &seconds) || seconds < 0) {
      *error = "invalid soft seconds \"" + std::string(words[i + 3]) + "\" (0 or more)";
      return false;
    }
    l.soft_seconds = seconds;
    *target = l;
  }
  *limits = parsed;
  return true;
}

std::string FormatOutputBufferLimits(const OutputBufferLimits& limits) {
  auto group = [](const char* name, const OutputLimit& l) {
    return std::string(name) + " " + std::to_string(l.hard_bytes) + " " +
           std::to_string(l.soft_bytes) + " " + std::to_string(l.soft_seconds);
  };
  return group("normal", limits.normal) + " " + group("pubsub", limits.pubsub);
}

bool OverOutputLimit(const OutputLimit& limit, uint64_t pending, int64_t now_ms,
                     int64_t* soft_since_ms) {
  if (limit.hard_bytes != 0 && pending > limit.hard_bytes) return true;
  if (limit.soft_bytes == 0 || pending <= limit.soft_bytes) {
    *soft_since_ms = 0;
    return false;
  }
  // As Redis: the first time over the soft limit only starts the clock.
  if (*soft_since_ms == 0) {
    *soft_since_ms = now_ms;
    return false;
  }
  return now_ms - *soft_since_ms > limit.soft_seconds * 1000;
}

}  // namespace eloqkv::resp
