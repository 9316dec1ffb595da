// GatheredCommands: the commands a coalescer gathered in a round, kept until their shared batch
// is applied, so that each can run again alone if it is not.
//
// Invariants:
//  * A gathered command's reply is already in its client's output buffer, at [mark, mark + len);
//    the server neither sends nor trims that buffer before the coalescer flushes, so the reply
//    can still be replaced while that span is whole.
//  * A command's arguments are copied when it is gathered: the client's input moves on before
//    the flush.
//  * Run again alone, the commands run in the order they arrived, each through the full path
//    (privileges, the keyspace resolved again, its own commit), and replies are replaced last
//    first: a replacement moves only what follows it in its buffer, never an earlier span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "resp/protocol.h"

namespace eloqkv::resp {

class Session;

class GatheredCommands {
 public:
  // Runs a command again, alone; its reply goes to `reply`, and *lsn becomes at least the log
  // position that reply must wait for. `gathered_reply`: the reply it had when gathered.
  using RunAlone =
      std::function<void(Session& session, std::span<const std::string_view> args,
                         std::string_view gathered_reply, ReplyWriter& reply, uint64_t* lsn)>;

  explicit GatheredCommands(RunAlone run_alone) : run_alone_(std::move(run_alone)) {}

  // A command of `session` whose reply was written to `reply` from `mark` on. *lsn: where the
  // log position its reply waits for is recorded.
  void Add(Session& session, uint64_t* lsn, std::span<const std::string_view> args,
           const ReplyWriter& reply, size_t mark);
  // Their shared batch was applied and is durable at `lsn`: every reply waits for it.
  void Applied(uint64_t lsn);
  // Their shared batch was not applied: each command runs again alone, and its reply replaces
  // the gathered one.
  void RunEachAlone();
  void Clear();

  bool empty() const { return commands_.empty(); }
  size_t size() const { return commands_.size(); }
  size_t arg_bytes() const { return arg_bytes_.size(); }

 private:
  struct Gathered {
    Session* session;
    uint64_t* lsn;
    size_t first_arg;  // arg_ends_[first_arg, end_arg)
    size_t end_arg;
    std::string* out;
    size_t mark;
    size_t reply_len;
    int protocol;
  };

  RunAlone run_alone_;
  std::vector<Gathered> commands_;
  std::string arg_bytes_;         // the commands' arguments, one after another
  std::vector<size_t> arg_ends_;  // where each ends in arg_bytes_
};

}  // namespace eloqkv::resp
