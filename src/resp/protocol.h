// The RESP wire protocol: requests in, replies out.
//
// Invariants:
//  * RequestParser never reads past the bytes it was given, never allocates for a length a
//    client merely claims (beyond a bounded reservation hint), and resumes a half-received
//    command where it stopped instead of rescanning it.
//  * A request it rejects is answered with Redis's exact protocol error text.
//  * ReplyWriter emits RESP2 or RESP3 forms of the same logical reply, chosen per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eloqkv::resp {

struct ParserLimits {
  size_t max_bulk_len = size_t{512} << 20;  // proto-max-bulk-len
  size_t max_inline_len = 64 * 1024;        // PROTO_INLINE_MAX_SIZE
  size_t max_args = 1024 * 1024;
  // Before AUTH (when a password is set): Redis's bounds on what an unauthenticated client
  // may make the server buffer.
  size_t unauthenticated_max_args = 10;
  size_t unauthenticated_max_bulk_len = 16384;
};

enum class ParseStatus { kNeedMore, kCommand, kError };

class RequestParser {
 public:
  explicit RequestParser(const ParserLimits& limits) : limits_(limits) {}

  // data starts at the first byte of the current command. On kCommand, args() holds the command
  // and *consumed its length; on kError, error() the reply text (without '-' and CRLF).
  ParseStatus Parse(const char* data, size_t len, size_t* consumed);
  std::span<const std::string_view> args() const { return args_; }
  const std::string& error() const { return error_; }
  // At least how many more bytes the current command needs (a buffer reservation hint).
  size_t bytes_wanted() const { return wanted_; }
  // Forgets a half-parsed command (to parse from another command's first byte).
  void Reset();
  // Whether the client may send more than an unauthenticated one (the server says so before
  // each parse: true unless a password is set and the client has not authenticated).
  void set_authenticated(bool on) { authenticated_ = on; }

 private:
  ParseStatus ParseInline(const char* data, size_t len, size_t* consumed);
  ParseStatus Fail(std::string message);

  ParserLimits limits_;
  bool authenticated_ = true;
  // Progress through a multibulk command, as offsets from its first byte.
  bool in_multibulk_ = false;
  int64_t expected_args_ = 0;
  size_t pos_ = 0;
  std::vector<std::pair<size_t, size_t>> spans_;  // (offset, length) of each argument so far
  std::vector<std::string_view> args_;
  std::vector<std::string> inline_args_;
  std::string error_;
  size_t wanted_ = 0;
};

class ReplyWriter {
 public:
  ReplyWriter(std::string* out, int protocol) : out_(out), protocol_(protocol) {}

  int protocol() const { return protocol_; }
  void set_protocol(int p) { protocol_ = p; }
  size_t size() const { return out_->size(); }
  std::string* buffer() const { return out_; }
  void Truncate(size_t n) { out_->resize(n); }
  void Raw(std::string_view bytes) { out_->append(bytes); }
  // Whether what was written from `offset` on is an error reply.
  bool IsErrorAt(size_t offset) const { return offset < out_->size() && (*out_)[offset] == '-'; }
  // What was written from `offset` on (valid until the next write).
  std::string_view From(size_t offset) const { return std::string_view(*out_).substr(offset); }

  void SimpleString(std::string_view s);
  void Error(std::string_view message);
  void Integer(int64_t v);
  void Bulk(std::string_view s);
  void Null();
  void NullArray();
  void ArrayHeader(size_t n);
  void MapHeader(size_t n);
  void SetHeader(size_t n);
  void PushHeader(size_t n);
  void Double(double v);
  void Boolean(bool v);
  void Verbatim(std::string_view format, std::string_view text);

 private:
  void Header(char type, int64_t n);

  std::string* out_;
  int protocol_;
};

}  // namespace eloqkv::resp
