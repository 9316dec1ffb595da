#include "engine/status.h"

#include <cstring>

namespace eloqkv {

Status Status::FromErrno(int err, std::string_view what, std::string_view path) {
  std::string msg(what);
  if (!path.empty()) {
    msg += " \"";
    msg += path;
    msg += '"';
  }
  msg += ": ";
  msg += std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return NoSpace(msg);
  return IOError(msg);
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return message_ ? *message_ : kEmpty;
}

const char* Status::CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "not found";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kTooLarge: return "too large";
    case Code::kKeyExists: return "key exists";
    case Code::kConditionFailed: return "condition failed";
    case Code::kIndexFull: return "index memory full";
    case Code::kNoSpace: return "no space";
    case Code::kIOError: return "I/O error";
    case Code::kCorruption: return "corruption";
    case Code::kUnavailable: return "unavailable";
    case Code::kPermissionDenied: return "permission denied";
  }
  return "unknown";
}

std::string Status::ToString() const {
  std::string s = CodeName(code_);
  if (!message().empty()) {
    s += ": ";
    s += message();
  }
  return s;
}

}  // namespace eloqkv
