// SLOWLOG: the commands that ran longer than a threshold, kept as Redis keeps them, shared by
// every listener worker (a region of the host's shared memory, or of a test's heap).
//
// Invariants:
//  * Entries are numbered from 0 in the order they are logged, across workers; an entry lives
//    in slot id % capacity, so the newest `capacity` entries are kept.
//  * No lock: a writer claims its id (and so its slot) with one atomic add, then the slot by
//    moving its mark from done to 2*id+1, and marks it 2*id+2 once written. One writer at a time
//    in a slot; one that finds a newer entry there, or cannot get in within a few thousand tries
//    (the writer in it a lap ago died mid-entry), drops its entry. A reader keeps a copy only
//    when the mark read before and after it is 2*id+2 for the id it expects: it never sees half
//    an entry, and no writer or reader ever waits for long.
//  * What is kept of a command is bounded as in Redis: at most 32 arguments, the last of them
//    then saying how many more there were, each cut to 128 bytes saying how many more; the
//    secrets of AUTH and HELLO ... AUTH, and CONFIG SET's values, are kept as "(redacted)".
#ifndef ELOQKV_RESP_SLOW_LOG_H_
#define ELOQKV_RESP_SLOW_LOG_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eloqkv::resp {

class SlowLog {
 public:
  static constexpr size_t kMaxArgs = 32;
  static constexpr size_t kMaxArgBytes = 128;

  struct Entry {
    uint64_t id = 0;
    int64_t unix_time_s = 0;
    uint64_t duration_us = 0;
    std::vector<std::string> args;
    std::string peer;  // ip:port
    std::string name;  // CLIENT SETNAME's
  };

  static size_t RequiredBytes(size_t capacity);
  static void Format(void* region, size_t capacity);
  void Attach(void* region) { h_ = static_cast<Header*>(region); }
  bool attached() const { return h_ != nullptr; }
  size_t capacity() const;

  void Add(std::span<const std::string_view> args, uint64_t duration_us, std::string_view peer,
           std::string_view name, int64_t unix_time_s);
  // The newest entries first, at most `count`.
  std::vector<Entry> Newest(size_t count) const;
  // How many entries are kept (SLOWLOG LEN).
  size_t Length() const;
  // SLOWLOG RESET: the entries logged so far are forgotten (ids go on from where they were).
  void Reset();

  // The arguments as an entry keeps them (the bounds and redactions above).
  static std::vector<std::string> Shown(std::span<const std::string_view> args);

  struct Header;

 private:
  Header* h_ = nullptr;
};

}  // namespace eloqkv::resp

#endif  // ELOQKV_RESP_SLOW_LOG_H_
