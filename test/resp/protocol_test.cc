// The request parser and reply writer: exact Redis errors, and the same commands whatever the
// split of the bytes across reads.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "resp/protocol.h"

namespace eloqkv::resp {
namespace {

struct Parsed {
  std::vector<std::vector<std::string>> commands;
  std::string error;
};

// Feeds `input` in pieces of at most `chunk` bytes, as a server reading a socket would: the
// buffer keeps unconsumed bytes and grows as more arrive.
Parsed Feed(const std::string& input, size_t chunk, const ParserLimits& limits = {}) {
  RequestParser parser(limits);
  Parsed out;
  std::string buf;
  size_t fed = 0;
  while (fed < input.size() || !buf.empty()) {
    if (fed < input.size()) {
      const size_t n = std::min(chunk, input.size() - fed);
      buf.append(input, fed, n);
      fed += n;
    }
    for (;;) {
      size_t consumed = 0;
      const ParseStatus st = parser.Parse(buf.data(), buf.size(), &consumed);
      if (st == ParseStatus::kError) {
        out.error = parser.error();
        return out;
      }
      if (st == ParseStatus::kNeedMore) break;
      if (!parser.args().empty())
        out.commands.emplace_back(parser.args().begin(), parser.args().end());
      buf.erase(0, consumed);
      if (buf.empty()) break;
    }
    if (fed == input.size() && !buf.empty()) {
      size_t consumed = 0;
      if (parser.Parse(buf.data(), buf.size(), &consumed) == ParseStatus::kNeedMore) break;
    }
  }
  return out;
}

TEST(RequestParser, APipelineParsesTheSameAtEverySplit) {
  const std::string bin("a\r\nb\0c", 6);
  const std::string input = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\n" + bin +
                            "\r\nPING\r\n\r\n*0\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
                            "ECHO \"x\\ty\\x41\" 'it\\'s'\r\n";
  const std::vector<std::vector<std::string>> want = {
      {"SET", "k", bin}, {"PING"}, {"ECHO", ""}, {"ECHO", "x\tyA", "it's"}};
  for (size_t chunk = 1; chunk <= input.size(); ++chunk) {
    const Parsed p = Feed(input, chunk);
    EXPECT_EQ(p.error, "") << "chunk " << chunk;
    EXPECT_EQ(p.commands, want) << "chunk " << chunk;
  }
}

TEST(RequestParser, ProtocolErrorsUseRedisWording) {
  EXPECT_EQ(Feed("*x\r\n", 64).error, "ERR Protocol error: invalid multibulk length");
  EXPECT_EQ(Feed("*1\r\n$abc\r\n", 64).error, "ERR Protocol error: invalid bulk length");
  EXPECT_EQ(Feed("*1\r\n$-5\r\n", 64).error, "ERR Protocol error: invalid bulk length");
  EXPECT_EQ(Feed("*1\r\n+PING\r\n", 64).error, "ERR Protocol error: expected '$', got '+'");
  EXPECT_EQ(Feed("ECHO \"abc\r\n", 64).error, "ERR Protocol error: unbalanced quotes in request");
  EXPECT_EQ(Feed("ECHO 'a'b\r\n", 64).error, "ERR Protocol error: unbalanced quotes in request");
  ParserLimits small;
  small.max_inline_len = 16;
  small.max_bulk_len = 8;
  small.max_args = 3;
  EXPECT_EQ(Feed(std::string(40, 'a'), 64, small).error,
            "ERR Protocol error: too big inline request");
  EXPECT_EQ(Feed("*1\r\n$9\r\n", 64, small).error, "ERR Protocol error: invalid bulk length");
  EXPECT_EQ(Feed("*4\r\n", 64, small).error, "ERR Protocol error: invalid multibulk length");
}

// Lengths follow Redis's string2ll (no '+', no leading zeros, no "-0"), and a length line that
// ends in a bare LF is refused at once: it used to leave the client waiting with no reply.
TEST(RequestParser, LengthLinesFollowRedisRules) {
  for (size_t chunk : {size_t{1}, size_t{64}}) {
    for (const char* bad : {"*01\r\n", "*+1\r\n", "*-0\r\n", "*1\n$4\r\nPING\r\n"})
      EXPECT_EQ(Feed(bad, chunk).error, "ERR Protocol error: invalid multibulk length") << bad;
    for (const char* bad : {"*1\r\n$04\r\nPING\r\n", "*1\r\n$+4\r\nPING\r\n", "*1\r\n$4\nPING\r\n"})
      EXPECT_EQ(Feed(bad, chunk).error, "ERR Protocol error: invalid bulk length") << bad;
    EXPECT_EQ(Feed("*-1\r\n*1\r\n$4\r\nPING\r\n", chunk).commands,
              (std::vector<std::vector<std::string>>{{"PING"}}));
  }
}

// Found by test/fuzz/resp_parser_fuzz.cc: a "*" or "$" length line longer than max_inline_len
// was refused ("too big ... count string") when its CRLF had not arrived yet, but parsed (leading
// zeros were accepted then) or refused with another error when it had: the outcome depended on
// how the bytes were split across reads. Now it is refused however they arrive; within the limit
// leading zeros are refused too, as Redis's string2ll refuses them.
TEST(RequestParser, AnOverlongLengthLineFailsTheSameAtEverySplit) {
  ParserLimits small;
  small.max_inline_len = 16;
  const auto mbulk = [](size_t zeros) {
    return "*" + std::string(zeros, '0') + "1\r\n$4\r\nPING\r\n";
  };
  const auto bulk = [](size_t zeros) {
    return "*1\r\n$" + std::string(zeros, '0') + "4\r\nPING\r\n";
  };
  const std::vector<std::vector<std::string>> ping = {{"PING"}};
  // "*", 13 zeros, "1\r": the line feed is byte 16, the limit; one more zero is past it.
  for (size_t chunk = 1; chunk <= 32; ++chunk) {
    EXPECT_EQ(Feed(mbulk(0), chunk, small).commands, ping) << "chunk " << chunk;
    EXPECT_EQ(Feed(mbulk(13), chunk, small).error, "ERR Protocol error: invalid multibulk length")
        << "chunk " << chunk;
    EXPECT_EQ(Feed(mbulk(14), chunk, small).error, "ERR Protocol error: too big mbulk count string")
        << "chunk " << chunk;
    EXPECT_EQ(Feed("*" + std::string(40, 'x') + "\r\n", chunk, small).error,
              "ERR Protocol error: too big mbulk count string")
        << "chunk " << chunk;
    EXPECT_EQ(Feed(bulk(13), chunk, small).error, "ERR Protocol error: invalid bulk length")
        << "chunk " << chunk;
    EXPECT_EQ(Feed(bulk(14), chunk, small).error, "ERR Protocol error: too big bulk count string")
        << "chunk " << chunk;
    // A line that ends in a bare LF: the same bound first, then the bad length.
    EXPECT_EQ(Feed("*" + std::string(16, '1') + "\n", chunk, small).error,
              "ERR Protocol error: too big mbulk count string")
        << "chunk " << chunk;
    EXPECT_EQ(Feed("*" + std::string(15, '1') + "\n", chunk, small).error,
              "ERR Protocol error: invalid multibulk length")
        << "chunk " << chunk;
    EXPECT_EQ(Feed("*1\r\n$" + std::string(16, '1') + "\n", chunk, small).error,
              "ERR Protocol error: too big bulk count string")
        << "chunk " << chunk;
    EXPECT_EQ(Feed("*1\r\n$" + std::string(15, '1') + "\n", chunk, small).error,
              "ERR Protocol error: invalid bulk length")
        << "chunk " << chunk;
  }
  // The same with the default limit: a 70 kB length line, in one read or in 16 kB reads.
  for (size_t chunk : {size_t{16384}, size_t{1} << 20}) {
    EXPECT_EQ(Feed(mbulk(70000), chunk).error, "ERR Protocol error: too big mbulk count string")
        << "chunk " << chunk;
    EXPECT_EQ(Feed(bulk(70000), chunk).error, "ERR Protocol error: too big bulk count string")
        << "chunk " << chunk;
  }
}

TEST(RequestParser, ABigBulkIsNotRescannedOrPreallocated) {
  RequestParser parser(ParserLimits{});
  std::string buf = "*2\r\n$3\r\nSET\r\n$100000000\r\n";
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(buf.data(), buf.size(), &consumed), ParseStatus::kNeedMore);
  // The hint is capped: a claimed length does not make the caller allocate it up front.
  EXPECT_LE(parser.bytes_wanted(), size_t{1} << 20);
  EXPECT_GT(parser.bytes_wanted(), 0u);
}

TEST(ReplyWriter, Resp2AndResp3Forms) {
  std::string out;
  ReplyWriter w(&out, 2);
  w.Null();
  w.NullArray();
  w.MapHeader(1);
  w.Boolean(true);
  w.Double(1.5);
  w.Error("ERR bad\r\nthing");
  EXPECT_EQ(out, "$-1\r\n*-1\r\n*2\r\n:1\r\n$3\r\n1.5\r\n-ERR bad  thing\r\n");
  out.clear();
  w.set_protocol(3);
  w.Null();
  w.MapHeader(1);
  w.SetHeader(2);
  w.Boolean(false);
  w.Double(1.5);
  w.Verbatim("txt", "hi");
  w.Integer(-42);
  w.Bulk("");
  EXPECT_EQ(out, "_\r\n%1\r\n~2\r\n#f\r\n,1.5\r\n=6\r\ntxt:hi\r\n:-42\r\n$0\r\n\r\n");
}

}  // namespace
}  // namespace eloqkv::resp
