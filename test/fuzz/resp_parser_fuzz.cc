// libFuzzer target for the RESP request parser and reply writer (src/resp/protocol.h), built with
// ASan and UBSan by the ELOQKV_FUZZ configure (see bench/README.md).
//
// An input is the byte stream a client sends. It is parsed under two sets of limits: tiny ones
// taken from a hash of the input, so that the too-big and too-many paths are reached by short
// inputs, and the defaults. Under each it is parsed twice: all at once, and as the server reads a
// socket, in chunks whose sizes come from the same hash (and, as the server does, reads of at least
// bytes_wanted()). Each Parse call of the chunked run gets a fresh heap copy of exactly the bytes
// it is given, so ASan catches a read past them or a pointer kept from an earlier call. Any
// violated invariant traps:
//  * both runs yield the same commands (offsets, lengths, arguments) and end the same way: all
//    bytes consumed, an unfinished command at the same offset, or the same error at the same
//    offset;
//  * a command's consumed length is positive and within the bytes given; a multibulk argument lies
//    inside its own command's bytes, in order, framed by CRLFs; an inline command is one line;
//    counts and lengths respect the limits;
//  * bytes_wanted() is capped and never more than what the command really still needed, and a
//    command is never reported unfinished when all of its bytes were there;
//  * an error has Redis's "ERR Protocol error: " form, parsing the same bytes again gives the same
//    error, and the parser then parses a new command;
//  * each command re-encoded as a multibulk (by ReplyWriter) and as an inline line with quoted and
//    unquoted arguments parses back to the same arguments;
//  * what ReplyWriter writes for the arguments, in RESP2 and RESP3, decodes back to what was
//  written.
#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "resp/protocol.h"

#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "resp_parser_fuzz: invariant violated at %s:%d: %s\n", __FILE__, \
                   __LINE__, #cond);                                                        \
      __builtin_trap();                                                                     \
    }                                                                                       \
  } while (0)

namespace eloqkv::resp {
namespace {

constexpr size_t kMaxWanted = size_t{1} << 20;  // the cap protocol.cc puts on bytes_wanted()

uint64_t Hash(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

struct Rng {  // splitmix64
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
};

enum class End { kAllConsumed, kUnfinished, kError };

struct Command {
  size_t offset = 0;
  size_t consumed = 0;
  std::vector<std::string> args;
  bool operator==(const Command&) const = default;
};

struct Outcome {
  std::vector<Command> commands;
  End end = End::kAllConsumed;
  size_t end_offset = 0;  // where the unfinished or failing command starts
  std::string error;
};

void Describe(const char* name, const Outcome& o) {
  static const char* const kEnds[] = {"all consumed", "unfinished", "error"};
  std::fprintf(stderr, "%s: %zu commands, %s at offset %zu%s%s\n", name, o.commands.size(),
               kEnds[static_cast<int>(o.end)], o.end_offset, o.error.empty() ? "" : ": ",
               o.error.c_str());
  for (const Command& c : o.commands)
    std::fprintf(stderr, "  command at %zu, %zu bytes, %zu args\n", c.offset, c.consumed,
                 c.args.size());
}

// The parser's limits, and whether the client has authenticated (when not, the tighter bounds
// of ParserLimits::unauthenticated_* apply to multibulk commands).
struct Profile {
  ParserLimits limits;
  bool authenticated = true;
};

// Checks the command Parse just returned from cmd[0, len) and copies its arguments out.
std::vector<std::string> CheckCommand(const RequestParser& p, const char* cmd, size_t len,
                                      size_t consumed, const Profile& profile) {
  const ParserLimits& limits = profile.limits;
  FUZZ_CHECK(consumed > 0 && consumed <= len);
  const auto args = p.args();
  size_t total = 0;
  for (std::string_view a : args) total += a.size();
  FUZZ_CHECK(total <= consumed);
  if (cmd[0] == '*') {
    FUZZ_CHECK(args.size() <= limits.max_args);
    if (!profile.authenticated) FUZZ_CHECK(args.size() <= limits.unauthenticated_max_args);
    FUZZ_CHECK(consumed >= 4 && cmd[consumed - 2] == '\r' && cmd[consumed - 1] == '\n');
    const char* prev_end = cmd + 4;  // past the shortest header, "*1\r\n"
    for (std::string_view a : args) {
      FUZZ_CHECK(a.size() <= limits.max_bulk_len);
      if (!profile.authenticated) FUZZ_CHECK(a.size() <= limits.unauthenticated_max_bulk_len);
      // "$0\r\n" at least before it, its CRLF after it, all inside this command's bytes.
      FUZZ_CHECK(a.data() >= prev_end + 4);
      FUZZ_CHECK(a.data() + a.size() + 2 <= cmd + consumed);
      FUZZ_CHECK(a.data()[-2] == '\r' && a.data()[-1] == '\n');
      FUZZ_CHECK(a.data()[a.size()] == '\r' && a.data()[a.size() + 1] == '\n');
      prev_end = a.data() + a.size() + 2;
    }
    FUZZ_CHECK(args.empty() || prev_end == cmd + consumed);
  } else {
    FUZZ_CHECK(cmd[consumed - 1] == '\n');
    FUZZ_CHECK(std::memchr(cmd, '\n', consumed - 1) == nullptr);
    FUZZ_CHECK(consumed - 1 <= limits.max_inline_len);
  }
  return std::vector<std::string>(args.begin(), args.end());
}

// After kError on cmd[0, len): the error is Redis's, it is the same when asked again, and the
// parser is back at a command boundary.
void CheckError(RequestParser& p, const char* cmd, size_t len, const Profile& profile) {
  const ParserLimits& limits = profile.limits;
  const std::string error = p.error();
  FUZZ_CHECK(error.rfind("ERR Protocol error: ", 0) == 0);
  FUZZ_CHECK(p.args().empty());
  size_t consumed = 0;
  FUZZ_CHECK(p.Parse(cmd, len, &consumed) == ParseStatus::kError);
  FUZZ_CHECK(p.error() == error);
  FUZZ_CHECK(p.Parse("\n", 1, &consumed) == ParseStatus::kCommand);
  FUZZ_CHECK(consumed == 1 && p.args().empty());
  const bool ping_fits = profile.authenticated || (limits.unauthenticated_max_args >= 1 &&
                                                   limits.unauthenticated_max_bulk_len >= 4);
  if (limits.max_args >= 1 && limits.max_bulk_len >= 4 && limits.max_inline_len >= 16 &&
      ping_fits) {
    static constexpr std::string_view kPing = "*1\r\n$4\r\nPING\r\n";
    FUZZ_CHECK(p.Parse(kPing.data(), kPing.size(), &consumed) == ParseStatus::kCommand);
    FUZZ_CHECK(consumed == kPing.size() && p.args().size() == 1 && p.args()[0] == "PING");
  }
}

Outcome ParseWhole(const char* data, size_t size, const Profile& profile) {
  RequestParser p(profile.limits);
  p.set_authenticated(profile.authenticated);
  Outcome out;
  size_t off = 0;
  while (off < size) {
    const char* cmd = data + off;
    const size_t len = size - off;
    size_t consumed = 0;
    const ParseStatus st = p.Parse(cmd, len, &consumed);
    if (st == ParseStatus::kNeedMore) {
      FUZZ_CHECK(p.bytes_wanted() <= kMaxWanted);
      out.end = End::kUnfinished;
      out.end_offset = off;
      return out;
    }
    if (st == ParseStatus::kError) {
      out.end = End::kError;
      out.end_offset = off;
      out.error = p.error();
      CheckError(p, cmd, len, profile);
      return out;
    }
    out.commands.push_back({off, consumed, CheckCommand(p, cmd, len, consumed, profile)});
    off += consumed;
  }
  out.end_offset = size;
  return out;
}

// How many bytes the next read brings: one, a few, many, or what the parser asked for.
size_t ChunkSize(Rng& rng, size_t wanted) {
  switch (rng.Below(5)) {
    case 0:
      return 1;
    case 1:
      return 1 + rng.Below(8);
    case 2:
      return 1 + rng.Below(128);
    case 3:
      return wanted > 0 ? wanted : 1 + rng.Below(16);
    default:
      return 1 + rng.Below(4096);
  }
}

Outcome ParseChunked(const char* data, size_t size, const Profile& profile, Rng rng) {
  RequestParser p(profile.limits);
  p.set_authenticated(profile.authenticated);
  Outcome out;
  size_t start = 0;  // the current command's first byte
  size_t avail = 0;  // bytes received so far
  struct Wait {
    size_t avail;
    size_t wanted;
  };
  std::vector<Wait> waits;  // the kNeedMore answers for the current command
  for (;;) {
    if (avail < size) avail += std::min(size - avail, ChunkSize(rng, p.bytes_wanted()));
    while (start < avail) {
      const size_t len = avail - start;
      std::unique_ptr<char[]> buf(new char[len]);
      std::memcpy(buf.get(), data + start, len);
      size_t consumed = 0;
      if (rng.Below(8) == 0)  // no new bytes (the server never asks, but a command is not ended)
        FUZZ_CHECK(p.Parse(buf.get(), 0, &consumed) == ParseStatus::kNeedMore);
      const ParseStatus st = p.Parse(buf.get(), len, &consumed);
      if (st == ParseStatus::kNeedMore) {
        FUZZ_CHECK(p.bytes_wanted() <= kMaxWanted);
        waits.push_back({avail, p.bytes_wanted()});
        break;
      }
      if (st == ParseStatus::kError) {
        out.end = End::kError;
        out.end_offset = start;
        out.error = p.error();
        CheckError(p, buf.get(), len, profile);
        return out;
      }
      std::vector<std::string> args = CheckCommand(p, buf.get(), len, consumed, profile);
      for (const Wait& w : waits) {
        FUZZ_CHECK(start + consumed > w.avail);  // it was not complete then
        FUZZ_CHECK(start + consumed - w.avail >= w.wanted);
      }
      waits.clear();
      out.commands.push_back({start, consumed, std::move(args)});
      start += consumed;
    }
    if (avail == size) {
      out.end = start == size ? End::kAllConsumed : End::kUnfinished;
      out.end_offset = start;
      return out;
    }
  }
}

bool SameOutcome(const Outcome& a, const Outcome& b) {
  return a.commands == b.commands && a.end == b.end && a.end_offset == b.end_offset &&
         a.error == b.error;
}

void CheckParsesBackTo(const std::string& wire, const std::vector<std::string>& args) {
  RequestParser p(ParserLimits{});
  size_t consumed = 0;
  FUZZ_CHECK(p.Parse(wire.data(), wire.size(), &consumed) == ParseStatus::kCommand);
  FUZZ_CHECK(consumed == wire.size());
  const auto got = p.args();
  FUZZ_CHECK(got.size() == args.size());
  for (size_t i = 0; i < args.size(); ++i) FUZZ_CHECK(got[i] == args[i]);
}

void AppendDoubleQuoted(std::string* line, std::string_view arg, bool upper_hex) {
  static const char kLower[] = "0123456789abcdef";
  static const char kUpper[] = "0123456789ABCDEF";
  const char* digits = upper_hex ? kUpper : kLower;
  line->push_back('"');
  for (char ch : arg) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      line->push_back('\\');
      line->push_back(ch);
    } else if (ch == '\n') {
      line->append("\\n");
    } else if (ch == '\t') {
      line->append("\\t");
    } else if (u >= 0x20 && u < 0x7f) {
      line->push_back(ch);
    } else {
      line->append("\\x");
      line->push_back(digits[u >> 4]);
      line->push_back(digits[u & 15]);
    }
  }
  line->push_back('"');
}

// A command written back as a multibulk and as an inline line parses to the same arguments.
void CheckRoundTrip(const std::vector<std::string>& args, Rng& rng) {
  std::string wire;
  ReplyWriter w(&wire, 2);
  w.ArrayHeader(args.size());
  for (const std::string& a : args) w.Bulk(a);
  CheckParsesBackTo(wire, args);

  std::string line;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    line.append(rng.Below(2) ? " " : "\t");
    const bool has_space = a.find_first_of(" \t\r\n") != std::string::npos;
    const bool unquoted_ok =
        !a.empty() && !has_space && a[0] != '"' && a[0] != '\'' && !(i == 0 && a[0] == '*');
    const bool single_ok =
        a.find_first_of("\r\n") == std::string::npos && (a.empty() || a.back() != '\\');
    const size_t choice = rng.Below(3);
    if (choice == 0 && unquoted_ok) {
      line.append(a);
    } else if (choice == 1 && single_ok) {
      line.push_back('\'');
      for (char ch : a) {
        if (ch == '\'') line.push_back('\\');
        line.push_back(ch);
      }
      line.push_back('\'');
    } else {
      AppendDoubleQuoted(&line, a, rng.Below(2) != 0);
    }
  }
  if (line.size() + 1 > ParserLimits{}.max_inline_len) return;
  line.append(rng.Below(2) ? "\r\n" : "\n");
  CheckParsesBackTo(line, args);
}

// Reads back what ReplyWriter wrote, item by item.
class ReplyReader {
 public:
  explicit ReplyReader(const std::string* out) : out_(out) {}

  std::string_view Line() {
    const size_t e = out_->find("\r\n", pos_);
    FUZZ_CHECK(e != std::string::npos);
    const std::string_view line = std::string_view(*out_).substr(pos_, e - pos_);
    pos_ = e + 2;
    return line;
  }
  std::string_view Take(size_t n) {
    FUZZ_CHECK(n <= out_->size() - pos_);
    const std::string_view bytes = std::string_view(*out_).substr(pos_, n);
    pos_ += n;
    return bytes;
  }
  void Exact(std::string_view bytes) { FUZZ_CHECK(Take(bytes.size()) == bytes); }
  void Header(char type, int64_t n) {
    const std::string_view line = Line();
    FUZZ_CHECK(!line.empty() && line[0] == type);
    FUZZ_CHECK(line.substr(1) == std::to_string(n));
  }
  std::string_view BulkBody() {
    const std::string_view line = Line();
    FUZZ_CHECK(line.size() >= 2 && line[0] == '$');
    size_t n = 0;
    const auto r = std::from_chars(line.data() + 1, line.data() + line.size(), n);
    FUZZ_CHECK(r.ec == std::errc() && r.ptr == line.data() + line.size());
    const std::string_view body = Take(n);
    Exact("\r\n");
    return body;
  }
  void Bulk(std::string_view s) { FUZZ_CHECK(BulkBody() == s); }
  bool AtEnd() const { return pos_ == out_->size(); }

 private:
  const std::string* out_;
  size_t pos_ = 0;
};

void CheckDoubleText(std::string_view text, double v) {
  const std::string s(text);
  char* end = nullptr;
  const double got = std::strtod(s.c_str(), &end);
  FUZZ_CHECK(end == s.c_str() + s.size());
  if (std::isnan(v))
    FUZZ_CHECK(std::isnan(got));
  else
    FUZZ_CHECK(std::bit_cast<uint64_t>(got) == std::bit_cast<uint64_t>(v));
}

// Writes replies made of the arguments in one protocol and decodes them back.
void ExerciseWriter(const std::vector<std::string>& args, int protocol) {
  std::string out;
  ReplyWriter w(&out, protocol);
  ReplyReader r(&out);
  FUZZ_CHECK(w.protocol() == protocol);
  const bool p3 = protocol == 3;
  const auto n = static_cast<int64_t>(args.size());

  w.ArrayHeader(args.size());
  r.Header('*', n);
  for (const std::string& a : args) {
    w.Bulk(a);
    r.Bulk(a);
  }
  w.MapHeader(args.size() / 2);
  r.Header(p3 ? '%' : '*', p3 ? n / 2 : 2 * (n / 2));
  w.SetHeader(args.size());
  r.Header(p3 ? '~' : '*', n);
  w.PushHeader(args.size());
  r.Header(p3 ? '>' : '*', n);

  // Each reply kind once per argument, for the first few: the writer has no state to reach.
  for (size_t k = 0; k < std::min<size_t>(args.size(), 8); ++k) {
    const std::string& a = args[k];
    uint64_t bits = 0;
    std::memcpy(&bits, a.data(), std::min(a.size(), sizeof(bits)));
    const auto i = std::bit_cast<int64_t>(bits);
    w.Integer(i);
    r.Header(':', i);

    const auto d = std::bit_cast<double>(bits);
    w.Double(d);
    if (p3) {
      const std::string_view line = r.Line();
      FUZZ_CHECK(!line.empty() && line[0] == ',');
      CheckDoubleText(line.substr(1), d);
    } else {
      CheckDoubleText(r.BulkBody(), d);
    }

    const bool b = (a.size() & 1) != 0;
    w.Boolean(b);
    if (p3)
      r.Exact(b ? "#t\r\n" : "#f\r\n");
    else
      r.Header(':', b ? 1 : 0);

    w.Error(a);
    std::string sanitized = a;
    std::replace(sanitized.begin(), sanitized.end(), '\r', ' ');
    std::replace(sanitized.begin(), sanitized.end(), '\n', ' ');
    r.Exact("-" + sanitized + "\r\n");

    if (a.find_first_of("\r\n") == std::string::npos) {  // the callers' contract
      w.SimpleString(a);
      r.Exact("+" + a + "\r\n");
    }

    w.Verbatim("txt", a);
    if (p3) {
      r.Header('=', static_cast<int64_t>(a.size()) + 4);
      r.Exact("txt:");
      r.Exact(a);
      r.Exact("\r\n");
    } else {
      r.Bulk(a);
    }

    w.Null();
    r.Exact(p3 ? "_\r\n" : "$-1\r\n");
    w.NullArray();
    r.Exact(p3 ? "_\r\n" : "*-1\r\n");
  }

  const size_t mark = w.size();
  FUZZ_CHECK(mark == out.size());
  w.Raw("\r\n+x");
  w.Truncate(mark);
  FUZZ_CHECK(out.size() == mark);
  w.set_protocol(5 - protocol);
  FUZZ_CHECK(w.protocol() == 5 - protocol);
  w.Null();
  r.Exact(p3 ? "$-1\r\n" : "_\r\n");
  FUZZ_CHECK(r.AtEnd());
}

}  // namespace
}  // namespace eloqkv::resp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eloqkv::resp;
  const char* in = reinterpret_cast<const char*>(data);
  const uint64_t h = Hash(in, size);
  ParserLimits tiny;
  tiny.max_inline_len = h % 33;
  tiny.max_bulk_len = (h >> 8) % 17;
  tiny.max_args = (h >> 16) % 9;
  // Before AUTH: the unauthenticated bounds, small, from the input too.
  ParserLimits unauthenticated;
  unauthenticated.unauthenticated_max_args = (h >> 24) % 5;
  unauthenticated.unauthenticated_max_bulk_len = (h >> 32) % 9;
  const Profile profiles[] = {{tiny, true}, {ParserLimits{}, true}, {unauthenticated, false}};
  Rng rng{h};
  for (const Profile& profile : profiles) {
    const ParserLimits& limits = profile.limits;
    const Outcome whole = ParseWhole(in, size, profile);
    const Outcome chunked = ParseChunked(in, size, profile, Rng{rng.Next()});
    if (!SameOutcome(whole, chunked)) {
      std::fprintf(stderr, "limits: inline %zu, bulk %zu, args %zu, authenticated %d\n",
                   limits.max_inline_len, limits.max_bulk_len, limits.max_args,
                   profile.authenticated ? 1 : 0);
      Describe("all at once", whole);
      Describe("in chunks", chunked);
    }
    FUZZ_CHECK(SameOutcome(whole, chunked));
    for (size_t k = 0; k < whole.commands.size(); ++k) {
      const Command& c = whole.commands[k];
      CheckRoundTrip(c.args, rng);
      if (&profile == &profiles[1] && k < 4) {
        ExerciseWriter(c.args, 2);
        ExerciseWriter(c.args, 3);
      }
    }
  }
  return 0;
}
