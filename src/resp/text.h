// Text helpers with Redis's exact rules: which strings are integers and floats, how floats are
// printed, and glob matching for KEYS/SCAN MATCH.
//
// Invariant: a string ParseInt64 accepts prints back to itself with FormatInt64, so a value
// stored by INCR reads back byte-for-byte the way Redis would return it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace eloqkv::resp {

// Redis's string2ll: optional '-', no '+', no leading zeros, no spaces, fits in int64.
bool ParseInt64(std::string_view s, int64_t* out);
// Redis's string2ld: a finite or infinite long double, no spaces, no trailing garbage, not NaN.
bool ParseLongDouble(std::string_view s, long double* out);
// Redis's parseScanCursorOrReply (strtoul): digits with an optional sign, "" being 0 and a
// '-' wrapping around; no leading space, no trailing garbage, no overflow.
bool ParseScanCursor(std::string_view s, uint64_t* out);
std::string FormatInt64(int64_t v);
// The "human" form INCRBYFLOAT replies with: up to 17 fractional digits, trailing zeros cut.
std::string FormatLongDouble(long double v);
// Glob-style matching as Redis's stringmatchlen: * ? [abc] [^a] [a-z] and \ escapes.
bool GlobMatch(std::string_view pattern, std::string_view s, bool nocase = false);
std::string ToLower(std::string_view s);
std::string ToUpper(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace eloqkv::resp
