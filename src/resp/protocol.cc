#include "resp/protocol.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "resp/text.h"

namespace eloqkv::resp {

namespace {

// Parses the integer of a "*<n>\r\n" or "$<n>\r\n" line as Redis's string2ll: an optional
// '-', no '+', no leading zeros; false if it is not one.
bool ParseLength(const char* p, size_t n, int64_t* out) {
  return ParseInt64(std::string_view(p, n), out);
}

// The CR of the line's CRLF; null while the line is incomplete, or when it ends in a LF alone:
// then `bare_lf` points at that LF (Redis reads such a line as a length that does not parse).
const char* FindCrlf(const char* p, size_t n, const char** bare_lf) {
  *bare_lf = nullptr;
  const void* nl = std::memchr(p, '\n', n);
  if (nl == nullptr) return nullptr;
  const char* q = static_cast<const char*>(nl);
  if (q > p && q[-1] == '\r') return q - 1;
  *bare_lf = q;
  return nullptr;
}

}  // namespace

void RequestParser::Reset() {
  in_multibulk_ = false;
  expected_args_ = 0;
  pos_ = 0;
  spans_.clear();
  wanted_ = 0;
}

ParseStatus RequestParser::Fail(std::string message) {
  error_ = std::move(message);
  Reset();
  return ParseStatus::kError;
}

ParseStatus RequestParser::Parse(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  args_.clear();
  if (!in_multibulk_) {
    if (len == 0) return ParseStatus::kNeedMore;
    if (data[0] != '*') return ParseInline(data, len, consumed);
    const char* bare_lf;
    const char* end = FindCrlf(data, len, &bare_lf);
    if (bare_lf != nullptr) {
      // The length bound first, as for a complete line, so the error does not depend on the
      // read split.
      if (static_cast<size_t>(bare_lf - data) > limits_.max_inline_len)
        return Fail("ERR Protocol error: too big mbulk count string");
      return Fail("ERR Protocol error: invalid multibulk length");
    }
    if (end == nullptr) {
      if (len > limits_.max_inline_len)
        return Fail("ERR Protocol error: too big mbulk count string");
      return ParseStatus::kNeedMore;
    }
    // The same bound once the line is complete, or the outcome would depend on the read split.
    if (static_cast<size_t>(end - data) + 1 > limits_.max_inline_len)
      return Fail("ERR Protocol error: too big mbulk count string");
    int64_t n = 0;
    if (!ParseLength(data + 1, static_cast<size_t>(end - data - 1), &n) ||
        n > static_cast<int64_t>(limits_.max_args))
      return Fail("ERR Protocol error: invalid multibulk length");
    if (!authenticated_ && n > static_cast<int64_t>(limits_.unauthenticated_max_args))
      return Fail("ERR Protocol error: unauthenticated multibulk length");
    pos_ = static_cast<size_t>(end - data) + 2;
    if (n <= 0) {  // "*0" and "*-1": nothing to run
      *consumed = pos_;
      Reset();
      return ParseStatus::kCommand;
    }
    in_multibulk_ = true;
    expected_args_ = n;
    spans_.clear();
    spans_.reserve(static_cast<size_t>(std::min<int64_t>(n, 1024)));
  }
  while (static_cast<int64_t>(spans_.size()) < expected_args_) {
    if (pos_ >= len) {
      wanted_ = 1;
      return ParseStatus::kNeedMore;
    }
    if (data[pos_] != '$') {
      char got = data[pos_];
      return Fail(std::string("ERR Protocol error: expected '$', got '") + got + "'");
    }
    const char* bare_lf;
    const char* end = FindCrlf(data + pos_, len - pos_, &bare_lf);
    if (bare_lf != nullptr) {
      if (static_cast<size_t>(bare_lf - (data + pos_)) > limits_.max_inline_len)
        return Fail("ERR Protocol error: too big bulk count string");
      return Fail("ERR Protocol error: invalid bulk length");
    }
    if (end == nullptr) {
      if (len - pos_ > limits_.max_inline_len)
        return Fail("ERR Protocol error: too big bulk count string");
      wanted_ = 1;
      return ParseStatus::kNeedMore;
    }
    if (static_cast<size_t>(end - (data + pos_)) + 1 > limits_.max_inline_len)
      return Fail("ERR Protocol error: too big bulk count string");
    int64_t blen = 0;
    if (!ParseLength(data + pos_ + 1, static_cast<size_t>(end - (data + pos_) - 1), &blen) ||
        blen < 0 || static_cast<size_t>(blen) > limits_.max_bulk_len)
      return Fail("ERR Protocol error: invalid bulk length");
    if (!authenticated_ && static_cast<size_t>(blen) > limits_.unauthenticated_max_bulk_len)
      return Fail("ERR Protocol error: unauthenticated bulk length");
    const size_t start = static_cast<size_t>(end - data) + 2;
    if (len < start + static_cast<size_t>(blen) + 2) {
      // Hint, capped: a claimed length is not trusted with memory before the bytes arrive.
      wanted_ = std::min<size_t>(start + static_cast<size_t>(blen) + 2 - len, size_t{1} << 20);
      return ParseStatus::kNeedMore;  // pos_ stays at this bulk's header: cheap to re-read
    }
    if (data[start + blen] != '\r' || data[start + blen + 1] != '\n')
      return Fail("ERR Protocol error: invalid bulk length");
    spans_.emplace_back(start, static_cast<size_t>(blen));
    pos_ = start + static_cast<size_t>(blen) + 2;
  }
  for (const auto& [off, n] : spans_) args_.emplace_back(data + off, n);
  *consumed = pos_;
  Reset();
  return ParseStatus::kCommand;
}

ParseStatus RequestParser::ParseInline(const char* data, size_t len, size_t* consumed) {
  const void* nl = std::memchr(data, '\n', len);
  if (nl == nullptr) {
    if (len > limits_.max_inline_len) return Fail("ERR Protocol error: too big inline request");
    return ParseStatus::kNeedMore;
  }
  const size_t line_end = static_cast<size_t>(static_cast<const char*>(nl) - data);
  if (line_end > limits_.max_inline_len) return Fail("ERR Protocol error: too big inline request");
  size_t end = line_end;
  if (end > 0 && data[end - 1] == '\r') --end;
  inline_args_.clear();
  size_t i = 0;
  while (i < end) {
    while (i < end && (data[i] == ' ' || data[i] == '\t')) ++i;
    if (i >= end) break;
    std::string arg;
    if (data[i] == '"') {
      ++i;
      bool closed = false;
      while (i < end) {
        char ch = data[i];
        if (ch == '\\' && i + 1 < end) {
          const char e = data[i + 1];
          auto hex = [](char h) {
            return h >= '0' && h <= '9'                     ? h - '0'
                   : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10
                                                            : -1;
          };
          if (e == 'x' && i + 3 < end && hex(data[i + 2]) >= 0 && hex(data[i + 3]) >= 0) {
            arg.push_back(static_cast<char>(hex(data[i + 2]) * 16 + hex(data[i + 3])));
            i += 4;
            continue;
          }
          switch (e) {
            case 'n':
              arg.push_back('\n');
              break;
            case 'r':
              arg.push_back('\r');
              break;
            case 't':
              arg.push_back('\t');
              break;
            case 'b':
              arg.push_back('\b');
              break;
            case 'a':
              arg.push_back('\a');
              break;
            default:
              arg.push_back(e);
              break;
          }
          i += 2;
          continue;
        }
        if (ch == '"') {
          closed = true;
          ++i;
          break;
        }
        arg.push_back(ch);
        ++i;
      }
      if (!closed || (i < end && data[i] != ' ' && data[i] != '\t'))
        return Fail("ERR Protocol error: unbalanced quotes in request");
    } else if (data[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < end) {
        if (data[i] == '\\' && i + 1 < end && data[i + 1] == '\'') {
          arg.push_back('\'');
          i += 2;
          continue;
        }
        if (data[i] == '\'') {
          closed = true;
          ++i;
          break;
        }
        arg.push_back(data[i++]);
      }
      if (!closed || (i < end && data[i] != ' ' && data[i] != '\t'))
        return Fail("ERR Protocol error: unbalanced quotes in request");
    } else {
      while (i < end && data[i] != ' ' && data[i] != '\t') arg.push_back(data[i++]);
    }
    inline_args_.push_back(std::move(arg));
  }
  for (const auto& a : inline_args_) args_.emplace_back(a);
  *consumed = line_end + 1;  // an empty line yields no args: the caller skips it
  return ParseStatus::kCommand;
}

void ReplyWriter::Header(char type, int64_t n) {
  char buf[24];
  buf[0] = type;
  const auto r = std::to_chars(buf + 1, buf + sizeof(buf) - 2, n);
  char* p = r.ptr;
  *p++ = '\r';
  *p++ = '\n';
  out_->append(buf, static_cast<size_t>(p - buf));
}

void ReplyWriter::SimpleString(std::string_view s) {
  out_->push_back('+');
  out_->append(s);
  out_->append("\r\n");
}

void ReplyWriter::Error(std::string_view message) {
  out_->push_back('-');
  for (char ch : message) out_->push_back(ch == '\r' || ch == '\n' ? ' ' : ch);
  out_->append("\r\n");
}

void ReplyWriter::Integer(int64_t v) {
  Header(':', v);
}

void ReplyWriter::Bulk(std::string_view s) {
  Header('$', static_cast<int64_t>(s.size()));
  out_->append(s);
  out_->append("\r\n");
}

void ReplyWriter::Null() {
  out_->append(protocol_ == 3 ? "_\r\n" : "$-1\r\n");
}
void ReplyWriter::NullArray() {
  out_->append(protocol_ == 3 ? "_\r\n" : "*-1\r\n");
}
void ReplyWriter::ArrayHeader(size_t n) {
  Header('*', static_cast<int64_t>(n));
}
void ReplyWriter::MapHeader(size_t n) {
  if (protocol_ == 3)
    Header('%', static_cast<int64_t>(n));
  else
    Header('*', static_cast<int64_t>(2 * n));
}
void ReplyWriter::SetHeader(size_t n) {
  Header(protocol_ == 3 ? '~' : '*', static_cast<int64_t>(n));
}
void ReplyWriter::PushHeader(size_t n) {
  Header(protocol_ == 3 ? '>' : '*', static_cast<int64_t>(n));
}

void ReplyWriter::Double(double v) {
  char buf[64];
  int n;
  if (std::isinf(v))
    n = std::snprintf(buf, sizeof(buf), "%s", v > 0 ? "inf" : "-inf");
  else if (std::isnan(v))
    n = std::snprintf(buf, sizeof(buf), "nan");
  else
    n = std::snprintf(buf, sizeof(buf), "%.17g", v);
  if (protocol_ == 3) {
    out_->push_back(',');
    out_->append(buf, static_cast<size_t>(n));
    out_->append("\r\n");
  } else {
    Bulk(std::string_view(buf, static_cast<size_t>(n)));
  }
}

void ReplyWriter::Boolean(bool v) {
  if (protocol_ == 3)
    out_->append(v ? "#t\r\n" : "#f\r\n");
  else
    Integer(v ? 1 : 0);
}

void ReplyWriter::Verbatim(std::string_view format, std::string_view text) {
  if (protocol_ != 3) {
    Bulk(text);
    return;
  }
  Header('=', static_cast<int64_t>(text.size() + 4));
  out_->append(format.substr(0, 3));
  out_->push_back(':');
  out_->append(text);
  out_->append("\r\n");
}

}  // namespace eloqkv::resp
