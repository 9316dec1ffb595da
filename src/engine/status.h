// Status: the result of every engine operation.
//
// Invariant: an OK status owns no heap memory; any other status carries a code a caller can branch
// on and a message a human can act on. The engine never throws across its public API and never
// reports an error any other way.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace eloqkv {

class Status {
 public:
  enum class Code : unsigned char {
    kOk = 0,
    kNotFound,         // the key (or keyspace) does not exist
    kInvalidArgument,  // the caller asked for something malformed: nothing was changed
    kTooLarge,         // a key or value exceeds the documented limits: nothing was changed
    kKeyExists,        // an insert-if-absent found the key: nothing in the batch was applied
    kConditionFailed,  // another write condition failed: nothing in the batch was applied
    kIndexFull,        // index memory is exhausted: nothing was changed, reads keep working
    kNoSpace,          // the disk (or the configured disk limit) is full: nothing was changed
    kIOError,          // the device failed; writes are refused until the engine is reopened
    kCorruption,       // on-disk data failed its checksum or structure checks
    kUnavailable,      // the engine is not open (recovering, failed, or shutting down)
    kPermissionDenied, // the caller may not do this (RESP users mapped to roles)
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg = {}) { return Status(Code::kNotFound, msg); }
  static Status InvalidArgument(std::string_view msg) { return Status(Code::kInvalidArgument, msg); }
  static Status TooLarge(std::string_view msg) { return Status(Code::kTooLarge, msg); }
  static Status KeyExists(std::string_view msg = {}) { return Status(Code::kKeyExists, msg); }
  static Status ConditionFailed(std::string_view msg) { return Status(Code::kConditionFailed, msg); }
  static Status IndexFull(std::string_view msg) { return Status(Code::kIndexFull, msg); }
  static Status NoSpace(std::string_view msg) { return Status(Code::kNoSpace, msg); }
  static Status IOError(std::string_view msg) { return Status(Code::kIOError, msg); }
  static Status Corruption(std::string_view msg) { return Status(Code::kCorruption, msg); }
  static Status Unavailable(std::string_view msg) { return Status(Code::kUnavailable, msg); }
  static Status PermissionDenied(std::string_view msg) {
    return Status(Code::kPermissionDenied, msg);
  }
  // An IOError built from errno, naming the operation and the file.
  static Status FromErrno(int err, std::string_view what, std::string_view path);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsKeyExists() const { return code_ == Code::kKeyExists; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsUnavailable() const { return code_ == Code::kUnavailable; }
  bool IsNoSpace() const { return code_ == Code::kNoSpace; }
  bool IsIndexFull() const { return code_ == Code::kIndexFull; }
  const std::string& message() const;
  // "<code name>: <message>", for logs and test failures.
  std::string ToString() const;
  static const char* CodeName(Code code);

 private:
  Status(Code code, std::string_view msg)
      : code_(code), message_(std::make_shared<const std::string>(msg)) {}

  Code code_ = Code::kOk;
  std::shared_ptr<const std::string> message_;
};

}  // namespace eloqkv
