// WriteCoalescer: a round's plain SETs and MSETs, from any of its clients, as one engine batch.
//
// Each write command costs one engine batch: a pass under the engine's write mutex, one WAL
// record, one group-commit slot. Blind writes (no condition, no read) need not be alone in one:
// gathered, a round of -P 16 SETs from 50 clients is one batch, not 800.
//
// Invariants:
//  * A gathered command's reply (+OK) is already in its client's output buffer, which the server
//    neither sends nor trims before Flush; Flush can still turn it into the command's error.
//  * The dispatcher flushes before it runs any other command, and the server before it holds the
//    round's replies: every command observes the writes gathered before it, as if each had run
//    alone, and no reply leaves before the writes it acknowledges are applied.
//  * The batch applies its commands' ops in the order they arrived, each op reported in the
//    change feed as its own client's (CLIENT TRACKING NOLOOP).
//  * If the batch fails as a whole, each command is applied alone, in order, and gets the reply
//    it would have had without coalescing.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/eloqkv.h"
#include "resp/protocol.h"

namespace eloqkv::resp {

class WriteCoalescer {
 public:
  explicit WriteCoalescer(Engine* engine) : engine_(engine) {}

  // Gathers the string writes key, value, key, value... of one command into `keyspace` and
  // replies +OK. origin: the client (change feed); *lsn: where Flush records the log position
  // the reply must wait for. False, with nothing gathered or replied, when the pairs cannot go
  // into a batch (a key or value over the engine's limits): the caller runs the command alone.
  bool Add(uint32_t keyspace, std::span<const std::string_view> pairs, uint64_t origin,
           uint64_t* lsn, ReplyWriter& reply);
  // Applies what was gathered.
  void Flush();
  bool empty() const { return pending_.empty(); }

  // Gathering stops at these, and the batch is applied.
  static constexpr size_t kMaxOps = 4096;
  static constexpr size_t kMaxBytes = size_t{4} << 20;

 private:
  struct Pending {
    size_t first_op;
    size_t end_op;
    uint64_t origin;
    uint64_t* lsn;
    std::string* out;  // the reply is out[mark, mark + reply_len)
    size_t mark;
    size_t reply_len;
    int protocol;
  };
  void ApplyOneByOne();

  Engine* engine_;
  WriteBatch batch_;
  std::vector<Pending> pending_;
  std::string value_;  // the encoded value being added
};

}  // namespace eloqkv::resp
